"""Where the studio keeps per-user files: model weights, caches and settings.

By default the folders are the platform's per-user locations from platformdirs (for example
``~/.local/share/efficientsam-studio`` for data on Linux). Setting the environment variable ``EFSAM_HOME``
puts everything under that one folder instead: ``$EFSAM_HOME/weights``, ``$EFSAM_HOME/cache`` and
``$EFSAM_HOME/config``, which is how tests, portable installs and shared lab machines relocate it.

The functions return paths without creating them; callers create what they write into.
The variable is read on every call, so changing it at run time takes effect at once.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

__all__ = ["APP_NAME", "cache_dir", "config_dir", "home_dir", "weights_dir"]

APP_NAME = "efficientsam-studio"
"""The application name used for the platformdirs locations."""

HOME_ENV = "EFSAM_HOME"


def _override() -> Path | None:
    value = os.environ.get(HOME_ENV, "").strip()
    return Path(value).expanduser() if value else None


def home_dir() -> Path:
    """The studio's data folder: ``$EFSAM_HOME`` if set, else ``platformdirs.user_data_dir(APP_NAME)``."""
    override = _override()
    return override if override is not None else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def weights_dir() -> Path:
    """Downloaded and imported model weights: ``home_dir() / "weights"``."""
    return home_dir() / "weights"


def cache_dir() -> Path:
    """Disposable caches (image embeddings): ``$EFSAM_HOME/cache``, else ``platformdirs.user_cache_dir``."""
    override = _override()
    if override is not None:
        return override / "cache"
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def config_dir() -> Path:
    """User settings: ``$EFSAM_HOME/config``, else ``platformdirs.user_config_dir``."""
    override = _override()
    if override is not None:
        return override / "config"
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
