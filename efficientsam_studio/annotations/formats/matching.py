"""Recognise an imported object that the project already holds, so that importing a file twice, or
importing a project's own export back into it, adds no second copies.

An imported mask is *identical* to an instance when it is the same mask (the same RLE) with the same
category on the same image; identical masks are recognised among every instance of the document,
including those the import itself added. It is *the same object* when it matches an instance that was
in the document before the import (same image, same category, each instance matched once) closely:

- a mask IoU of at least :data:`SAME_IOU`, or
- a mask IoU of at least :data:`OUTLINE_IOU` and no pixel where the two masks differ farther than
  :data:`OUTLINE_DISTANCE` pixels from either mask's outline (:func:`~..masks.boundary_distance`).

Export writes outlines as simplified polygons (a 1 pixel tolerance by default), and the pixels a
polygon covers when filled differ from the mask along its outline. For objects of a few hundred pixels
and more the IoU of a round trip stays above 0.85, but for small objects (8 to 20 pixels across) it
drops to 0.5 and below, so an IoU threshold alone that accepts them would also take two distinct,
overlapping objects for one. The second rule accepts exactly what a polygon round trip does: changes
along the outline only (at most about 2 pixels from it with the default tolerance), while two distinct
objects differ somewhere by more than that.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.document import Document, Instance

SAME_IOU = 0.9
"""Mask IoU from which two masks of one category on one image are the same object."""
OUTLINE_IOU = 0.4
"""Least mask IoU for the outline rule (see the module doc)."""
OUTLINE_DISTANCE = 2.5
"""Pixels: how far from the outlines two masks of the same object may differ (outline rule)."""


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _within_outline(existing: Instance, rle: dict, box: tuple[float, ...]) -> bool:
    """True when the masks differ only within :data:`OUTLINE_DISTANCE` pixels of their outlines."""
    height, width = (int(v) for v in rle["size"])
    margin = int(np.ceil(OUTLINE_DISTANCE)) + 1
    x0 = max(0, int(min(existing.bbox[0], box[0])) - margin)
    y0 = max(0, int(min(existing.bbox[1], box[1])) - margin)
    x1 = min(width, int(max(existing.bbox[0] + existing.bbox[2], box[0] + box[2])) + margin)
    y1 = min(height, int(max(existing.bbox[1] + existing.bbox[3], box[1] + box[3])) + margin)
    a = existing.window(x0, y0, x1 - x0, y1 - y0)
    b = masks.decode_window(rle, x0, y0, x1 - x0, y1 - y0)
    return max(masks.boundary_distance(a, b), masks.boundary_distance(b, a)) <= OUTLINE_DISTANCE


def mask_iou(existing: Instance, rle: dict, area: int) -> float:
    """The IoU of an instance's mask and the mask ``rle`` of ``area`` pixels (same image size)."""
    inter = masks.area(masks.merge([existing.rle, rle], intersect=True))
    return inter / float(existing.area + area - inter)


class PresentInstances:
    """The instances of a document as an import starts, to recognise imported masks it already holds
    (see the module doc). Built once per import; :meth:`added` records what the import adds."""

    def __init__(self, document: Document) -> None:
        self._identical: set[tuple[int, int, str]] = set()
        self._earlier: dict[tuple[int, int], list[Instance]] = defaultdict(list)
        for instance in document.iter_instances():
            self._identical.add((instance.image_id, instance.category_id, instance.rle["counts"]))
            self._earlier[instance.image_id, instance.category_id].append(instance)
        self._matched: set[int] = set()

    def find(self, image_id: int, category_id: int, rle: dict) -> str | None:
        """``"identical"``, ``"same object"`` (the instance is then taken: it matches no other mask) or
        None for a new object."""
        if (image_id, category_id, rle["counts"]) in self._identical:
            return "identical"
        candidates = [i for i in self._earlier.get((image_id, category_id), ()) if i.id not in self._matched]
        if not candidates:
            return None
        box = tuple(masks.bbox(rle))
        area = masks.area(rle)
        best, best_iou = None, 0.0
        for instance in candidates:
            if not _overlap(instance.bbox, box):
                continue
            iou = mask_iou(instance, rle, area)
            if iou <= best_iou or iou < OUTLINE_IOU:
                continue
            if iou >= SAME_IOU or _within_outline(instance, rle, box):
                best, best_iou = instance, iou
        if best is None:
            return None
        self._matched.add(best.id)
        return "same object"

    def added(self, instance: Instance) -> None:
        """Note an instance the import added (a later identical mask is then recognised)."""
        self._identical.add((instance.image_id, instance.category_id, instance.rle["counts"]))
