"""A predictor that knows the answer: masks come from the image colours, not from a network.

- A point prompt selects the 4-connected region of pixels of the clicked colour. Candidates, in this order:
  the region with sharp logits (predicted IoU ``region_iou``), its left half (``part_iou``), and the region
  with soft logits that a stability filter rejects (``soft_iou``). A point on the background colour gets
  the background region with predicted IoU ``background_iou``. The first positive point decides (the first
  point when all are negative).
- A box prompt gives the box filled (sharp logits, IoU 0.95), a shrunken box (0.6) and a soft copy (0.3).

Low-resolution logits are ``(3, 256, 256)`` over the whole image set with ``set_image``, as EfficientSAM's
(the image squashed to a square). Implements ``predict``, ``predict_batch`` and ``masks_from_logits`` with the
engine's call shapes.
"""

from __future__ import annotations

import cv2
import numpy as np

LOW = 256


def logits_from_mask(mask: np.ndarray, sharpness: float) -> np.ndarray:
    """``(256, 256)`` logits whose bicubic upsampling to ``mask.shape`` thresholds back to about ``mask``."""
    fraction = cv2.resize(mask.astype(np.float32), (LOW, LOW), interpolation=cv2.INTER_AREA)
    return ((fraction - 0.5) * sharpness).astype(np.float32)


def upsample(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(logits, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)


class ShapesPredictor:
    """See the module docstring. ``calls`` counts decoded prompt sets; ``encodes`` counts ``set_image``."""

    def __init__(
        self,
        background=(0, 0, 0),
        region_iou: float = 0.95,
        part_iou: float = 0.5,
        soft_iou: float = 0.97,
        background_iou: float = 0.3,
    ) -> None:
        self.background = np.array(background, dtype=np.uint8)
        self.region_iou, self.part_iou, self.soft_iou = region_iou, part_iou, soft_iou
        self.background_iou = background_iou
        self.image: np.ndarray | None = None
        self.encodes = 0
        self.calls = 0

    def set_image(self, image: np.ndarray) -> None:
        self.image = np.ascontiguousarray(image)
        self.encodes += 1

    def get_image_embedding(self) -> np.ndarray:
        return np.zeros((1, 256, 64, 64), dtype=np.float32)

    # ------------------------------------------------------------------ candidates
    def _region(self, x: float, y: float) -> tuple[np.ndarray, bool]:
        image = self.image
        h, w = image.shape[:2]
        col, row = min(int(x), w - 1), min(int(y), h - 1)
        colour = image[row, col]
        same = np.all(image == colour, axis=2).astype(np.uint8)
        _, labels = cv2.connectedComponents(same, connectivity=4)
        return labels == labels[row, col], bool(np.all(colour == self.background))

    def _point_candidates(self, x: float, y: float) -> tuple[np.ndarray, np.ndarray]:
        region, is_background = self._region(x, y)
        part = region.copy()
        cols = np.flatnonzero(region.any(axis=0))
        part[:, (cols[0] + cols[-1] + 1) // 2 :] = False
        logits = np.stack(
            [logits_from_mask(region, 20.0), logits_from_mask(part, 20.0), logits_from_mask(region, 1.0)]
        )
        if is_background:
            scores = np.full(3, self.background_iou, dtype=np.float32)
        else:
            scores = np.array([self.region_iou, self.part_iou, self.soft_iou], dtype=np.float32)
        return scores, logits

    def _box_candidates(self, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.image.shape[:2]
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        filled = np.zeros((h, w), dtype=bool)
        filled[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)] = True
        shrunk = np.zeros_like(filled)
        dx, dy = max(1, (x1 - x0) // 4), max(1, (y1 - y0) // 4)
        shrunk[max(0, y0 + dy) : min(h, y1 - dy), max(0, x0 + dx) : min(w, x1 - dx)] = True
        logits = np.stack(
            [logits_from_mask(filled, 20.0), logits_from_mask(shrunk, 20.0), logits_from_mask(filled, 1.0)]
        )
        return np.array([0.95, 0.6, 0.3], dtype=np.float32), logits

    def _candidates(self, coords, labels, box) -> tuple[np.ndarray, np.ndarray]:
        if self.image is None:
            raise RuntimeError("set_image first")
        self.calls += 1
        if box is not None:
            return self._box_candidates(np.asarray(box, dtype=np.float64).reshape(4))
        points = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        positive = points[np.asarray(labels).reshape(-1) == 1]
        return self._point_candidates(*(positive[0] if len(positive) else points[0]))

    # ------------------------------------------------------------------ Predictor API
    def predict(self, point_coords=None, point_labels=None, box=None, multimask_output=True):
        scores, logits = self._candidates(point_coords, point_labels, box)
        order = np.argsort(-scores, kind="stable")
        scores, logits = scores[order], logits[order]
        if not multimask_output:
            scores, logits = scores[:1], logits[:1]
        masks = np.stack([upsample(lg, self.image.shape[:2]) > 0 for lg in logits])
        return masks, scores, logits

    def predict_batch(
        self,
        point_coords=None,
        point_labels=None,
        boxes=None,
        *,
        prompts=None,
        multimask_output=True,
        return_masks=True,
    ):
        if prompts is not None:
            items = [(p.point_coords, p.point_labels, p.box) for p in prompts]
        else:
            count = len(boxes) if boxes is not None else len(point_coords)
            items = [
                (
                    None if point_coords is None else point_coords[i],
                    None if point_labels is None else point_labels[i],
                    None if boxes is None else boxes[i],
                )
                for i in range(count)
            ]
        all_scores, all_logits = [], []
        for coords, labels, box in items:
            scores, logits = self._candidates(coords, labels, box)
            order = np.argsort(-scores, kind="stable")
            all_scores.append(scores[order])
            all_logits.append(logits[order])
        k = 3 if multimask_output else 1
        scores = np.stack(all_scores)[:, :k] if items else np.zeros((0, k), np.float32)
        logits = np.stack(all_logits)[:, :k] if items else np.zeros((0, k, LOW, LOW), np.float32)
        masks = self.masks_from_logits(logits) if return_masks else None
        return masks, scores, logits

    def masks_from_logits(self, low_res_logits):
        h, w = self.image.shape[:2]
        flat = np.asarray(low_res_logits, dtype=np.float32).reshape(-1, LOW, LOW)
        masks = np.zeros((len(flat), h, w), dtype=bool)
        for i, logits in enumerate(flat):
            masks[i] = upsample(logits, (h, w)) > 0
        return masks.reshape(*np.shape(low_res_logits)[:-2], h, w)
