"""Post-processing: order candidates best first and turn 256x256 logits into masks of the image size.

Masks are ``bicubic(logits) > 0`` with the 256x256 logits resized straight to the original ``(H, W)``
(align_corners=False), as in the published code. Only the masks that are returned get upsampled.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MASK_THRESHOLD = 0.0
"""Logit above which a pixel belongs to the mask."""


def sort_by_score(
    logits: torch.Tensor, scores: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Order the last axis of ``scores (..., K)`` and the K axis of ``logits (..., K, h, w)`` best first.

    Returns ``(logits, scores, order)``; ``order (..., K)`` holds the model's indices in the new order.
    The sort is stable, so equal scores keep the model's order.
    """
    order = torch.argsort(scores, dim=-1, descending=True, stable=True)
    sorted_scores = torch.gather(scores, -1, order)
    index = order[..., None, None].expand(*order.shape, *logits.shape[-2:])
    return torch.gather(logits, -3, index), sorted_scores, order


def upsample_logits(logits: torch.Tensor, original_size: tuple[int, int]) -> torch.Tensor:
    """``(..., h, w)`` logits -> ``(..., H, W)`` by bicubic interpolation (align_corners=False)."""
    lead = logits.shape[:-2]
    flat = logits.reshape(1, -1, *logits.shape[-2:])
    up = F.interpolate(flat, size=tuple(original_size), mode="bicubic", align_corners=False)
    return up.reshape(*lead, *original_size)


def masks_from_logits(logits: torch.Tensor, original_size: tuple[int, int]) -> np.ndarray:
    """``(..., 256, 256)`` logits -> bool masks ``(..., H, W)`` (``bicubic(logits) > 0``) as numpy."""
    if logits.numel() == 0:
        return np.zeros((*logits.shape[:-2], *original_size), dtype=bool)
    return (upsample_logits(logits, original_size) > MASK_THRESHOLD).cpu().numpy()
