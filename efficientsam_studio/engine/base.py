"""The ``Predictor`` protocol and :class:`BasePredictor`, the base of predictors that keep their
embedding in a framework tensor (torch).

A predictor holds one image at a time: ``set_image`` encodes it (or ``set_embedding`` installs a cached
embedding), then any number of ``predict`` / ``predict_batch`` calls decode prompts against it.
Coordinates are ``(x, y)`` in original image pixels; masks come back at the original ``(H, W)``.
Backends implement three steps: ``_encode`` (image -> embedding), ``_decode`` (embedding + point
lists -> unsorted low-res logits and IoU as float32 numpy) and the embedding's conversion to and from
numpy. Prompt handling, sorting and upsampling (OpenCV bicubic) are those of
:class:`~efficientsam_studio.engine.numpy_predictor.NumpyPredictor`, so every backend shares them and
returns the same types. This module imports no torch.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .numpy_predictor import EMBEDDING_SHAPE, LOW_RES_SIZE, BatchPrediction, NoImageError, NumpyPredictor
from .prompts import MAX_POINTS, Prompt, PromptInfo

__all__ = [
    "EMBEDDING_SHAPE",
    "LOW_RES_SIZE",
    "BasePredictor",
    "BatchPrediction",
    "NoImageError",
    "Predictor",
]


@runtime_checkable
class Predictor(Protocol):
    """What every backend offers (SamPredictor call shape)."""

    model_name: str
    backend: str
    original_size: tuple[int, int] | None
    last_prompt_info: PromptInfo | None

    def set_image(self, image: np.ndarray) -> None: ...

    def set_embedding(self, embedding: np.ndarray, original_size: tuple[int, int]) -> None: ...

    def get_image_embedding(self) -> np.ndarray: ...

    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        multimask_output: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def predict_batch(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        boxes: np.ndarray | None = None,
        *,
        prompts: Sequence[Prompt] | None = None,
        multimask_output: bool = True,
        return_masks: bool = True,
        min_score: float | None = None,
    ) -> BatchPrediction: ...

    def masks_from_logits(self, low_res_logits: np.ndarray) -> np.ndarray: ...

    def reset_image(self) -> None: ...


class BasePredictor(NumpyPredictor):
    """:class:`NumpyPredictor` whose embedding lives in the backend's own tensor type (on its device).

    Backends implement ``_encode`` (image -> their embedding object), ``_decode`` (returning float32
    numpy, see :meth:`NumpyPredictor._decode`) and the two embedding conversions below.

    Attributes: as :class:`NumpyPredictor`; ``decode_chunk`` (8 by default) bounds the prompts decoded
    together in ``predict_batch``.
    """

    def __init__(self, model_name: str, max_points: int = MAX_POINTS, decode_chunk: int = 8) -> None:
        super().__init__(model_name, max_points=max_points, decode_chunk=decode_chunk)

    @abstractmethod
    def _embedding_to_numpy(self, embedding: Any) -> np.ndarray:
        """The backend's embedding -> float32 numpy ``(1, 256, 64, 64)`` (a copy)."""

    @abstractmethod
    def _embedding_from_numpy(self, embedding: np.ndarray) -> Any:
        """float32 numpy ``(1, 256, 64, 64)`` -> the backend's embedding object."""
