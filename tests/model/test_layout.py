"""The modules' state_dict is the published one, key for key and shape for shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from efficientsam_studio.model import MODEL_CONFIGS, build_model


def _meta_model(name: str):
    with torch.device("meta"):
        return build_model(name)


def _shapes(name: str) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in _meta_model(name).state_dict().items()}


@pytest.mark.parametrize(("name", "expected"), [("vit_t", 10_223_204), ("vit_s", 26_413_028)])
def test_parameter_count_is_the_published_one(name: str, expected: int) -> None:
    assert sum(p.numel() for p in _meta_model(name).parameters()) == expected


def test_vit_t_layout_matches_reference(reference_dir: Path) -> None:
    layout = json.loads((reference_dir / "layout_vit_t.json").read_text())
    shapes = _shapes("vit_t")
    assert list(shapes) == list(layout)
    assert shapes == layout


def test_vit_s_has_the_same_keys_384_wide(reference_dir: Path) -> None:
    layout = json.loads((reference_dir / "layout_vit_t.json").read_text())
    shapes = _shapes("vit_s")
    assert set(shapes) == set(layout)
    differing = {k for k in layout if shapes[k] != layout[k]}
    assert differing, "vit_s must differ from vit_t somewhere"
    for key in differing:
        assert key.startswith("image_encoder."), key
        assert 384 in shapes[key] or 1152 in shapes[key] or 1536 in shapes[key], (key, shapes[key])
    assert shapes["image_encoder.pos_embed"] == [1, 197, 384]
    assert shapes["image_encoder.blocks.11.attn.qkv.weight"] == [1152, 384]


def test_tiny_has_the_layout_of_a_two_block_encoder() -> None:
    tiny, vit_t = _shapes("tiny"), _shapes("vit_t")
    expected_keys = {k for k in vit_t if not k.startswith("image_encoder.blocks.")} | {
        k for k in vit_t if k.startswith(("image_encoder.blocks.0.", "image_encoder.blocks.1."))
    }
    assert set(tiny) == expected_keys
    assert tiny["image_encoder.pos_embed"] == [1, 197, 64]
    config = MODEL_CONFIGS["tiny"]
    assert (config.encoder_dim, config.encoder_depth, config.encoder_heads) == (64, 2, 1)


def test_configs_of_published_models() -> None:
    assert (MODEL_CONFIGS["vit_t"].encoder_dim, MODEL_CONFIGS["vit_t"].encoder_heads) == (192, 3)
    assert (MODEL_CONFIGS["vit_s"].encoder_dim, MODEL_CONFIGS["vit_s"].encoder_heads) == (384, 6)
    assert MODEL_CONFIGS["vit_t"].encoder_depth == MODEL_CONFIGS["vit_s"].encoder_depth == 12


def test_unknown_model_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="vit_t, vit_s, tiny"):
        build_model("vit_b")
