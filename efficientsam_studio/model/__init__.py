"""Torch modules of EfficientSAM, loading the published checkpoints unchanged.

``build_model(name)`` returns a randomly initialised :class:`EfficientSam`; ``load_model(name, path)``
loads a checkpoint strictly. ``ImageEncoderViT`` and ``Block`` are exported for building students.
"""

from .efficient_sam import PIXEL_MEAN, PIXEL_STD, EfficientSam
from .image_encoder import Attention, Block, ImageEncoderViT, resize_pos_embed
from .mask_decoder import MaskDecoder
from .prompt_encoder import PromptEncoder
from .registry import MODEL_CONFIGS, ModelConfig, build_model, build_model_from_config, get_config, load_model
from .transformer import TwoWayTransformer

__all__ = [
    "MODEL_CONFIGS",
    "PIXEL_MEAN",
    "PIXEL_STD",
    "Attention",
    "Block",
    "EfficientSam",
    "ImageEncoderViT",
    "MaskDecoder",
    "ModelConfig",
    "PromptEncoder",
    "TwoWayTransformer",
    "build_model",
    "build_model_from_config",
    "get_config",
    "load_model",
    "resize_pos_embed",
]
