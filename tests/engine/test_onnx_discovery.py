"""Where the ONNX backend looks for exported files, and what it says when they are not there.

Discovery looks at file names only, so these tests use placeholder files (no ONNX Runtime needed).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from efficientsam_studio.engine.onnx_backend import OnnxModelError, export_dir_for, find_onnx_pair
from efficientsam_studio.paths import weights_dir


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EFSAM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _checkpoint(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _export(folder: Path, model: str, int8: bool = False) -> Path:
    """Placeholder files under the names ``export-onnx`` writes."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = ["encoder", "decoder", "context"] + (["encoder.int8"] if int8 else [])
    for part in parts:
        (folder / f"{model}_{part}.onnx").write_bytes(b"placeholder")
    return folder


def test_without_a_checkpoint_the_export_of_the_installed_weights_is_used(home):
    installed = _checkpoint(weights_dir() / "efficient_sam_vitt.pt", b"installed weights")
    store = _export(export_dir_for("vit_t", installed), "vit_t")  # export-onnx --model vit_t
    assert find_onnx_pair("vit_t") == (store / "vit_t_encoder.onnx", store / "vit_t_decoder.onnx")


def test_without_a_checkpoint_exports_of_other_checkpoints_are_named_not_used(home, tmp_path):
    mine = _checkpoint(tmp_path / "mine.pt", b"my fine-tuned weights")
    store = _export(export_dir_for("vit_t", mine), "vit_t")  # export-onnx --model vit_t --checkpoint mine.pt
    with pytest.raises(OnnxModelError) as info:
        find_onnx_pair("vit_t")
    message = str(info.value)
    assert "weights download vit_t_onnx" in message
    assert str(store) in message and "--checkpoint PATH" in message
    assert find_onnx_pair("vit_t", mine)[0] == store / "vit_t_encoder.onnx"


def test_a_missing_int8_encoder_is_named_as_such(home, tmp_path):
    mine = _checkpoint(tmp_path / "mine.pt", b"my fine-tuned weights")
    store = _export(export_dir_for("vit_t", mine), "vit_t")
    with pytest.raises(OnnxModelError, match=r"has no int8 encoder \(vit_t_encoder.int8.onnx\)") as info:
        find_onnx_pair("vit_t", mine, "int8")
    assert "not been exported" not in str(info.value)
    assert f"export-onnx --model vit_t --checkpoint {mine} --int8" in str(info.value)
    with pytest.raises(OnnxModelError, match="no int8 encoder"):
        find_onnx_pair("vit_t", store, "int8")

    installed = _checkpoint(weights_dir() / "efficient_sam_vitt.pt", b"installed weights")
    _export(export_dir_for("vit_t", installed), "vit_t")
    with pytest.raises(OnnxModelError, match=r"no int8 encoder .*export-onnx --model vit_t --int8"):
        find_onnx_pair("vit_t", None, "int8")
    _export(export_dir_for("vit_t", installed), "vit_t", int8=True)
    assert find_onnx_pair("vit_t", None, "int8")[0].name == "vit_t_encoder.int8.onnx"


def test_a_checkpoint_never_exported_says_how_to_export_it(home, tmp_path):
    mine = _checkpoint(tmp_path / "mine.pt", b"my fine-tuned weights")
    with pytest.raises(OnnxModelError, match="has not been exported to ONNX yet"):
        find_onnx_pair("vit_t", mine, "int8")
