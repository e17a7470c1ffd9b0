"""The SAM teacher: strict loading of the published layout, and every weight used at other sizes."""

from __future__ import annotations

import pytest
import torch

from efficientsam_studio.errors import CheckpointError
from trainer.teacher import (
    SAM_ENCODER_CONFIGS,
    SamEncoderConfig,
    SamImageEncoder,
    load_sam_teacher,
    resample_rel_pos,
    sam_config_name,
)

from .conftest import SMALL_SAM, write_sam_checkpoint


def test_loads_published_layout_strictly(teacher_ckpt):
    teacher = load_sam_teacher(teacher_ckpt)
    assert teacher.config == SMALL_SAM
    saved = torch.load(teacher_ckpt, weights_only=True)
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, saved[f"image_encoder.{key}"])
    assert not any(p.requires_grad for p in teacher.parameters())


@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h"])
def test_published_configurations_are_recognised_from_their_shapes(name):
    config = SAM_ENCODER_CONFIGS[name]
    with torch.device("meta"):
        state = SamImageEncoder(config).state_dict()
    assert state["pos_embed"].shape == (1, 64, 64, config.embed_dim)
    glob = config.global_blocks[0]
    assert state[f"blocks.{glob}.attn.rel_pos_h"].shape == (127, config.embed_dim // config.num_heads)
    assert state["blocks.0.attn.rel_pos_w"].shape == (27, config.embed_dim // config.num_heads)
    assert SamEncoderConfig.from_state_dict(state) == config
    assert sam_config_name(config) == name


def test_wrong_files_raise_checkpoint_errors(tmp_path, teacher_ckpt):
    state = torch.load(teacher_ckpt, weights_only=True)
    torch.save({k: v for k, v in state.items() if not k.startswith("image_encoder.")}, tmp_path / "dec.pth")
    with pytest.raises(CheckpointError, match="image_encoder"):
        load_sam_teacher(tmp_path / "dec.pth")
    state["image_encoder.extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match="extra"):
        load_sam_teacher(tmp_path / "extra.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_sam_teacher(tmp_path / "junk.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_sam_teacher(tmp_path / "missing.pth")


def _perturbed_output(teacher, key, images, scale=1.0):
    state = {k: v.clone() for k, v in teacher.state_dict().items()}
    state[key] = state[key] + scale * torch.randn_like(state[key])
    other = SamImageEncoder(teacher.config)
    other.load_state_dict(state)
    with torch.no_grad():
        return other(images)


@pytest.mark.parametrize("size", [224, 64])
def test_relative_position_tables_influence_output_at_student_size(teacher_ckpt, size):
    teacher = load_sam_teacher(teacher_ckpt)
    torch.manual_seed(0)
    images = torch.randn(1, 3, size, size)
    with torch.no_grad():
        base = teacher(images)
    assert base.shape == (1, SMALL_SAM.out_chans, size // 16, size // 16)
    for key in ("blocks.1.attn.rel_pos_h", "blocks.3.attn.rel_pos_w", "blocks.0.attn.rel_pos_h", "pos_embed"):
        changed = _perturbed_output(teacher, key, images)
        assert (changed - base).abs().max() > 1e-3, key


def test_every_row_of_a_global_table_is_used_at_224(teacher_ckpt):
    teacher = load_sam_teacher(teacher_ckpt)
    table = teacher.blocks[1].attn.rel_pos_h
    table.requires_grad_(True)
    out = teacher(torch.randn(1, 3, 224, 224), output="backbone")
    (grad,) = torch.autograd.grad(out.square().sum(), table)
    assert out.shape == (1, SMALL_SAM.embed_dim, 14, 14)
    assert table.shape[0] == 127
    assert (grad.abs().sum(dim=1) > 0).all()


def test_window_tables_are_used_whole_when_the_grid_equals_the_window(teacher_ckpt):
    teacher = load_sam_teacher(teacher_ckpt)
    table = teacher.blocks[0].attn.rel_pos_w
    table.requires_grad_(True)
    out = teacher(torch.randn(1, 3, 224, 224))
    (grad,) = torch.autograd.grad(out.square().sum(), table)
    assert (grad.abs().sum(dim=1) > 0).all()


def test_resampling_keeps_scale_and_centre():
    d = 3
    ramp = (torch.arange(127, dtype=torch.float32) - 63)[:, None].repeat(1, d)
    out = resample_rel_pos(ramp, 14, 64 / 14)
    assert out.shape == (27, d)
    expected = (torch.arange(27, dtype=torch.float32) - 13) * 64 / 14
    assert torch.allclose(out[:, 0], expected, atol=0.05)  # a discrete triangle filter: near-linear
    assert abs(out[13, 0]) < 1e-6
    const = torch.full((127, d), 2.5)
    assert torch.allclose(resample_rel_pos(const, 14, 64 / 14), torch.full((27, d), 2.5))
    window = torch.randn(27, d)
    assert torch.equal(resample_rel_pos(window, 14, 1.0), window)
    assert torch.equal(resample_rel_pos(window, 4, 1.0), window[10:17])


def test_native_size_uses_tables_unchanged(tmp_path):
    path = write_sam_checkpoint(
        tmp_path / "t.pth", SamEncoderConfig(16, 2, 2, (1,), img_size=256, window_size=7, out_chans=16)
    )
    teacher = load_sam_teacher(path)
    block = teacher.blocks[1]
    h, w = block._tables(16, 16)
    assert h is block.attn.rel_pos_h and w is block.attn.rel_pos_w
    out = teacher(torch.randn(2, 3, 256, 256))  # 16 x 16 grid: windows of 7 with padding, as SAM at 1024
    assert out.shape == (2, 16, 16, 16)
