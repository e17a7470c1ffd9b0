"""Prompt encoder: points and box corners -> sparse embeddings for the mask decoder.

Coordinates arrive in the model's input space (pixels of the 1024x1024 resized image, ``(x, y)``),
with -1 marking padding. Labels: -1 padding, 0 negative point, 1 positive point, 2 box top-left,
3 box bottom-right. Label 0 adds no learned embedding, only the positional encoding.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class PositionEmbeddingRandom(nn.Module):
    """Random-Fourier positional encoding with a stored ``(2, num_pos_feats)`` Gaussian matrix.

    Encodes coordinates normalised to [0, 1] into ``2 * num_pos_feats`` features (sin, then cos).
    """

    def __init__(self, num_pos_feats: int) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, num_pos_feats))

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """``(..., 2)`` coordinates in [0, 1] -> ``(..., 2 * num_pos_feats)``."""
        projected = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        projected = 2 * math.pi * projected
        return torch.cat([torch.sin(projected), torch.cos(projected)], dim=-1)

    def grid(self, size: tuple[int, int]) -> torch.Tensor:
        """Encoding of the centres of an ``(h, w)`` grid, shape ``(2 * num_pos_feats, h, w)``."""
        h, w = size
        matrix = self.positional_encoding_gaussian_matrix
        ones = torch.ones((h, w), device=matrix.device, dtype=matrix.dtype)
        y = (ones.cumsum(dim=0) - 0.5) / h
        x = (ones.cumsum(dim=1) - 0.5) / w
        return self.encode(torch.stack([x, y], dim=-1)).permute(2, 0, 1)

    def forward_with_coords(self, coords: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """``(B, N, 2)`` pixel coordinates ``(x, y)`` in an ``image_size`` = (H, W) frame -> ``(B, N, C)``."""
        normalised = torch.stack([coords[..., 0] / image_size[1], coords[..., 1] / image_size[0]], dim=-1)
        return self.encode(normalised.float())


class PromptEncoder(nn.Module):
    """Embeds up to N labelled points per prompt.

    Args:
        embed_dim: width of the prompt tokens and of the image embedding (256).
        image_embedding_size: (h, w) of the image embedding grid (64, 64).
        input_image_size: (H, W) of the model's input space (1024, 1024).

    ``forward(coords (B, N, 2), labels (B, N)) -> (B, N, embed_dim)``.
    """

    def __init__(
        self, embed_dim: int, image_embedding_size: tuple[int, int], input_image_size: tuple[int, int]
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = image_embedding_size
        self.input_image_size = input_image_size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.invalid_points = nn.Embedding(1, embed_dim)
        self.point_embeddings = nn.Embedding(1, embed_dim)
        self.bbox_top_left_embeddings = nn.Embedding(1, embed_dim)
        self.bbox_bottom_right_embeddings = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> torch.Tensor:
        """Positional encoding of the image embedding grid, ``(1, embed_dim, h, w)``."""
        return self.pe_layer.grid(self.image_embedding_size).unsqueeze(0)

    def label_embeddings(self) -> dict[int, nn.Embedding]:
        """Label -> the learned embedding added to a point's positional encoding (label 0 adds none)."""
        return {
            -1: self.invalid_points,
            1: self.point_embeddings,
            2: self.bbox_top_left_embeddings,
            3: self.bbox_bottom_right_embeddings,
        }

    def forward(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``coords (B, N, 2)`` in input pixels (shifted here by +0.5 to pixel centres), ``labels (B, N)``."""
        embedding = self.pe_layer.forward_with_coords(coords + 0.5, self.input_image_size)
        for label, table in self.label_embeddings().items():
            embedding = embedding + table.weight[:, None, :] * (labels == label)[..., None]
        return embedding
