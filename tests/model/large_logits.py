"""A tiny model whose decoder gives logits of several units, as trained weights do (random
initialisation gives logits well below 1, where a wrong term in a decoder rewrite hides in rounding)."""

from __future__ import annotations

import torch

from efficientsam_studio.model import EfficientSam, build_model


def tiny_model_with_large_logits(seed: int) -> EfficientSam:
    """The ``tiny`` config, seeded; decoder weights doubled, biases and norm parameters redrawn around
    their neutral values (norm weights about 1, the rest about 0) with spread 0.3."""
    torch.manual_seed(seed)
    model = build_model("tiny").eval()
    with torch.no_grad():
        for name, param in model.mask_decoder.named_parameters():
            if name.endswith("bias") or "norm" in name:
                offset = 1.0 if "norm" in name and "weight" in name else 0.0
                param.copy_(torch.randn_like(param) * 0.3 + offset)
            else:
                param.mul_(2.0)
    return model
