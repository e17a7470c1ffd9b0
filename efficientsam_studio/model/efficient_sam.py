"""The EfficientSAM network: image encoder, prompt encoder and mask decoder in one module.

Pre-processing (resize to 1024x1024, normalisation) and post-processing (sorting, upsampling) live in
``efficientsam_studio.engine``; this module works in the model's input space.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .image_encoder import ImageEncoderViT
from .mask_decoder import MaskDecoder
from .prompt_encoder import PromptEncoder

PIXEL_MEAN = (0.485, 0.456, 0.406)
"""ImageNet mean of RGB values in [0, 1]; not stored in the checkpoints."""
PIXEL_STD = (0.229, 0.224, 0.225)
"""ImageNet standard deviation of RGB values in [0, 1]; not stored in the checkpoints."""


class EfficientSam(nn.Module):
    """EfficientSAM: ``image -> embedding (B, 256, 64, 64)``, ``embedding + prompts -> masks``.

    Prompts are points in the model's input space: pixel coordinates ``(x, y)`` of the
    ``img_size`` x ``img_size`` (1024) resized image, with labels -1 padding, 0 negative, 1 positive,
    2 box top-left, 3 box bottom-right. At most ``max_num_points`` (6) points per prompt; shorter
    prompts are padded with coordinate -1 and label -1.
    """

    def __init__(
        self,
        image_encoder: ImageEncoderViT,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
        max_num_points: int = 6,
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.max_num_points = max_num_points

    @property
    def img_size(self) -> int:
        """Side of the square input space (1024)."""
        return self.image_encoder.img_size

    def get_image_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised ``(B, 3, 1024, 1024)`` images -> ``(B, 256, 64, 64)`` embeddings."""
        return self.image_encoder(images)

    def pad_prompts(self, points: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad ``points (B, Q, N, 2)`` / ``labels (B, Q, N)`` to ``max_num_points`` with -1.

        Raises ValueError for N > ``max_num_points``: choosing which points to keep is the caller's
        decision (see ``efficientsam_studio.engine.prompts``).
        """
        n = points.shape[2]
        if n > self.max_num_points:
            raise ValueError(f"the decoder takes at most {self.max_num_points} points per prompt, got {n}")
        if n < self.max_num_points:
            missing = self.max_num_points - n
            points = F.pad(points, (0, 0, 0, missing), value=-1.0)
            labels = F.pad(labels, (0, missing), value=-1)
        return points, labels

    def predict_masks(
        self,
        image_embeddings: torch.Tensor,
        points: torch.Tensor,
        labels: torch.Tensor,
        multimask_output: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode prompts against precomputed embeddings.

        Args:
            image_embeddings: ``(B, 256, 64, 64)``.
            points: ``(B, Q, N, 2)`` float, ``(x, y)`` in input space (-1 = padding).
            labels: ``(B, Q, N)`` labels as in the class docstring.
            multimask_output: 3 candidate masks (True) or the single-mask output (False).

        Returns:
            low-res logits ``(B, Q, K, 256, 256)`` and predicted IoU ``(B, Q, K)``, K = 3 or 1,
            in the model's own (unsorted) order.
        """
        points, labels = self.pad_prompts(points, labels)
        b, q, n, _ = points.shape
        sparse = self.prompt_encoder(points.reshape(b * q, n, 2), labels.reshape(b * q, n))
        sparse = sparse.reshape(b, q, n, -1)
        return self.mask_decoder(
            image_embeddings, self.prompt_encoder.get_dense_pe(), sparse, multimask_output=multimask_output
        )

    def forward(
        self,
        images: torch.Tensor,
        points: torch.Tensor,
        labels: torch.Tensor,
        multimask_output: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode normalised ``(B, 3, 1024, 1024)`` images and decode ``points``/``labels`` as in
        :meth:`predict_masks`; returns logits ``(B, Q, K, 256, 256)`` and IoU ``(B, Q, K)``."""
        return self.predict_masks(self.get_image_embeddings(images), points, labels, multimask_output)
