"""Fixtures of the command-line tests: a folder of synthetic images, box prompts for it, a fake model."""

from __future__ import annotations

from pathlib import Path

import pytest

from efficientsam_studio.cli import label as label_cli
from tests.batch.conftest import write_boxes_csv, write_scenes
from tests.batch.fake_predictor import ShapesPredictor


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EFSAM_HOME", str(tmp_path / "home"))
    return write_scenes(tmp_path / "images")


@pytest.fixture
def boxes_csv(tmp_path: Path) -> Path:
    return write_boxes_csv(tmp_path / "boxes.csv")


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> ShapesPredictor:
    predictor = ShapesPredictor()
    monkeypatch.setattr(label_cli, "_load_predictor", lambda args: predictor)
    return predictor
