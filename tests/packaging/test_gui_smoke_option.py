"""``efsam-studio gui PATH --smoke-test``: the non-interactive check that the smoke check of the bundle
runs. It encodes the first image when a model loads, and fails (exit 1) on any dialog."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"


def _smoke(tmp_path: Path, *args: str) -> tuple[int, dict]:
    env = {**os.environ, "EFSAM_HOME": str(tmp_path / "home"), "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, "-m", "efficientsam_studio", "gui", *args, "--smoke-test"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, json.loads(done.stdout)


def test_smoke_test_loads_the_model_and_encodes_the_first_image(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(SAMPLES / "chelsea.png", images / "chelsea.png")
    code, report = _smoke(
        tmp_path,
        str(images / "chelsea.png"),
        "--model",
        "tiny",
        "--backend",
        "torch",
        "--checkpoint",
        str(tiny_checkpoint),
    )
    assert code == 0, report
    assert (report["model"]["model"], report["model"]["backend"]) == ("tiny", "torch")
    assert report["encoded"] and report["images"] == 1 and not report["dialogs"]
    assert Path(report["opened"]).is_file()


def test_smoke_test_fails_when_a_dialog_opens(tmp_path: Path) -> None:
    code, report = _smoke(tmp_path, str(tmp_path / "missing-folder"))
    assert code == 1
    assert report["opened"] is None
    assert any("missing-folder" in text for text in report["dialogs"])
