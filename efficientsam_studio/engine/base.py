"""The ``Predictor`` protocol and the backend-independent half of every predictor.

A predictor holds one image at a time: ``set_image`` encodes it (or ``set_embedding`` installs a cached
embedding), then any number of ``predict`` / ``predict_batch`` calls decode prompts against it.
Coordinates are ``(x, y)`` in original image pixels; masks come back at the original ``(H, W)``.
Backends implement three steps: ``_encode`` (image -> embedding), ``_decode`` (embedding + point
lists -> unsorted low-res logits and IoU) and the embedding's conversion to and from numpy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from efficientsam_studio.errors import StudioError

from .numpy_predictor import EMBEDDING_SHAPE, LOW_RES_SIZE, BatchPrediction, NoImageError
from .postprocess import masks_from_logits, sort_by_score
from .preprocess import check_rgb_image
from .prompts import (
    MAX_POINTS,
    Prompt,
    PromptError,
    PromptInfo,
    encode_prompt,
    prompts_from_arrays,
    stack_prompts,
)


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
    ) -> BatchPrediction: ...

    def masks_from_logits(self, low_res_logits: np.ndarray) -> np.ndarray: ...

    def reset_image(self) -> None: ...


class BasePredictor(ABC):
    """Prompt handling, sorting and upsampling shared by the backends.

    Attributes:
        model_name: registry name of the model (``vit_t``, ``vit_s``, ``tiny``).
        backend: backend name (``torch``, ...).
        original_size: ``(H, W)`` of the current image, or None.
        last_prompt_info: :class:`PromptInfo` of the last ``predict`` call (dropped points, note).
        max_points: points the decoder reads per prompt (6).
        decode_chunk: prompts decoded together at most in ``predict_batch``; each one holds its own
            copy of the image tokens in the decoder, about 25 MB per prompt at peak.
    """

    backend = ""

    def __init__(self, model_name: str, max_points: int = MAX_POINTS, decode_chunk: int = 8) -> None:
        self.model_name = model_name
        self.max_points = max_points
        self.decode_chunk = decode_chunk
        self.original_size: tuple[int, int] | None = None
        self.last_prompt_info: PromptInfo | None = None
        self._embedding: Any = None

    # -- backend steps -------------------------------------------------------------------------
    @abstractmethod
    def _encode(self, image: np.ndarray) -> Any:
        """RGB uint8 ``(H, W, 3)`` -> the backend's embedding object ``(1, 256, 64, 64)``."""

    @abstractmethod
    def _decode(self, coords: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``coords (Q, P, 2)`` original pixels, ``labels (Q, P)`` float32, -1 padded ->
        the 3 multimask outputs, unsorted: logits ``(Q, 3, 256, 256)`` and IoU ``(Q, 3)`` (torch)."""

    @abstractmethod
    def _embedding_to_numpy(self, embedding: Any) -> np.ndarray:
        """The backend's embedding -> float32 numpy ``(1, 256, 64, 64)``."""

    @abstractmethod
    def _embedding_from_numpy(self, embedding: np.ndarray) -> Any:
        """float32 numpy ``(1, 256, 64, 64)`` -> the backend's embedding object."""

    # -- image state ---------------------------------------------------------------------------
    def set_image(self, image: np.ndarray) -> None:
        """Encode an RGB uint8 ``(H, W, 3)`` image; later predictions refer to it."""
        check_rgb_image(image)
        self.reset_image()
        self._embedding = self._encode(image)
        self.original_size = (int(image.shape[0]), int(image.shape[1]))

    def set_embedding(self, embedding: np.ndarray, original_size: tuple[int, int]) -> None:
        """Install a precomputed embedding ``(1, 256, 64, 64)`` of an image of ``original_size`` (H, W)."""
        array = np.asarray(embedding, dtype=np.float32)
        if array.shape != EMBEDDING_SHAPE:
            raise StudioError(f"an image embedding must have shape {EMBEDDING_SHAPE}, got {array.shape}")
        h, w = (int(v) for v in original_size)
        if h <= 0 or w <= 0:
            raise StudioError(f"original_size must be positive (H, W), got {tuple(original_size)}")
        self._embedding = self._embedding_from_numpy(array)
        self.original_size = (h, w)

    def get_image_embedding(self) -> np.ndarray:
        """The current image's embedding, float32 ``(1, 256, 64, 64)``."""
        self._require_image()
        return self._embedding_to_numpy(self._embedding)

    def reset_image(self) -> None:
        """Forget the current image."""
        self._embedding = None
        self.original_size = None
        self.last_prompt_info = None

    @property
    def is_image_set(self) -> bool:
        """True once ``set_image`` or ``set_embedding`` has been called."""
        return self._embedding is not None

    def _require_image(self) -> tuple[int, int]:
        if self._embedding is None or self.original_size is None:
            raise NoImageError("no image is set: call set_image(image) or set_embedding(...) first")
        return self.original_size

    # -- prediction ----------------------------------------------------------------------------
    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        multimask_output: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks for one prompt on the current image.

        Args:
            point_coords: ``(N, 2)`` pixels ``(x, y)``; point_labels: ``(N,)`` 1 positive / 0 negative.
            box: ``(4,)`` = x0, y0, x1, y1 in pixels.
            multimask_output: 3 candidates (True) or only the best of them by predicted IoU (False),
                as the published examples use the model. (The decoder's separate single-mask output
                is available from ``EfficientSam.predict_masks(multimask_output=False)``.)

        Returns:
            ``masks`` bool ``(K, H, W)``, ``scores`` float32 ``(K,)`` predicted IoU and
            ``low_res_logits`` float32 ``(K, 256, 256)``, best score first; K = 3, or 1.
            Points beyond the decoder's limit are handled by the policy in
            :mod:`efficientsam_studio.engine.prompts`; see ``last_prompt_info``.
        """
        self._require_image()
        coords, labels, info = encode_prompt(point_coords, point_labels, box, self.max_points)
        self.last_prompt_info = info
        logits, scores = self._decode_sorted(coords[None], labels[None], multimask_output)
        logits, scores = logits[0], scores[0]
        masks = masks_from_logits(logits, self.original_size)
        return masks, scores.cpu().numpy().astype(np.float32), logits.cpu().numpy().astype(np.float32)

    def predict_batch(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        boxes: np.ndarray | None = None,
        *,
        prompts: Sequence[Prompt] | None = None,
        multimask_output: bool = True,
        return_masks: bool = True,
    ) -> BatchPrediction:
        """Decode Q prompts against the current image in few decoder calls.

        Give either arrays of Q prompts of equal length -- ``point_coords (Q, N, 2)`` pixels ``(x, y)``
        with ``point_labels (Q, N)``, and/or ``boxes (Q, 4)`` -- or ``prompts``, a list of
        :class:`Prompt` of any lengths. Each prompt follows the point policy of :meth:`predict`
        (its :class:`PromptInfo` is in ``infos``). With ``return_masks=False`` only scores and low-res
        logits are returned, which keeps memory small for many prompts; :meth:`masks_from_logits`
        upsamples the ones kept later. See :class:`BatchPrediction` for the outputs.
        """
        self._require_image()
        if prompts is None:
            prompts = prompts_from_arrays(point_coords, point_labels, boxes)
        elif point_coords is not None or point_labels is not None or boxes is not None:
            raise PromptError("give either prompts=[...] or point_coords/point_labels/boxes arrays, not both")
        encoded, infos = [], []
        for prompt in prompts:
            coords, labels, info = encode_prompt(
                prompt.point_coords, prompt.point_labels, prompt.box, self.max_points
            )
            encoded.append((coords, labels))
            infos.append(info)
        k = 3 if multimask_output else 1
        h, w = self.original_size
        if not encoded:
            empty_logits = np.zeros((0, k, LOW_RES_SIZE, LOW_RES_SIZE), np.float32)
            masks = np.zeros((0, k, h, w), bool) if return_masks else None
            return BatchPrediction(masks, np.zeros((0, k), np.float32), empty_logits, infos)
        all_coords, all_labels = stack_prompts(encoded, self.max_points)
        score_parts, logit_parts, mask_parts = [], [], []
        for start in range(0, len(encoded), self.decode_chunk):
            chunk = slice(start, start + self.decode_chunk)
            logits, scores = self._decode_sorted(all_coords[chunk], all_labels[chunk], multimask_output)
            if return_masks:
                mask_parts.extend(masks_from_logits(one, (h, w)) for one in logits)
            score_parts.append(scores.cpu().numpy())
            logit_parts.append(logits.cpu().numpy())
        return BatchPrediction(
            masks=np.stack(mask_parts) if return_masks else None,
            scores=np.concatenate(score_parts).astype(np.float32),
            low_res_logits=np.concatenate(logit_parts).astype(np.float32),
            infos=infos,
        )

    def masks_from_logits(self, low_res_logits: np.ndarray) -> np.ndarray:
        """``(..., 256, 256)`` logits of the current image -> bool masks ``(..., H, W)``."""
        size = self._require_image()
        return masks_from_logits(torch.as_tensor(np.asarray(low_res_logits, dtype=np.float32)), size)

    def _decode_sorted(
        self, coords: np.ndarray, labels: np.ndarray, multimask_output: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode and sort best first; keep only the best candidate unless ``multimask_output``."""
        logits, scores = self._decode(coords, labels)
        logits, scores, _ = sort_by_score(logits, scores)
        if not multimask_output:
            logits, scores = logits[:, :1], scores[:, :1]
        return logits, scores
