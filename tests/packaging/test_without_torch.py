"""The base install (no extra: neither torch nor onnxruntime) runs the app's manual paths and exports,
and says which extra to install when an AI tool needs a runtime. This is also what the desktop bundle
relies on: it ships no torch.

Each command runs in a child interpreter where torch, onnx, onnxscript, onnxruntime and the trainer
cannot be imported (``sys.modules[name] = None``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BLOCKED = ("torch", "torchvision", "onnx", "onnxscript", "onnx_ir", "onnxruntime", "trainer")
LAUNCHER = f"""
import sys
for name in {BLOCKED!r}:
    sys.modules[name] = None
from efficientsam_studio.cli.main import main
sys.exit(main(sys.argv[1:]))
"""
HAND_MADE_COCO = {
    "images": [{"id": 1, "file_name": "chelsea.png", "width": 451, "height": 300}],
    "categories": [{"id": 1, "name": "cat"}],
    "annotations": [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 1,
            "iscrowd": 0,
            "area": 24000.0,
            "bbox": [100, 60, 200, 120],
            "segmentation": [[100, 60, 300, 60, 300, 180, 100, 180]],
        }
    ],
}


@pytest.fixture()
def studio(tmp_path: Path):
    launcher = tmp_path / "no_runtime.py"
    launcher.write_text(LAUNCHER)
    env = {**os.environ, "EFSAM_HOME": str(tmp_path / "home"), "QT_QPA_PLATFORM": "offscreen"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(launcher), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


def test_manual_paths_and_exports_run_without_any_runtime(studio, tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    assert studio("--version").stdout.startswith("efsam-studio ")
    images = tmp_path / "images"
    assert studio("samples", "--copy", str(images)).returncode == 0
    (tmp_path / "hand_made.json").write_text(json.dumps(HAND_MADE_COCO))
    imported = studio("import", str(images), "--format", "coco", "--from", str(tmp_path / "hand_made.json"))
    assert imported.returncode == 0, imported.stderr
    project = images / "images.efsam.json"
    exported = studio("export", str(project), "--format", "coco", "--out", str(tmp_path / "out.json"))
    assert exported.returncode == 0, exported.stderr
    coco = COCO(str(tmp_path / "out.json"))
    assert [a["bbox"] for a in coco.loadAnns(coco.getAnnIds())] == [[100.0, 60.0, 200.0, 120.0]]

    opened = studio("gui", str(images / "chelsea.png"), "--smoke-test")
    assert opened.returncode == 0, opened.stdout + opened.stderr
    report = json.loads(opened.stdout)
    assert report["image"].endswith("chelsea.png") and report["model"] is None and not report["dialogs"]
    assert "pip install 'efficientsam-studio[cpu]'" in report["model_error"]


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (("segment", "{images}/chelsea.png", "--point", "10,10"), "[cpu]"),
        (("segment", "{images}/chelsea.png", "--point", "10,10", "--backend", "torch"), "[train]"),
        (
            (
                "label",
                "{images}",
                "--out",
                "p",
                "--everything",
                "--backend",
                "onnx",
                "--model",
                "tiny",
                "--checkpoint",
                "{onnx}/tiny_encoder.onnx",
            ),
            "[cpu]",
        ),
        (("precompute", "{images}"), "[cpu]"),
        (("label", "{images}", "--out", "p", "--everything", "--backend", "torch"), "[train]"),
        (("export-onnx", "--model", "tiny"), "[train]"),
        (("train", "--stage", "sami"), "[train]"),
    ],
)
def test_ai_tools_name_the_extra_to_install(studio, tmp_path: Path, args: tuple, extra: str) -> None:
    images = tmp_path / "images"
    assert studio("samples", "--copy", str(images)).returncode == 0
    onnx = tmp_path / "onnx"  # files are found, then the runtime to read them is missing
    onnx.mkdir()
    (onnx / "tiny_encoder.onnx").write_bytes(b"not read")
    (onnx / "tiny_decoder.onnx").write_bytes(b"not read")
    done = studio(*(a.format(images=images, onnx=onnx) for a in args))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert f"pip install 'efficientsam-studio{extra}'" in done.stderr
