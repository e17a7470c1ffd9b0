"""Padding points as one token: EfficientSAM pads every prompt to 6 points with identical tokens.

Identical tokens stay identical through every layer of the two-way transformer, and a softmax over ``k``
equal entries equals one entry with ``log k`` added to its logit. So the padding of a prompt can be
decoded as a single token whose attention logits carry ``log(padding count)``, wherever tokens are
attended to (token self-attention, image-to-token attention); the results are the same to rounding.
"""

from __future__ import annotations

import torch


def merge_padding(
    prompt_tokens: torch.Tensor, padding: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Collapse the trailing padding tokens of each prompt into one token with a log-count bias.

    ``prompt_tokens (M, N, D)`` and ``padding (M, N)`` bool (True for padding, after the real points)
    -> ``(tokens (M, N', D), bias (M, N') float32 or None)``: the first ``max_real`` slots hold the real
    points (slots past a prompt's own points get bias ``-inf``, so nothing attends to them), the last the
    padding token with bias ``log(padding count)``. ``bias`` is None, and the tokens are returned as
    they are, when nothing would be saved (no padding, padding not trailing, or ``N' >= N``).
    """
    if padding is None or not bool(padding.any()):
        return prompt_tokens, None
    real = ~padding
    counts = real.sum(1)
    if not bool(torch.equal(real, torch.arange(real.shape[1], device=real.device) < counts[:, None])):
        return prompt_tokens, None  # padding not trailing
    kept = int(counts.max())
    if kept + 1 >= prompt_tokens.shape[1]:
        return prompt_tokens, None
    slots = torch.arange(kept, device=counts.device)
    tokens = torch.cat([prompt_tokens[:, :kept], prompt_tokens[:, -1:]], dim=1)
    return tokens, padding_bias(slots < counts[:, None], prompt_tokens.shape[1] - counts[:, None])


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
