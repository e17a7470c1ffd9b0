"""The torch-free half of a predictor: prompts, sorting and upsampling in numpy and OpenCV.

:class:`NumpyPredictor` implements the public API of every backend (``set_image``, ``set_embedding``,
``get_image_embedding``, ``predict``, ``predict_batch``, ``masks_from_logits``, ``reset_image``) with
the prompt policy of :mod:`~efficientsam_studio.engine.prompts`. It imports no torch, so that the ONNX
Runtime backend runs in a bundle without it; the torch backend builds on it through
:class:`~efficientsam_studio.engine.base.BasePredictor`.

Upsampling: masks are ``bicubic(logits) > 0`` at the original ``(H, W)`` with OpenCV's ``INTER_CUBIC``
(the same Keys kernel, a = -0.75, with half-pixel centres as torch's ``align_corners=False``; the two
agree to about 5e-5 in logit value). Only the masks that are returned are upsampled, one at a time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from efficientsam_studio.errors import StudioError

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

EMBEDDING_SHAPE = (1, 256, 64, 64)
"""Shape of one image embedding."""
LOW_RES_SIZE = 256
"""Side of the decoder's logit maps."""
MASK_THRESHOLD = 0.0
"""Logit above which a pixel belongs to the mask."""


class NoImageError(StudioError):
    """``predict`` was called before ``set_image`` / ``set_embedding``."""


@dataclass(frozen=True)
class BatchPrediction:
    """Results of decoding Q prompts against one image, each prompt's K candidates best first
    (every backend returns this type).

    ``masks (Q, K, H, W)`` bool, or None when not asked for; ``scores (Q, K)`` float32 predicted IoU;
    ``low_res_logits (Q, K, 256, 256)`` float32; ``infos``: one :class:`PromptInfo` per prompt.
    Unpacks like ``predict``'s result: ``masks, scores, low_res_logits = predictor.predict_batch(...)``.
    """

    masks: np.ndarray | None
    scores: np.ndarray
    low_res_logits: np.ndarray
    infos: list[PromptInfo]

    def _triple(self) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        return (self.masks, self.scores, self.low_res_logits)

    def __iter__(self) -> Iterator[np.ndarray | None]:
        return iter(self._triple())

    def __getitem__(self, index: int) -> np.ndarray | None:
        return self._triple()[index]

    def __len__(self) -> int:
        return 3


def upsample_logits(logits: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
    """``(..., h, w)`` float logits -> float32 ``(..., H, W)``, bicubic with half-pixel centres."""
    h, w = (int(v) for v in original_size)
    flat = np.asarray(logits, dtype=np.float32).reshape(-1, *logits.shape[-2:])
    out = np.empty((len(flat), h, w), dtype=np.float32)
    for i, plane in enumerate(flat):
        cv2.resize(plane, (w, h), dst=out[i], interpolation=cv2.INTER_CUBIC)
    return out.reshape(*logits.shape[:-2], h, w)


def masks_from_logits(logits: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
    """``(..., 256, 256)`` logits -> bool masks ``(..., H, W)`` = ``bicubic(logits) > 0``."""
    h, w = (int(v) for v in original_size)
    logits = np.asarray(logits, dtype=np.float32)
    flat = logits.reshape(-1, *logits.shape[-2:])
    masks = np.empty((len(flat), h, w), dtype=bool)
    plane = np.empty((h, w), dtype=np.float32)
    for i, low in enumerate(flat):
        cv2.resize(low, (w, h), dst=plane, interpolation=cv2.INTER_CUBIC)
        np.greater(plane, MASK_THRESHOLD, out=masks[i])
    return masks.reshape(*logits.shape[:-2], h, w)


def best_candidates(scores: np.ndarray) -> np.ndarray:
    """``scores (Q, K)`` -> the index of each prompt's best candidate, ``(Q, 1)``: the first of equal
    scores, as :func:`sort_by_score` orders them."""
    return np.argmax(np.asarray(scores, dtype=np.float32), axis=-1)[:, None]


def sort_by_score(logits: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order ``scores (Q, K)`` and ``logits (Q, K, h, w)`` best first (stable for ties); contiguous copies.

    Indexed with one ``(Q, K)`` pair of index arrays, so whole ``(h, w)`` maps are copied at once
    (``np.take_along_axis`` with broadcast indices moves them pixel by pixel, about 15x slower)."""
    order = np.argsort(-scores, axis=-1, kind="stable")
    rows = np.arange(len(scores))[:, None]
    return logits[rows, order], scores[rows, order]


class NumpyPredictor(ABC):
    """Backend-independent predictor logic without torch; backends implement ``_encode``/``_decode``.

    Attributes: ``model_name``, ``backend``, ``original_size (H, W)`` of the current image,
    ``last_prompt_info``, ``max_points`` (6), ``decode_chunk`` (prompts per decoder call in
    ``predict_batch``), ``model_key`` (identity of the encoder for the embedding cache),
    ``accepts_min_score`` (``predict_batch`` takes ``min_score``).
    """

    accepts_min_score = True

    backend = ""

    def __init__(self, model_name: str, max_points: int = MAX_POINTS, decode_chunk: int = 16) -> None:
        self.model_name = model_name
        self.max_points = max_points
        self.decode_chunk = decode_chunk
        self.original_size: tuple[int, int] | None = None
        self.last_prompt_info: PromptInfo | None = None
        self._embedding: Any = None

    @abstractmethod
    def _encode(self, image: np.ndarray) -> Any:
        """RGB uint8 ``(H, W, 3)`` -> float32 embedding ``(1, 256, 64, 64)`` (numpy, or the backend's
        tensor type with ``_embedding_to_numpy`` / ``_embedding_from_numpy`` overridden)."""

    @abstractmethod
    def _decode(self, coords: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``coords (Q, P, 2)`` original pixels and ``labels (Q, P)`` float32 (-1 padded) -> the 3
        multimask outputs, unsorted: logits ``(Q, 3, 256, 256)`` and IoU ``(Q, 3)``, float32."""

    def encode_image(self, image: np.ndarray) -> np.ndarray:
        """RGB uint8 ``(H, W, 3)`` -> embedding ``(1, 256, 64, 64)`` without changing the current image."""
        return self._encode(check_rgb_image(image))

    def set_image(self, image: np.ndarray) -> None:
        """Encode an RGB uint8 ``(H, W, 3)`` image; later predictions refer to it."""
        check_rgb_image(image)
        self.reset_image()
        self._embedding = self._encode(image)
        self.original_size = (int(image.shape[0]), int(image.shape[1]))

    def set_embedding(self, embedding: np.ndarray, original_size: tuple[int, int]) -> None:
        """Install a precomputed embedding ``(1, 256, 64, 64)`` of an image of ``original_size`` (H, W)."""
        array = np.ascontiguousarray(embedding, dtype=np.float32)
        if array.shape != EMBEDDING_SHAPE:
            raise StudioError(f"an image embedding must have shape {EMBEDDING_SHAPE}, got {array.shape}")
        h, w = (int(v) for v in original_size)
        if h <= 0 or w <= 0:
            raise StudioError(f"original_size must be positive (H, W), got {tuple(original_size)}")
        self._embedding = self._embedding_from_numpy(array)
        self.original_size = (h, w)
        self.last_prompt_info = None

    def get_image_embedding(self) -> np.ndarray:
        """The current image's embedding, float32 ``(1, 256, 64, 64)`` (a copy)."""
        self._require_image()
        return self._embedding_to_numpy(self._embedding)

    def _embedding_to_numpy(self, embedding: Any) -> np.ndarray:
        """The stored embedding -> float32 numpy ``(1, 256, 64, 64)``, a copy (numpy backends store
        numpy; :class:`~efficientsam_studio.engine.base.BasePredictor` backends their own tensors)."""
        return np.array(embedding, dtype=np.float32)

    def _embedding_from_numpy(self, embedding: np.ndarray) -> Any:
        """float32 numpy ``(1, 256, 64, 64)`` -> what ``_encode`` returns and ``_decode`` reads."""
        return embedding

    def reset_image(self) -> None:
        self._embedding = None
        self.original_size = None
        self.last_prompt_info = None

    @property
    def is_image_set(self) -> bool:
        return self._embedding is not None

    def _require_image(self) -> tuple[int, int]:
        if self._embedding is None or self.original_size is None:
            raise NoImageError("no image is set: call set_image(image) or set_embedding(...) first")
        return self.original_size

    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        multimask_output: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks for one prompt: ``masks`` bool ``(K, H, W)``, ``scores (K,)``, ``low_res_logits
        (K, 256, 256)``, best first; K = 3, or 1 (the best) when ``multimask_output`` is False.
        ``point_coords (N, 2)`` pixels ``(x, y)``, ``point_labels (N,)`` 1/0 (negative points alone are
        allowed), ``box (4,)`` x0 y0 x1 y1 (corners in either order; they are swapped into place).

        Prompts and the image (the rule of :mod:`~efficientsam_studio.engine.prompts`): the image spans
        ``0 <= x <= W``, ``0 <= y <= H``. A point at most one pixel outside is moved onto the edge (the
        model's coordinate transform would turn a negative coordinate into its padding value and scale
        one beyond the far edge out of its frame); a point further out raises
        :class:`~efficientsam_studio.engine.prompts.PromptOutsideImageError`. A box is clipped to the
        image; one that does not overlap it raises that error (a ``ValueError`` and ``StudioError``). A
        box may be a line (``x0 == x1`` or ``y0 == y1``), the tight box of a one-pixel-wide object."""
        size = self._require_image()
        coords, labels, info = encode_prompt(
            point_coords, point_labels, box, self.max_points, image_size=size
        )
        self.last_prompt_info = info
        padded_coords, padded_labels = stack_prompts([(coords, labels)], self.max_points)
        logits, scores = self._decode_sorted(padded_coords, padded_labels, multimask_output)
        return masks_from_logits(logits[0], size), scores[0], logits[0]

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
    ) -> BatchPrediction:
        """Decode Q prompts in few decoder calls: ``point_coords (Q, N, 2)`` with ``point_labels (Q, N)``
        and/or ``boxes (Q, 4)``, or ``prompts`` (a list of Prompt of any lengths). Each prompt follows
        the point policy and the image rule of :meth:`predict` (its PromptInfo is in ``infos``; a prompt
        the rule refuses raises its error, naming the prompt's index, and nothing is decoded). See
        :class:`BatchPrediction` for the outputs; ``return_masks=False`` skips the upsampling, which
        keeps memory small for many prompts (:meth:`masks_from_logits` upsamples the ones kept later).

        ``min_score``: candidates whose predicted IoU is not above it are not wanted. Backends that can
        (the torch backends) then skip the mask computation of the prompts whose candidates all fall
        below it, and return those candidates' logits as ``-inf``; the scores are always computed."""
        h, w = self._require_image()
        if prompts is None:
            prompts = prompts_from_arrays(point_coords, point_labels, boxes)
        elif point_coords is not None or point_labels is not None or boxes is not None:
            raise PromptError("give either prompts=[...] or point_coords/point_labels/boxes arrays, not both")
        encoded, infos = [], []
        for index, prompt in enumerate(prompts):
            try:
                coords, labels, info = encode_prompt(
                    prompt.point_coords, prompt.point_labels, prompt.box, self.max_points, image_size=(h, w)
                )
            except PromptError as exc:
                raise type(exc)(f"prompt {index}: {exc}") from None
            encoded.append((coords, labels))
            infos.append(info)
        k = 3 if multimask_output else 1
        if not encoded:
            empty = np.zeros((0, k, LOW_RES_SIZE, LOW_RES_SIZE), np.float32)
            masks = np.zeros((0, k, h, w), bool) if return_masks else None
            return BatchPrediction(masks, np.zeros((0, k), np.float32), empty, infos)
        all_coords, all_labels = stack_prompts(encoded, self.max_points)
        logit_parts, score_parts = [], []
        for start in range(0, len(encoded), self.decode_chunk):
            chunk = slice(start, start + self.decode_chunk)
            logits, scores = self._decode_sorted(
                all_coords[chunk], all_labels[chunk], multimask_output, min_score
            )
            logit_parts.append(logits)
            score_parts.append(scores)
        logits = np.concatenate(logit_parts)
        masks = masks_from_logits(logits, (h, w)) if return_masks else None
        return BatchPrediction(masks, np.concatenate(score_parts), logits, infos)

    def masks_from_logits(self, low_res_logits: np.ndarray) -> np.ndarray:
        """``(..., 256, 256)`` logits of the current image -> bool masks ``(..., H, W)``."""
        return masks_from_logits(low_res_logits, self._require_image())

    def _decode_above(
        self, coords: np.ndarray, labels: np.ndarray, min_score: float | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_decode`, free to leave out (as ``-inf``) the logits of candidates scored at most
        ``min_score``; this base computes them all."""
        return self._decode(coords, labels)

    def _decode_best(
        self, coords: np.ndarray, labels: np.ndarray, min_score: float | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each prompt's best candidate alone: logits ``(Q, 1, 256, 256)`` and score ``(Q, 1)``. This base
        decodes all three and gathers one map per prompt; backends that can compute the scores before
        the masks (the torch backends) upscale only the best one."""
        logits, scores = self._decode_above(coords, labels, min_score)
        best = best_candidates(scores)
        rows = np.arange(len(scores))[:, None]
        return logits[rows, best], scores[rows, best]

    def _decode_sorted(
        self, coords: np.ndarray, labels: np.ndarray, multimask_output: bool, min_score: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if not multimask_output:
            logits, scores = self._decode_best(coords, labels, min_score)
            return logits.astype(np.float32, copy=False), scores.astype(np.float32, copy=False)
        logits, scores = self._decode_above(coords, labels, min_score)
        logits, scores = logits.astype(np.float32, copy=False), scores.astype(np.float32, copy=False)
        return sort_by_score(logits, scores)
