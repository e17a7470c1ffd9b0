"""Where the files shipped with the app (sample images, icons, style sheets) are found at run time.

The repository keeps them in its top-level ``resources/`` folder. The same tree is found in three layouts:

- a desktop bundle built with PyInstaller: ``<sys._MEIPASS>/resources`` (``packaging/efsam-studio.spec``
  copies it there);
- a pip install from the wheel or sdist: ``efficientsam_studio/_resources`` inside the installed package
  (``setup.py`` maps the package ``efficientsam_studio._resources`` onto ``resources/``);
- a source checkout or an editable install: ``resources/`` beside the package folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

from efficientsam_studio.errors import StudioError

__all__ = ["ResourceNotFoundError", "resource_path"]


class ResourceNotFoundError(StudioError):
    """A shipped resource file is missing: the installation is incomplete."""


def _roots() -> list[Path]:
    package = Path(__file__).resolve().parent
    roots = []
    bundle = getattr(sys, "_MEIPASS", None)
    if getattr(sys, "frozen", False) and bundle:
        roots.append(Path(bundle) / "resources")
    roots += [package / "_resources", package.parent / "resources"]
    return roots


def resource_path(*parts: str) -> Path:
    """The path of the shipped resource ``parts`` (relative, ``/``-free pieces, e.g. ``"samples",
    "chelsea.png"``); with no parts, the resources folder itself.

    Raises ResourceNotFoundError naming the places searched when no layout holds it.
    """
    roots = _roots()
    for root in roots:
        if root.is_dir():
            candidate = root.joinpath(*parts)
            if candidate.exists():
                return candidate
    wanted = "/".join(parts) or "the resources folder"
    raise ResourceNotFoundError(
        f"{wanted} is missing from this installation (looked in: {', '.join(map(str, roots))}); "
        "reinstall efficientsam-studio or rebuild the bundle"
    )
