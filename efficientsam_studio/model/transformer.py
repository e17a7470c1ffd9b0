"""Two-way transformer of the EfficientSAM mask decoder.

Prompt tokens (queries, ``(B, Nq, 256)``) and image tokens (keys, ``(B, 4096, 256)``) update each other:
token self-attention, token-to-image cross-attention, an MLP on the tokens, image-to-token
cross-attention. Numerically relevant details of EfficientSAM (they differ from SAM): the first layer
keeps the residual of its self-attention, later layers add the query positional encoding into the
query stream before self-attention, and the MLP uses GELU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import MLP


class DecoderAttention(nn.Module):
    """Attention whose q/k/v projections may shrink the width by ``downsample_rate``.

    ``q (B, Nq, D), k (B, Nk, D), v (B, Nk, D) -> (B, Nq, D)``; inner width ``D / downsample_rate``
    split over ``num_heads`` heads.
    """

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        self.internal_dim = embedding_dim // downsample_rate
        if self.internal_dim % num_heads:
            raise ValueError(f"{num_heads} heads do not divide the inner width {self.internal_dim}")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.v_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Inputs of batch 1 are shared by all B of the others: they are projected once, and their
        heads are expanded (a view, no copy) to batch B, which keeps the fused attention kernel."""
        q = self._split_heads(self.q_proj(q))
        k = self._split_heads(self.k_proj(k))
        v = self._split_heads(self.v_proj(v))
        batch = max(q.shape[0], k.shape[0], v.shape[0])
        q, k, v = (x.expand(batch, -1, -1, -1) for x in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, Nq, D / heads)
        b, _, n, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, self.internal_dim))


class TwoWayAttentionBlock(nn.Module):
    """One layer of the two-way transformer; returns updated ``(queries, keys)``.

    Args:
        skip_first_layer_pe: True for layer 0, whose self-attention sees the tokens without their
            positional encoding (its residual is kept).
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        attention_downsample_rate: int = 2,
        skip_first_layer_pe: bool = False,
    ) -> None:
        super().__init__()
        self.self_attn = DecoderAttention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = DecoderAttention(embedding_dim, num_heads, attention_downsample_rate)
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLP(embedding_dim, mlp_dim, embedding_dim, num_layers=1, activation=nn.GELU)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = DecoderAttention(embedding_dim, num_heads, attention_downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor, key_pe: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``queries (B, Nq, D)``, ``keys (B, Nk, D)``, ``query_pe`` like queries, ``key_pe (1|B, Nk, D)``."""
        if not self.skip_first_layer_pe:
            queries = queries + query_pe
        queries = self.norm1(queries + self.self_attn(queries, queries, queries))

        k = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(queries + query_pe, k, keys))
        queries = self.norm3(queries + self.mlp(queries))

        q = queries + query_pe
        # (the per-prompt term first: a batch-1 ``keys`` then broadcasts on the fast path)
        keys = self.norm4(self.cross_attn_image_to_token(k, q, queries) + keys)
        return queries, keys


class TwoWayTransformer(nn.Module):
    """``depth`` two-way layers, then a final token-to-image attention and LayerNorm.

    ``forward(image_embedding (B, D, h, w), image_pe (1|B, D, h, w), point_embedding (B, Nq, D))``
    returns ``queries (B, Nq, D)`` and ``keys (B, h*w, D)``.
    """

    def __init__(
        self,
        depth: int,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        attention_downsample_rate: int = 2,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim,
                num_heads,
                mlp_dim,
                attention_downsample_rate=attention_downsample_rate,
                skip_first_layer_pe=(i == 0),
            )
            for i in range(depth)
        )
        self.final_attn_token_to_image = DecoderAttention(embedding_dim, num_heads, attention_downsample_rate)
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(
        self, image_embedding: torch.Tensor, image_pe: torch.Tensor, point_embedding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys = image_embedding.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, query_pe=point_embedding, key_pe=key_pe)
        attn = self.final_attn_token_to_image(queries + point_embedding, keys + key_pe, keys)
        return self.norm_final_attn(queries + attn), keys
