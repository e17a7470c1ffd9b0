"""The torch backend: :class:`TorchPredictor` runs an :class:`EfficientSam` module."""

from __future__ import annotations

import numpy as np
import torch

from efficientsam_studio.model import EfficientSam

from .base import BasePredictor
from .preprocess import preprocess_image
from .prompts import to_model_space


class TorchPredictor(BasePredictor):
    """SamPredictor-style predictor on a torch model (see :class:`~.base.BasePredictor` for the API).

    Args:
        model: an :class:`EfficientSam` with its weights loaded (it is put in eval mode).
        model_name: registry name, for reports and cache keys.
        device: where the model and the embedding live.
    """

    backend = "torch"

    def __init__(self, model: EfficientSam, model_name: str, device: torch.device | str = "cpu") -> None:
        super().__init__(model_name, max_points=model.max_num_points)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    def encode_image(self, image: np.ndarray) -> torch.Tensor:
        """RGB uint8 ``(H, W, 3)`` -> embedding ``(1, 256, 64, 64)`` on the device (no state change)."""
        with torch.inference_mode():
            return self.model.get_image_embeddings(preprocess_image(image, self.device, self.model.img_size))

    def _encode(self, image: np.ndarray) -> torch.Tensor:
        return self.encode_image(image)

    def _decode(self, coords: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            points = torch.from_numpy(coords).to(self.device)
            points = to_model_space(points, self.original_size, self.model.img_size)
            point_labels = torch.from_numpy(labels).to(self.device)
            logits, iou = self.model.predict_masks(
                self._embedding, points[None], point_labels[None], multimask_output=True
            )
        return logits[0].float().cpu().numpy(), iou[0].float().cpu().numpy()

    def _embedding_to_numpy(self, embedding: torch.Tensor) -> np.ndarray:
        return embedding.detach().to("cpu", torch.float32).numpy().copy()

    def _embedding_from_numpy(self, embedding: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(embedding)).to(self.device)
