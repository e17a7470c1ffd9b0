"""The EfficientSAM image encoder: a plain ViT with global attention in every block, and a neck.

Default (published) behaviour: a normalised ``(B, 3, 1024, 1024)`` image becomes ``(B, 256, 64, 64)``.
Other input sizes work too (height and width multiples of the patch size, e.g. 224 -> a 14x14 token grid),
which the SAMI trainer uses; ``forward_tokens`` returns the tokens before the neck.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .common import LayerNorm2d

PRETRAIN_IMG_SIZE = 224
"""``pos_embed`` holds one class-token slot plus the (224 / 16)^2 = 14x14 grid of the pretraining size."""


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection, ``(B, N, C) -> (B, N, C)``.

    Uses ``torch.nn.functional.scaled_dot_product_attention`` (scale ``head_dim ** -0.5``).
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embedding width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, N, head_dim)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class FeedForward(nn.Module):
    """``fc1`` -> exact GELU -> ``fc2``, ``(B, N, C) -> (B, N, C)`` with a ``hidden``-wide middle."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (LayerNorm eps 1e-6), ``(B, N, C) -> (B, N, C)``.

    ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``; the MLP is ``mlp_ratio * dim`` wide.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` convolution, ``(B, 3, H, W) -> (B, C, H/p, W/p)``."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


def resize_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Drop the class-token slot of ``pos_embed`` (1, 1 + g*g, C) and fit its g x g grid to ``grid``.

    Returns ``(1, h, w, C)``. The grid is resized bicubically (align_corners=False) when it differs
    from ``grid``; otherwise it is only reshaped.
    """
    tokens = pos_embed[:, 1:]
    side = math.isqrt(tokens.shape[1])
    if side * side != tokens.shape[1]:
        raise ValueError(f"pos_embed holds {tokens.shape[1]} grid slots, not a square number")
    h, w = grid
    if (side, side) == (h, w):
        return tokens.reshape(1, h, w, -1)
    square = tokens.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    resized = F.interpolate(square, size=(h, w), mode="bicubic", align_corners=False)
    return resized.permute(0, 2, 3, 1)


class ImageEncoderViT(nn.Module):
    """ViT image encoder of EfficientSAM.

    Args:
        embed_dim: token width C (192 for vit_t, 384 for vit_s).
        depth: number of :class:`Block` s.
        num_heads: attention heads per block.
        mlp_ratio: MLP width as a multiple of C.
        img_size: the input side the prompts are scaled to (1024 for the published models).
        patch_size: patch side in pixels (16).
        neck_dim: output channels of the neck (256).

    ``forward``: ``(B, 3, H, W)`` normalised image, H and W multiples of ``patch_size``
    -> ``(B, neck_dim, H/16, W/16)``. ``forward_tokens`` stops before the neck: ``(B, H/16, W/16, C)``.
    """

    def __init__(
        self,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        img_size: int = 1024,
        patch_size: int = 16,
        neck_dim: int = 256,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        self.img_size = img_size
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.neck_dim = neck_dim
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        num_positions = (PRETRAIN_IMG_SIZE // patch_size) ** 2 + 1
        self.pos_embed = nn.Parameter(torch.zeros(1, num_positions, embed_dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dim, neck_dim, kernel_size=1, bias=False),
            LayerNorm2d(neck_dim),
            nn.Conv2d(neck_dim, neck_dim, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(neck_dim),
        )
        self._pos_cache: tuple[tuple, torch.Tensor] | None = None

    @property
    def image_embedding_size(self) -> int:
        """Side of the output grid at the default input size (64 for 1024 / 16)."""
        return self.img_size // self.patch_size

    def pos_embed_for_grid(self, grid: tuple[int, int]) -> torch.Tensor:
        """Positional embedding ``(1, h, w, C)`` for a ``grid`` of tokens.

        While gradients are off (inference), the resized grid is cached; the cache key holds the
        parameter's storage, version counter, dtype and device, so loading or moving weights
        invalidates it.
        """
        pos = self.pos_embed
        if torch.is_grad_enabled() and pos.requires_grad:
            return resize_pos_embed(pos, grid)
        try:
            version = pos._version
        except RuntimeError:  # weights made under torch.inference_mode have no version counter
            version = -1
        key = (grid, pos.data_ptr(), version, pos.dtype, pos.device)
        if self._pos_cache is None or self._pos_cache[0] != key:
            self._pos_cache = (key, resize_pos_embed(pos, grid))
        return self._pos_cache[1]

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> tokens ``(B, H/p, W/p, C)`` after the last block (no final norm)."""
        if x.shape[-2] % self.patch_size or x.shape[-1] % self.patch_size:
            raise ValueError(
                f"input of size {tuple(x.shape[-2:])} is not a multiple of the patch size {self.patch_size}"
            )
        x = self.patch_embed(x).permute(0, 2, 3, 1)  # (B, h, w, C)
        b, h, w, c = x.shape
        x = (x + self.pos_embed_for_grid((h, w))).reshape(b, h * w, c)
        for block in self.blocks:
            x = block(x)
        return x.reshape(b, h, w, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` normalised image -> ``(B, neck_dim, H/p, W/p)`` image embedding."""
        return self.neck(self.forward_tokens(x).permute(0, 3, 1, 2))
