"""Fixtures of the command-line tests: a folder of synthetic images, box prompts for it, a fake model."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from efficientsam_studio.cli import label as label_cli
from tests.batch.conftest import SCENES, scene_image
from tests.batch.fake_predictor import ShapesPredictor


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EFSAM_HOME", str(tmp_path / "home"))
    images = tmp_path / "images"
    images.mkdir()
    for name, objects in SCENES.items():
        cv2.imwrite(str(images / name), cv2.cvtColor(scene_image(objects), cv2.COLOR_RGB2BGR))
    return images


@pytest.fixture
def boxes_csv(tmp_path: Path) -> Path:
    lines = ["image,x0,y0,x1,y1,label,score"]
    for name, objects in SCENES.items():
        lines += [f"{name},{x0},{y0},{x1},{y1},{label},0.9" for label, _, (x0, y0, x1, y1) in objects]
    path = tmp_path / "boxes.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> ShapesPredictor:
    predictor = ShapesPredictor()
    monkeypatch.setattr(label_cli, "_load_predictor", lambda args: predictor)
    return predictor
