"""User settings of the desktop app, persisted per user with QSettings.

The file is ``efficientsam_studio.paths.config_dir() / "studio.ini"`` (so ``EFSAM_HOME`` relocates it).
Values are kept in a dataclass with defaults; unknown or malformed stored values fall back to them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSettings

from efficientsam_studio.engine.loader import BACKEND_CHOICES
from efficientsam_studio.paths import config_dir

MODELS = ("vit_t", "vit_s", "tiny")
BACKENDS = BACKEND_CHOICES
DEVICES = ("auto", "cpu", "cuda")
POLYGON_MODES = ("largest", "all", "all_with_holes")


@dataclass
class StudioSettings:
    """What the settings dialog edits.

    ``checkpoint``: a weights file (``.pt`` or an ONNX encoder) or "" for the installed catalogue weights;
    ``cache_mb``: in-memory embedding cache budget in MiB; ``polygon_tolerance``: simplification in
    pixels; ``autosave_seconds``: delay after the last edit before saving (0 = autosave off);
    ``precompute_ahead``: how many next images are encoded in the background; ``hover_preview``: the AI
    tool shows the mask under the resting cursor before the first click; ``refine_boxes``: a box on a
    small part of the image is segmented again in a cut around it.
    """

    model: str = "vit_t"
    checkpoint: str = ""
    backend: str = "auto"
    device: str = "auto"
    cache_mb: int = 256
    polygon_mode: str = "all_with_holes"
    polygon_tolerance: float = 1.0
    autosave_seconds: float = 2.0
    precompute_ahead: int = 3
    brush_size: int = 20
    hover_preview: bool = True
    refine_boxes: bool = True

    def validated(self) -> StudioSettings:
        """A copy with every field inside its allowed range or set."""
        defaults = StudioSettings()
        out = dataclasses.replace(self)
        for name, allowed in (
            ("model", MODELS),
            ("backend", BACKENDS),
            ("device", DEVICES),
            ("polygon_mode", POLYGON_MODES),
        ):
            if getattr(out, name) not in allowed:
                setattr(out, name, getattr(defaults, name))
        out.cache_mb = min(max(int(out.cache_mb), 0), 65536)
        out.polygon_tolerance = min(max(float(out.polygon_tolerance), 0.0), 50.0)
        out.autosave_seconds = min(max(float(out.autosave_seconds), 0.0), 3600.0)
        out.precompute_ahead = min(max(int(out.precompute_ahead), 0), 50)
        out.brush_size = min(max(int(out.brush_size), 1), 500)
        return out


def settings_path() -> Path:
    return config_dir() / "studio.ini"


def _qsettings() -> QSettings:
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return QSettings(str(path), QSettings.Format.IniFormat)


def load_settings() -> StudioSettings:
    """Read the user's settings (defaults for anything absent or malformed)."""
    store = _qsettings()
    values = {}
    for f in dataclasses.fields(StudioSettings):
        raw = store.value(f.name)
        if raw is None:
            continue
        try:
            values[f.name] = _parse(raw, type(f.default))
        except (TypeError, ValueError):
            continue
    return StudioSettings(**values).validated()


def _parse(raw: object, kind: type) -> object:
    """A stored value as ``kind``; QSettings gives text back for booleans ("true" / "false")."""
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise ValueError(f"not a boolean: {raw!r}")
    return kind(raw)


def save_settings(settings: StudioSettings) -> None:
    """Write the settings (the whole dataclass) to the user's settings file."""
    store = _qsettings()
    for name, value in dataclasses.asdict(settings.validated()).items():
        store.setValue(name, value)
    store.sync()
