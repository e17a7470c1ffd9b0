"""Prompt points to decoder tokens on the host, in numpy.

The same function as ``PromptEncoder.forward`` after ``to_model_space``, for a torch backend's decoder:
a click is two points (the point and the merged padding), and the prompt encoder's twenty-odd small
torch operations cost a few hundred microseconds for them, where these numpy ones cost a few tens.
The results agree with the module to float32 rounding (``tests/engine/test_point_encoding.py``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from efficientsam_studio.model.prompt_encoder import PromptEncoder

__all__ = ["HostPointEncoder"]


class HostPointEncoder:
    """Copies of a :class:`PromptEncoder`'s weights, applied in numpy float32.

    Build a new one after the prompt encoder's weights change.
    """

    def __init__(self, encoder: PromptEncoder, img_size: int) -> None:
        self.img_size = int(img_size)
        self.input_size = tuple(int(v) for v in encoder.input_image_size)
        matrix = encoder.pe_layer.positional_encoding_gaussian_matrix
        self.matrix = matrix.detach().float().cpu().numpy().copy()  # (2, C/2)
        self.learned = {  # label -> learned embedding added to the positional encoding
            label: table.weight.detach().float().cpu().numpy()[0].copy()
            for label, table in encoder.label_embeddings().items()
        }

    def encode(self, coords: np.ndarray, labels: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        """``coords (Q, n, 2)`` pixels ``(x, y)`` of an ``original_size`` = (H, W) image (negative for
        padding), ``labels (Q, n)`` -> tokens ``(Q, n, D)`` float32."""
        coords = np.asarray(coords, dtype=np.float32)
        h, w = original_size
        # as to_model_space, then the prompt encoder: x * size / W (-1 for padding), + 0.5, / input size
        frame = np.array([w, h], dtype=np.float32)
        scaled = np.where(coords >= 0, coords * np.float32(self.img_size) / frame, np.float32(-1.0))
        normalised = (scaled + np.float32(0.5)) / np.array(self.input_size[::-1], dtype=np.float32)
        projected = (2 * normalised - 1) @ self.matrix
        projected *= np.float32(2 * math.pi)
        tokens = np.concatenate([np.sin(projected), np.cos(projected)], axis=-1)
        labels = np.asarray(labels)
        for label, row in self.learned.items():
            selected = labels == label
            if selected.any():
                tokens[selected] += row
        return tokens
