"""Reading checkpoints: accepted forms, and an error naming the file and the problem for each bad one."""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

import pytest
import torch

from efficientsam_studio.engine.checkpoints import (
    identify_architecture,
    inspect_checkpoint,
    load_state_dict_file,
)
from efficientsam_studio.errors import CheckpointError
from efficientsam_studio.model import load_model


@pytest.fixture(scope="module")
def tiny_state(tiny_checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(tiny_checkpoint, weights_only=True)["model"]


def _save(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


def test_published_format_loads(tiny_checkpoint: Path, tiny_state) -> None:
    loaded = load_state_dict_file(tiny_checkpoint, "tiny")
    assert loaded.keys() == tiny_state.keys()


def test_bare_state_dict_and_ddp_prefix_load(tmp_path: Path, tiny_state) -> None:
    bare = _save(tiny_state, tmp_path / "bare.pt")
    prefixed = _save({"model": {f"module.{k}": v for k, v in tiny_state.items()}}, tmp_path / "ddp.pt")
    assert load_state_dict_file(bare, "tiny").keys() == tiny_state.keys()
    assert load_state_dict_file(prefixed, "tiny").keys() == tiny_state.keys()


def test_zip_holding_one_checkpoint_loads(tmp_path: Path, tiny_checkpoint: Path) -> None:
    archive = tmp_path / "efficient_sam_tiny.pt.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(tiny_checkpoint, "efficient_sam_tiny.pt")
    model = load_model("tiny", archive)
    assert model.image_encoder.embed_dim == 64


def test_zip_without_a_single_checkpoint_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "weights.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError, match=r"weights\.zip.*exactly one \.pt.*readme\.txt"):
        load_state_dict_file(archive, "tiny")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nowhere\.pt: no such checkpoint file"):
        load_state_dict_file(tmp_path / "nowhere.pt", "vit_t")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.pt: the file is empty"):
        load_state_dict_file(path, "vit_t")


def test_truncated_file(tmp_path: Path, tiny_checkpoint: Path) -> None:
    data = tiny_checkpoint.read_bytes()
    path = tmp_path / "truncated.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        CheckpointError, match=r"truncated\.pt: is truncated or corrupt.*download or copy it again"
    ):
        load_state_dict_file(path, "tiny")


def test_truncated_zip(tmp_path: Path, tiny_checkpoint: Path) -> None:
    archive = tmp_path / "whole.pt.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(tiny_checkpoint, "tiny.pt")
    cut = tmp_path / "cut.pt.zip"
    cut.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(CheckpointError, match=r"cut\.pt\.zip: is truncated or corrupt"):
        load_state_dict_file(cut, "tiny")


def test_garbage_bytes(tmp_path: Path) -> None:
    path = tmp_path / "noise.pt"
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(CheckpointError, match=r"noise\.pt: is (truncated or )?corrupt"):
        load_state_dict_file(path, "vit_t")


def test_pickled_objects_are_not_loaded(tmp_path: Path, tiny_state) -> None:
    path = _save({"model": tiny_state, "args": argparse.Namespace(lr=1.0)}, tmp_path / "training.pt")
    expected = r"training\.pt: holds Python objects besides tensors \(argparse\.Namespace\)"
    with pytest.raises(CheckpointError, match=expected):
        load_state_dict_file(path, "tiny")


def test_not_a_state_dict(tmp_path: Path) -> None:
    tensor_file = _save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(CheckpointError, match=r"tensor\.pt: holds a Tensor, not a state dict"):
        load_state_dict_file(tensor_file, "vit_t")
    mixed = _save({"model": {"a": torch.zeros(1), "epoch": 3}}, tmp_path / "mixed.pt")
    with pytest.raises(CheckpointError, match=r"mixed\.pt: is not a state dict.*epoch"):
        load_state_dict_file(mixed, "vit_t")


@pytest.mark.parametrize(
    ("width", "title", "name"), [(768, "SAM ViT-B", "sam_vit_b"), (1280, "SAM ViT-H", "sam_vit_h")]
)
def test_sam_checkpoint_is_named_as_such(tmp_path: Path, width: int, title: str, name: str) -> None:
    state = {
        "image_encoder.pos_embed": torch.zeros(1, 4, 4, width),
        "image_encoder.blocks.0.attn.rel_pos_h": torch.zeros(27, 64),
        "prompt_encoder.point_embeddings.0.weight": torch.zeros(1, 256),
    }
    path = _save(state, tmp_path / "sam.pth")
    assert identify_architecture(state) == name
    with pytest.raises(
        CheckpointError, match=rf"sam\.pth: this looks like a {title} checkpoint, not EfficientSAM"
    ):
        load_state_dict_file(path, "vit_t")


def test_wrong_model_size_says_which_model_it_is(tiny_checkpoint: Path) -> None:
    with pytest.raises(
        CheckpointError, match=r"holds an EfficientSAM tiny checkpoint, but model 'vit_t' was requested"
    ):
        load_state_dict_file(tiny_checkpoint, "vit_t")


def test_missing_and_unexpected_keys_are_listed(tmp_path: Path, tiny_state) -> None:
    state = dict(tiny_state)
    del state["mask_decoder.iou_token.weight"]
    state["mask_decoder.extra.weight"] = torch.zeros(2)
    path = _save({"model": state}, tmp_path / "edited.pt")
    with pytest.raises(CheckpointError) as info:
        load_state_dict_file(path, "tiny")
    message = str(info.value)
    assert "edited.pt" in message
    assert "missing keys: mask_decoder.iou_token.weight" in message
    assert "unexpected keys: mask_decoder.extra.weight" in message


def test_wrong_shapes_are_listed(tmp_path: Path, tiny_state) -> None:
    state = dict(tiny_state)
    state["mask_decoder.iou_token.weight"] = torch.zeros(1, 128)
    path = _save({"model": state}, tmp_path / "reshaped.pt")
    with pytest.raises(
        CheckpointError,
        match=r"wrong shapes: mask_decoder\.iou_token\.weight \(1, 128\) instead of \(1, 256\)",
    ):
        load_state_dict_file(path, "tiny")


def test_unknown_model_name(tiny_checkpoint: Path) -> None:
    with pytest.raises(CheckpointError, match="unknown model 'vit_x'"):
        load_state_dict_file(tiny_checkpoint, "vit_x")


def test_inspect_reports_architecture(tiny_checkpoint: Path) -> None:
    info = inspect_checkpoint(tiny_checkpoint)
    assert info.architecture == "tiny"
    assert info.num_tensors == 158
    assert info.num_parameters > 4_000_000


def test_vit_s_layout_random_checkpoint_loads_and_is_recognised(tmp_path: Path) -> None:
    from efficientsam_studio.model import build_model

    torch.manual_seed(0)
    path = _save({"model": build_model("vit_s").state_dict()}, tmp_path / "vits.pt")
    assert inspect_checkpoint(path).architecture == "vit_s"
    with pytest.raises(CheckpointError, match="holds an EfficientSAM vit_s checkpoint, but model 'vit_t'"):
        load_model("vit_t", path)
    model = load_model("vit_s", path)
    with torch.inference_mode():
        logits, iou = model.predict_masks(
            torch.randn(1, 256, 64, 64), torch.tensor([[[[10.0, 20.0]]]]), torch.ones(1, 1, 1)
        )
    assert logits.shape == (1, 1, 3, 256, 256) and torch.isfinite(iou).all()
