"""Padding points as one token: EfficientSAM pads every prompt to 6 points with identical tokens.

Identical tokens stay identical through every layer of the two-way transformer, and a softmax over ``k``
equal entries equals one entry with ``log k`` added to its logit. So the padding of a prompt can be
decoded as a single token whose attention logits carry ``log(padding count)``, wherever tokens are
attended to (token self-attention, image-to-token attention); the results are the same to rounding.
"""

from __future__ import annotations

import numpy as np
import torch


def merge_plan(padding: np.ndarray) -> tuple[int, np.ndarray] | None:
    """How the trailing padding of each prompt collapses into one token, planned on the host.

    ``padding (M, N)`` bool, True for padding (after the real points) -> ``(kept, bias)``: the first
    ``kept`` slots hold the real points, then one token stands for the padding; ``bias (M, kept + 1)``
    float32 is 0 for a slot with a point of the prompt, ``-inf`` for a slot past the prompt's own points
    (nothing attends to it) and ``log(padding count)`` for the padding token (``-inf`` without padding).
    None when nothing would be saved: no padding, padding not trailing, or ``kept + 1 >= N``.
    """
    padding = np.asarray(padding, dtype=bool)
    if not padding.any():
        return None
    real = ~padding
    counts = real.sum(axis=1)
    if not np.array_equal(real, np.arange(real.shape[1]) < counts[:, None]):
        return None  # padding not trailing
    kept = int(counts.max())
    if kept + 1 >= real.shape[1]:
        return None
    real_bias = np.where(np.arange(kept) < counts[:, None], 0.0, -np.inf)
    pad_count = real.shape[1] - counts
    with np.errstate(divide="ignore"):
        pad_bias = np.log(pad_count.astype(np.float64))  # log 0 = -inf: no padding token to attend to
    return kept, np.concatenate([real_bias, pad_bias[:, None]], axis=1).astype(np.float32)


def merge_padding(
    prompt_tokens: torch.Tensor, padding: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Collapse the trailing padding tokens of each prompt into one token with a log-count bias.

    ``prompt_tokens (M, N, D)`` and ``padding (M, N)`` bool (True for padding, after the real points)
    -> ``(tokens (M, N', D), bias (M, N') float32 or None)`` as planned by :func:`merge_plan`: the real
    points' slots, then the padding token. ``bias`` is None, and the tokens are returned as they are,
    when nothing would be saved.
    """
    plan = None if padding is None else merge_plan(padding.cpu().numpy())
    if plan is None:
        return prompt_tokens, None
    kept, bias = plan
    tokens = torch.cat([prompt_tokens[:, :kept], prompt_tokens[:, -1:]], dim=1)
    return tokens, torch.from_numpy(bias).to(prompt_tokens.device)


def padding_bias(real: torch.Tensor, pad_count: torch.Tensor) -> torch.Tensor:
    """Attention biases ``(M, n + 1)`` float32 of ``n`` point slots followed by one padding token.

    ``real (M, n)`` bool: the slot holds a point of the prompt (bias 0) or nothing (``-inf``);
    ``pad_count (M, 1)``: how many padding points the last token stands for (bias ``log(count)``, or
    ``-inf`` for none). Traceable, so the ONNX decoder graph builds its biases with it too.
    """
    real_bias = torch.where(real, 0.0, float("-inf"))
    pad_count = pad_count.float()
    pad_bias = torch.where(pad_count > 0, pad_count.clamp_min(1.0).log(), float("-inf"))
    return torch.cat([real_bias, pad_bias], dim=1).float()
