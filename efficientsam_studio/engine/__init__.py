"""Inference: image -> embedding -> masks, behind one :class:`Predictor` protocol.

``load_predictor(model="vit_t", checkpoint=None, device="auto", backend="torch")`` returns a predictor
with ``set_image``, ``predict``, ``predict_batch``, ``get_image_embedding`` and ``set_embedding``.
Names are imported lazily so that light modules of this package (weights, checkpoints) load quickly.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_predictor": "loader",
    "register_backend": "loader",
    "available_backends": "loader",
    "resolve_checkpoint": "loader",
    "BackendError": "loader",
    "Predictor": "base",
    "BasePredictor": "base",
    "BatchPrediction": "numpy_predictor",
    "NoImageError": "numpy_predictor",
    "Prompt": "prompts",
    "PromptInfo": "prompts",
    "PromptError": "prompts",
    "PromptOutsideImageError": "prompts",
    "PromptsTruncatedWarning": "prompts",
    "MAX_POINTS": "prompts",
    "PROMPT_POLICY": "prompts",
    "TorchPredictor": "torch_backend",
    "OnnxPredictor": "onnx_backend",
    "CachedPredictor": "cache",
    "EmbeddingCache": "cache",
    "DeviceError": "device",
    "resolve_device": "device",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
