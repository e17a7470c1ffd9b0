"""The records of a labelling document: images, categories, instances, and change events.

Records are immutable (frozen dataclasses); a change replaces a record with a new one
(``dataclasses.replace``), which makes undo exact. Conventions of masks, bboxes and coordinates are
those of :mod:`efficientsam_studio.annotations.masks`.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.errors import EmptyMaskError

COLOUR_PATTERN = re.compile(r"^#[0-9a-fA-F]{6}$")
SOURCES = ("ai", "manual")
# the kinds of record that have their own id counter (``Document.allocate_id``)
ID_KINDS = ("image", "category", "instance")
# distinct colours handed to new categories in turn (Okabe-Ito plus a few, "#rrggbb")
DEFAULT_COLOURS = (
    "#e69f00",
    "#56b4e9",
    "#009e73",
    "#f0e442",
    "#0072b2",
    "#d55e00",
    "#cc79a7",
    "#999999",
    "#e41a1c",
    "#377eb8",
    "#4daf4a",
    "#984ea3",
    "#ff7f00",
    "#a65628",
    "#f781bf",
    "#66c2a5",
)


class ImageStatus(str, enum.Enum):
    """Where an image is in the labelling workflow (stored as its string value)."""

    UNLABELLED = "unlabelled"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    SKIPPED = "skipped"
    NEEDS_REVIEW = "needs_review"


@dataclass(frozen=True)
class ImageRecord:
    """An image of the project. ``path``: POSIX path relative to the project folder; size in pixels;
    ``coco_id``: the image's id in the COCO file it was imported from (written back as its id on COCO
    export), or None."""

    id: int
    path: str
    width: int
    height: int
    status: ImageStatus = ImageStatus.UNLABELLED
    coco_id: int | None = None


@dataclass(frozen=True)
class Category:
    """A label class. ``colour``: ``"#rrggbb"``; ``coco_id``: the category's id in the COCO file it came
    from (an import, or the boxes of a batch run), written back as its id on COCO export, or None."""

    id: int
    name: str
    colour: str = "#e69f00"
    supercategory: str = ""
    coco_id: int | None = None


@dataclass(frozen=True)
class Instance:
    """One object mask on one image.

    ``rle``: compressed COCO RLE ``{"size": [H, W], "counts": str}`` (see :mod:`.masks`);
    ``bbox``: ``[x, y, w, h]`` pixels; ``area``: pixel count; ``score``: the model's predicted IoU for
    AI masks (None for manual ones); ``source``: ``"ai"`` or ``"manual"``; ``attributes``: free JSON-able
    key/values (treat as read-only; replace the dict to change it).
    """

    id: int
    image_id: int
    category_id: int
    rle: dict
    bbox: tuple[float, float, float, float]
    area: int
    score: float | None = None
    source: str = "manual"
    iscrowd: bool = False
    attributes: dict = field(default_factory=dict)

    @classmethod
    def from_mask(
        cls,
        id: int,
        image_id: int,
        category_id: int,
        mask: np.ndarray,
        *,
        score: float | None = None,
        source: str = "manual",
        iscrowd: bool = False,
        attributes: dict | None = None,
    ) -> Instance:
        """Build an instance from an ``(H, W)`` mask; raises :class:`EmptyMaskError` for an empty one."""
        return cls.from_rle(
            id,
            image_id,
            category_id,
            masks.encode(mask),
            score=score,
            source=source,
            iscrowd=iscrowd,
            attributes=attributes,
        )

    @classmethod
    def from_rle(
        cls,
        id: int,
        image_id: int,
        category_id: int,
        rle: dict,
        *,
        score: float | None = None,
        source: str = "manual",
        iscrowd: bool = False,
        attributes: dict | None = None,
        geometry: tuple[int, tuple[float, float, float, float]] | None = None,
    ) -> Instance:
        """Build an instance from any RLE (normalised to compressed); bbox and area are computed.

        ``geometry``: ``(area, bbox)`` already computed from ``rle``, which must then be compressed with
        ``str`` counts and ``int`` size (as :func:`.rle_batch.read_counts` measures it); used as given."""
        if geometry is None:
            rle = masks.to_compressed(rle)
            pixels, box = masks.area(rle), tuple(masks.bbox(rle))
        else:
            pixels, box = geometry
        if pixels == 0:
            raise EmptyMaskError(f"the mask of instance {id} on image {image_id} is empty; nothing to keep")
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}; got {source!r}")
        return cls(
            id=id,
            image_id=image_id,
            category_id=category_id,
            rle=rle,
            bbox=box,
            area=pixels,
            score=None if score is None else float(score),
            source=source,
            iscrowd=bool(iscrowd),
            attributes=dict(attributes or {}),
        )

    def __hash__(self) -> int:
        return hash((self.id, self.image_id, self.rle["counts"]))

    def with_rle(self, rle: dict) -> Instance:
        """A copy with a new mask (bbox and area recomputed); raises :class:`EmptyMaskError` if empty."""
        rle = masks.to_compressed(rle)
        pixels = masks.area(rle)
        if pixels == 0:
            raise EmptyMaskError(f"the edit leaves instance {self.id} with an empty mask; delete it instead")
        return dataclasses.replace(self, rle=rle, bbox=tuple(masks.bbox(rle)), area=pixels)

    def mask(self) -> np.ndarray:
        """The decoded ``bool`` mask ``(H, W)``."""
        return masks.decode(self.rle)

    def crop(self) -> tuple[np.ndarray, int, int]:
        """The mask cut to its bbox, ``(crop, x, y)`` as :func:`.masks.decode_crop` gives it, read-only.
        The last few crops are kept, so the editors and the canvas that ask for the same mask after an
        edit decode it once."""
        key = (tuple(self.rle["size"]), self.rle["counts"])
        with _CROPS_LOCK:
            found = _CROPS.pop(key, None)
        if found is None:
            crop, x, y = masks.decode_crop(self.rle)
            crop.flags.writeable = False
            found = (crop, x, y)
        with _CROPS_LOCK:
            _CROPS[key] = found
            while len(_CROPS) > CROP_CACHE_SIZE:
                _CROPS.pop(next(iter(_CROPS)))
        return found

    def window(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """The mask within the window ``[x, x + w) x [y, y + h)`` (inside the image), a new bool ``(h, w)``
        array, from :meth:`crop`."""
        out = np.zeros((h, w), bool)
        crop, cx, cy = self.crop()
        x0, y0 = max(cx, x), max(cy, y)
        x1, y1 = min(cx + crop.shape[1], x + w), min(cy + crop.shape[0], y + h)
        if x0 < x1 and y0 < y1:
            out[y0 - y : y1 - y, x0 - x : x1 - x] = crop[y0 - cy : y1 - cy, x0 - cx : x1 - cx]
        return out


CROP_CACHE_SIZE = 8
_CROPS: dict[tuple, tuple[np.ndarray, int, int]] = {}  # (size, counts) -> crop, least recently used first
_CROPS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Change:
    """What changed, sent to every subscriber after each primitive operation.

    ``kind``: one of ``image_added``, ``image_changed``, ``category_added``, ``category_removed``,
    ``category_changed``, ``instance_added``, ``instance_removed``, ``instance_changed``,
    ``instances_reordered``, ``reset``. ``ids``: the ids of the changed records of that kind;
    ``image_id``: the image the instances belong to (instance kinds only).
    """

    kind: str
    ids: tuple[int, ...] = ()
    image_id: int | None = None


Listener = Callable[[Change], None]
