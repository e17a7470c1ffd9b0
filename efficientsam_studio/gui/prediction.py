"""The candidate masks of one prompt, as the engine worker hands them to the GUI.

A prompt has several candidates (best first), but the user sees one at a time. Predictors that can
decode without upsampling give their low-resolution logits, and each candidate becomes a full-size
mask on first use: the worker upsamples the best one before it sends the prediction and the others
right after, so the first mask shows without waiting for the rest (at 1920x1080 each one is about a
millisecond of bicubic upsampling and thresholding).
"""

from __future__ import annotations

import threading

import numpy as np

from efficientsam_studio.engine.crop_refine import place_in_image
from efficientsam_studio.engine.numpy_predictor import masks_from_logits


class Prediction:
    """Candidate masks of one request, best first.

    ``image_key`` names the image the masks belong to; ``scores`` float32 (K,) predicted IoU.
    :meth:`mask` is candidate ``i``, bool (H, W) at the original image size; :attr:`masks` all of
    them, (K, H, W). Build with :meth:`from_masks` or :meth:`from_logits`. Safe to read from the GUI
    thread while the worker fills in the remaining candidates.
    """

    def __init__(
        self,
        image_key: str,
        scores: np.ndarray,
        masks: list[np.ndarray | None],
        low_res_logits: np.ndarray | None = None,
        original_size: tuple[int, int] | None = None,
    ) -> None:
        self.image_key = image_key
        self.scores = np.asarray(scores, np.float32)
        self._masks = masks
        self._logits = low_res_logits
        self._size = original_size
        self._lock = threading.Lock()
        self.crop: tuple[int, int, int, int] | None = None  # where the masks were segmented, if cut
        self._image_size: tuple[int, int] | None = None  # (H, W) of the image the cut's masks go into

    @classmethod
    def from_masks(cls, image_key: str, masks: np.ndarray, scores: np.ndarray) -> Prediction:
        """Full-size bool masks ``(K, H, W)`` and their scores, sorted here best first (stable)."""
        order = np.argsort(-np.asarray(scores), kind="stable")
        masks = np.asarray(masks, dtype=bool)[order]
        return cls(image_key, np.asarray(scores)[order], list(masks))

    @classmethod
    def from_logits(
        cls, image_key: str, low_res_logits: np.ndarray, scores: np.ndarray, original_size: tuple[int, int]
    ) -> Prediction:
        """Low-resolution logits ``(K, h, w)`` and scores, sorted here best first (stable); each mask is
        ``bicubic(logits) > 0`` at ``original_size`` (H, W), made on first use."""
        order = np.argsort(-np.asarray(scores), kind="stable")
        logits = np.asarray(low_res_logits, np.float32)[order]
        return cls(image_key, np.asarray(scores)[order], [None] * len(order), logits, original_size)

    def in_image(self, crop: tuple[int, int, int, int], image_size: tuple[int, int]) -> Prediction:
        """This prediction, made on the cut ``crop`` (x0, y0, x1, y1) of an image of ``image_size``
        (H, W), with its masks placed in the whole image (made on first use, as before)."""
        placed = Prediction(self.image_key, self.scores, [None] * len(self.scores), self._logits, self._size)
        placed.crop, placed._image_size = crop, image_size
        for index, mask in enumerate(self._masks):
            if mask is not None:
                placed._masks[index] = placed._placed(mask)
        return placed

    def _placed(self, mask: np.ndarray) -> np.ndarray:
        return mask if self.crop is None else place_in_image(mask, self.crop, self._image_size)

    def mask(self, index: int) -> np.ndarray:
        """Candidate ``index`` as bool (H, W). The upsampling runs outside the lock, so the GUI thread
        never waits for the worker's work on another candidate; if both threads make the same one at
        once, the first stored is kept."""
        with self._lock:
            mask = self._masks[index]
        if mask is not None:
            return mask
        assert self._logits is not None and self._size is not None
        made = self._placed(masks_from_logits(self._logits[index], self._size))
        with self._lock:
            if self._masks[index] is None:
                self._masks[index] = made
            return self._masks[index]

    @property
    def made(self) -> list[bool]:
        """Which candidates' full-size masks exist already."""
        with self._lock:
            return [mask is not None for mask in self._masks]

    @property
    def masks(self) -> np.ndarray:
        """All candidates, bool (K, H, W)."""
        return np.stack([self.mask(i) for i in range(len(self.scores))])

    def fill(self) -> None:
        """Make every candidate's mask now (the worker calls this once the best one is shown)."""
        for index in range(len(self.scores)):
            self.mask(index)
