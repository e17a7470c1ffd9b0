"""The Linux desktop entry starts the installed command and names an icon that is shipped."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[2]


def test_desktop_entry_runs_the_console_script_with_the_shipped_icon() -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # keys are case-sensitive
    entry.read(ROOT / "packaging" / "linux" / "efsam-studio.desktop", encoding="utf-8")
    desktop = entry["Desktop Entry"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert desktop["Type"] == "Application"
    assert desktop["Exec"].split()[0] in scripts
    assert desktop["TryExec"] in scripts
    assert (ROOT / "resources" / "icons" / f"{desktop['Icon']}.png").is_file()
    assert (ROOT / "resources" / "icons" / f"{desktop['Icon']}.svg").is_file()
    assert desktop["Terminal"] == "false"
