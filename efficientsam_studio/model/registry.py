"""Model configurations by name, and builders.

``vit_t`` and ``vit_s`` are the published EfficientSAM models; ``tiny`` has the same key layout with a
64-wide, 2-block, 1-head encoder, for tests and quick CPU runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .efficient_sam import EfficientSam
from .image_encoder import ImageEncoderViT
from .mask_decoder import MaskDecoder
from .prompt_encoder import PromptEncoder
from .transformer import TwoWayTransformer


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of one EfficientSAM variant (widths in channels, sizes in pixels)."""

    encoder_dim: int
    encoder_depth: int
    encoder_heads: int
    mlp_ratio: float = 4.0
    img_size: int = 1024
    patch_size: int = 16
    prompt_dim: int = 256
    decoder_depth: int = 2
    decoder_heads: int = 8
    decoder_mlp_dim: int = 2048
    num_multimask_outputs: int = 3
    max_num_points: int = 6


MODEL_CONFIGS: dict[str, ModelConfig] = {
    "vit_t": ModelConfig(encoder_dim=192, encoder_depth=12, encoder_heads=3),
    "vit_s": ModelConfig(encoder_dim=384, encoder_depth=12, encoder_heads=6),
    "tiny": ModelConfig(encoder_dim=64, encoder_depth=2, encoder_heads=1),
}


def get_config(name: str) -> ModelConfig:
    """The :class:`ModelConfig` registered as ``name``; ValueError naming the choices otherwise."""
    try:
        return MODEL_CONFIGS[name]
    except KeyError:
        choices = ", ".join(MODEL_CONFIGS)
        raise ValueError(f"unknown model {name!r}; choose one of: {choices}") from None


def build_model_from_config(config: ModelConfig) -> EfficientSam:
    """A randomly initialised :class:`EfficientSam` for ``config``."""
    grid = config.img_size // config.patch_size
    encoder = ImageEncoderViT(
        embed_dim=config.encoder_dim,
        depth=config.encoder_depth,
        num_heads=config.encoder_heads,
        mlp_ratio=config.mlp_ratio,
        img_size=config.img_size,
        patch_size=config.patch_size,
        neck_dim=config.prompt_dim,
    )
    prompt_encoder = PromptEncoder(
        embed_dim=config.prompt_dim,
        image_embedding_size=(grid, grid),
        input_image_size=(config.img_size, config.img_size),
    )
    transformer = TwoWayTransformer(
        depth=config.decoder_depth,
        embedding_dim=config.prompt_dim,
        num_heads=config.decoder_heads,
        mlp_dim=config.decoder_mlp_dim,
    )
    decoder = MaskDecoder(
        transformer_dim=config.prompt_dim,
        transformer=transformer,
        num_multimask_outputs=config.num_multimask_outputs,
    )
    return EfficientSam(encoder, prompt_encoder, decoder, max_num_points=config.max_num_points)


def build_model(name: str) -> EfficientSam:
    """A randomly initialised :class:`EfficientSam` of the registered configuration ``name``."""
    return build_model_from_config(get_config(name))


def load_model(name: str, checkpoint_path: str | Path, device: str | torch.device = "cpu") -> EfficientSam:
    """Build ``name`` and load ``checkpoint_path`` strictly; returns the model in eval mode on ``device``.

    The file may hold ``{"model": state_dict}`` (the published format) or a bare state_dict, or be a
    ``.zip`` holding one such ``.pt``. Raises ``CheckpointError`` naming the file and the problem
    (missing, corrupt, a SAM checkpoint, another model size, missing or unexpected keys).
    """
    from efficientsam_studio.engine.checkpoints import load_state_dict_file

    state_dict = load_state_dict_file(checkpoint_path, name)
    with torch.device("meta"):
        model = build_model(name)
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model.to(device).eval()
