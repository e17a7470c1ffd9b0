"""The two-way transformer's token MLP for the bfloat16 inference decoder.

A click decodes seven tokens, so each of the MLP's two products reads a 2 MB float32 weight to multiply
a ``(7, 256)`` or ``(7, 2048)`` matrix: the time goes to the weight's memory traffic and to a kernel
poorly suited to seven rows. Here the weights are kept in bfloat16 (half the traffic) and the tokens
are laid out as columns, ``y^T = W2 gelu(W1 x^T + b1) + b2``, so each product has the weight as its
left, wide operand, which the bfloat16 kernels (AMX on recent Intel CPUs) handle well; only the
tokens are transposed. The tokens are rounded to bfloat16 on the way in and the output is returned in
float32, where the residual sum and the layer norm run. In float32 the module's own form is the
faster one (measured), so :class:`FastMaskDecoder` uses this only in bfloat16.
"""

from __future__ import annotations

import torch

from .common import MLP

__all__ = ["TransposedTokenMLP"]


class TransposedTokenMLP:
    """``MLP`` with one hidden layer and exact (erf) GELU, as ``(M, T, D) -> (M, T, D)`` in ``dtype``.

    Build it with :meth:`from_mlp`, which returns None for MLPs of another shape (the caller keeps the
    module). The weights are copied, so build a new one after changing the module's weights.
    """

    def __init__(self, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor) -> None:
        self.w1, self.b1, self.w2, self.b2 = w1, b1, w2, b2

    @classmethod
    def from_mlp(cls, mlp: MLP, dtype: torch.dtype) -> TransposedTokenMLP | None:
        if len(mlp.layers) != 1:
            return None
        linear, activation = mlp.layers[0]
        if not isinstance(activation, torch.nn.GELU) or activation.approximate != "none":
            return None

        def copy(t: torch.Tensor) -> torch.Tensor:
            return t.detach().to(dtype).contiguous()

        return cls(
            copy(linear.weight), copy(linear.bias[:, None]), copy(mlp.fc.weight), copy(mlp.fc.bias[:, None])
        )

    def to(self, device: torch.device | str) -> TransposedTokenMLP:
        return TransposedTokenMLP(*(t.to(device) for t in (self.w1, self.b1, self.w2, self.b2)))

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens (M, T, D)`` float32 -> ``(M, T, D)`` float32."""
        d = tokens.shape[-1]
        columns = tokens.reshape(-1, d).t().to(self.w1.dtype)  # (D, M*T)
        hidden = torch.addmm(self.b1, self.w1, columns)  # (H, M*T)
        torch.ops.aten.gelu_(hidden)
        out = torch.addmm(self.b2, self.w2, hidden)  # (D, M*T)
        return out.t().float().reshape(tokens.shape)
