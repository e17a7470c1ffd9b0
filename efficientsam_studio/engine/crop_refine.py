"""Segmenting a small box at the model's full resolution.

EfficientSAM sees every image at 1024x1024, so an object a box marks on a large photo may cover only a
few dozen of the model's pixels, and its mask comes out coarse. Cut around the box, the same object
fills much more of the model's input: the cut is encoded on its own and the box (with the points that
fall in the cut) decoded there, and the masks are placed back in the image.

:func:`refine_crop` says where to cut (or that cutting gains too little); :func:`prompt_in_crop` moves
the prompt into the cut's coordinates; :func:`cut_current` makes the cut the predictor's image for a
while; :func:`place_in_image` puts a cut's mask back. The app's engine worker and batch labelling use
them; they need no torch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from efficientsam_studio.engine.cache import embedding_to_numpy
from efficientsam_studio.errors import StudioError

#: the cut is made only when it is at least this many times smaller than the image on both sides
MIN_GAIN = 2.0
#: the box grows by this fraction of its size on each side (context for the model), at least MIN_MARGIN px
MARGIN = 0.25
MIN_MARGIN = 8

Crop = tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels, ends exclusive


def refine_crop(
    box: Sequence[float],
    image_size: tuple[int, int],
    points: Sequence[Sequence[float]] = (),
    min_gain: float = MIN_GAIN,
) -> Crop | None:
    """Where to cut an image of ``image_size`` (H, W) to segment ``box`` (x0, y0, x1, y1) again: the box
    grown by :data:`MARGIN` and taking in ``points`` (the positive points, which must stay in the
    cut), clipped to the image. None when that cut is not ``min_gain`` times smaller than the image on
    both sides (the model would see the object hardly bigger)."""
    height, width = (int(v) for v in image_size)
    xs = [float(box[0]), float(box[2]), *(float(p[0]) for p in points)]
    ys = [float(box[1]), float(box[3]), *(float(p[1]) for p in points)]
    left, right, top, bottom = min(xs), max(xs), min(ys), max(ys)
    grow_x = max(MARGIN * (right - left), MIN_MARGIN)
    grow_y = max(MARGIN * (bottom - top), MIN_MARGIN)
    x0, y0 = max(0, math.floor(left - grow_x)), max(0, math.floor(top - grow_y))
    x1, y1 = min(width, math.ceil(right + grow_x) + 1), min(height, math.ceil(bottom + grow_y) + 1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    if width / (x1 - x0) < min_gain or height / (y1 - y0) < min_gain:
        return None
    return x0, y0, x1, y1


def prompt_in_crop(kwargs: dict, crop: Crop) -> dict:
    """``Predictor.predict`` keyword arguments (``point_coords``, ``point_labels``, ``box``) moved into
    ``crop``'s coordinates; points outside the cut are left out (only negative ones can be, when the
    cut comes from :func:`refine_crop`)."""
    x0, y0, x1, y1 = crop
    offset = np.array([x0, y0], np.float32)
    out = dict(kwargs)
    box = kwargs.get("box")
    if box is not None:
        out["box"] = np.asarray(box, np.float32).reshape(4) - np.tile(offset, 2)
    coords = kwargs.get("point_coords")
    if coords is not None:
        coords = np.asarray(coords, np.float32).reshape(-1, 2)
        labels = np.asarray(kwargs["point_labels"]).reshape(-1)
        inside = (coords[:, 0] >= x0) & (coords[:, 0] < x1) & (coords[:, 1] >= y0) & (coords[:, 1] < y1)
        out["point_coords"] = coords[inside] - offset if inside.any() else None
        out["point_labels"] = labels[inside] if inside.any() else None
    return out


class WholeImageLost(StudioError):
    """The whole image could not be made the predictor's image again after a cut."""


@contextlib.contextmanager
def cut_current(
    predictor: Any,
    image: np.ndarray,
    crop: Crop,
    encode: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Iterator[np.ndarray]:
    """While the block runs, the cut ``crop`` of ``image`` (RGB ``(H, W, 3)``, the predictor's current
    image) is the predictor's image; the block gets the cut's pixels. Afterwards the whole image is
    current again, with its decoder prepared, or :class:`WholeImageLost` is raised.

    A predictor with ``encode_image`` / ``set_embedding`` / ``get_image_embedding`` (every engine
    backend) gets the cut's embedding, from ``encode(cut)`` or ``encode_image``, beside any embedding
    cache (cuts would crowd out whole images there), and the whole image's embedding back; any other
    is given the cut with ``set_image`` and then the whole image again.
    """
    x0, y0, x1, y1 = crop
    cut = np.ascontiguousarray(image[y0:y1, x0:x1])
    swap = all(hasattr(predictor, name) for name in ("encode_image", "set_embedding", "get_image_embedding"))
    saved = embedding_to_numpy(predictor.get_image_embedding()) if swap else None
    try:
        if saved is not None:
            embedding = encode(cut) if encode is not None else embedding_to_numpy(predictor.encode_image(cut))
            predictor.set_embedding(embedding, cut.shape[:2])
        else:
            predictor.set_image(cut)
        yield cut
    finally:
        try:
            if saved is not None:
                predictor.set_embedding(saved, image.shape[:2])
            else:
                predictor.set_image(image)
            prepare = getattr(predictor, "prepare_decoding", None)
            if prepare is not None:
                prepare()
        except Exception as exc:
            raise WholeImageLost(f"the image could not be set again after a cut of it: {exc}") from exc


def place_in_image(mask: np.ndarray, crop: Crop, image_size: tuple[int, int]) -> np.ndarray:
    """A cut's bool mask put at its place in an otherwise empty mask of ``image_size`` (H, W)."""
    x0, y0 = crop[0], crop[1]
    placed = np.zeros(image_size, bool)
    placed[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]] = mask
    return placed
