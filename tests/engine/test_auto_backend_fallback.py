"""Backend ``auto`` runs the installed published ONNX pair when the model's torch weights are missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from efficientsam_studio.engine import loader, onnx_backend, weights

pytest.importorskip("onnxruntime")


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    calls: list[tuple] = []
    monkeypatch.setattr(
        onnx_backend, "load_onnx_predictor", lambda *args: calls.append(("onnx", *args)) or "onnx predictor"
    )
    monkeypatch.setattr(
        loader, "_load_torch", lambda *args: calls.append(("torch", *args)) or "torch predictor"
    )
    return calls


def test_auto_uses_the_onnx_pair_when_the_torch_weights_are_missing(monkeypatch, recorded, tmp_path):
    pair = (tmp_path / "efficient_sam_vitt_encoder.onnx", tmp_path / "efficient_sam_vitt_decoder.onnx")
    monkeypatch.setattr(weights, "installed_path", lambda name: None)
    monkeypatch.setattr(weights, "installed_onnx", lambda name: pair if name == "vit_t" else None)
    assert onnx_backend.load_auto_predictor("vit_t", None, "cpu") == "onnx predictor"
    assert recorded == [("onnx", "vit_t", None, "cpu")]


def test_auto_prefers_installed_torch_weights(monkeypatch, recorded, tmp_path):
    pair = (tmp_path / "e.onnx", tmp_path / "d.onnx")
    monkeypatch.setattr(weights, "installed_path", lambda name: tmp_path / "efficient_sam_vitt.pt")
    monkeypatch.setattr(weights, "installed_onnx", lambda name: pair)
    assert onnx_backend.load_auto_predictor("vit_t", None, "cpu") == "torch predictor"
    assert recorded[0][0] == "torch"


def test_auto_without_any_weights_still_goes_to_torch(monkeypatch, recorded):
    """Torch's loader then says how to get the weights."""
    monkeypatch.setattr(weights, "installed_path", lambda name: None)
    monkeypatch.setattr(weights, "installed_onnx", lambda name: None)
    assert onnx_backend.load_auto_predictor("vit_t", None, "cpu") == "torch predictor"


def test_auto_with_a_checkpoint_file_is_unchanged(monkeypatch, recorded, tmp_path):
    monkeypatch.setattr(weights, "installed_path", lambda name: None)
    monkeypatch.setattr(weights, "installed_onnx", lambda name: (Path("e"), Path("d")))
    checkpoint = tmp_path / "mine.pt"
    assert onnx_backend.load_auto_predictor("vit_t", checkpoint, "cpu") == "torch predictor"
    assert recorded == [("torch", "vit_t", checkpoint, "cpu")]
