"""Mask geometry: binary masks, COCO RLE and polygons (pycocotools and OpenCV do the work).

Conventions
-----------
- A *mask* is a 2-D ``numpy`` array of shape ``(H, W)`` (bool, or any integer type where non-zero is
  foreground); functions return ``bool`` masks.
- An *RLE* is a COCO run-length encoding ``{"size": [H, W], "counts": str}`` in column-major (Fortran)
  order, *compressed* (the LEB128-like string of pycocotools) with ``counts`` decoded to ``str`` so it can
  be written to JSON as is. Uncompressed RLE (``counts`` a list of ints) is accepted wherever an RLE is
  read and normalised with :func:`to_compressed`.
- Polygon coordinates are image pixels in COCO's continuous convention: pixel ``(col, row)`` covers
  ``[col, col + 1) x [row, row + 1)``, so the centre of the top-left pixel is ``(0.5, 0.5)``. Points are
  ``(x, y)`` = ``(column, row)``; a ring is a float array of shape ``(N, 2)``, ``N >= 3``.
- A bbox is ``[x, y, w, h]`` in pixels (COCO), area is a pixel count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from pycocotools import mask as coco_mask

RLE = dict
PolygonMode = Literal["largest", "all", "all_with_holes"]
POLYGON_MODES: tuple[str, ...] = ("largest", "all", "all_with_holes")


@dataclass(frozen=True)
class Ring:
    """One closed polygon ring.

    ``points``: float64 array ``(N, 2)`` of ``(x, y)`` pixel coordinates (COCO convention, see module doc).
    ``hole``: True when the ring cuts a hole out of the ring ``parent`` (an index into the same list).
    """

    points: np.ndarray
    hole: bool = False
    parent: int | None = None

    def flat(self) -> list[float]:
        """The ring as COCO/YOLO wants it: ``[x0, y0, x1, y1, ...]`` (plain floats)."""
        return [float(v) for v in self.points.reshape(-1)]


def _as_uint8(mask: np.ndarray, order: str = "C") -> np.ndarray:
    """A uint8 ``(H, W)`` array of a mask (non-zero = foreground) in memory ``order`` ("C", or "F" as
    pycocotools' encoder takes it), made in at most one copy (none for a bool or uint8 mask already in
    that order: bool is viewed as uint8)."""
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"a mask must be 2-D (H, W); got shape {array.shape}")
    if array.dtype == np.bool_:
        return np.asarray(array, order=order).view(np.uint8)
    if array.dtype == np.uint8:
        return np.asarray(array, order=order)
    out = np.empty(array.shape, dtype=np.uint8, order=order)
    np.not_equal(array, 0, out=out.view(np.bool_), casting="unsafe")
    return out


def _content(mask: np.ndarray) -> np.ndarray:
    """The mask cropped to its foreground's bbox plus a one-pixel background frame (uint8)."""
    binary = _as_uint8(mask)
    x, y, w, h = cv2.boundingRect(binary)
    return cv2.copyMakeBorder(binary[y : y + h, x : x + w], 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)


def encode(mask: np.ndarray) -> RLE:
    """Encode an ``(H, W)`` mask as compressed COCO RLE with ``counts`` as ``str``. A mask whose
    foreground's bbox covers under half the image is encoded from that crop (:func:`encode_window`)."""
    binary = _as_uint8(mask)
    x, y, w, h = cv2.boundingRect(binary) if binary.size else (0, 0, 0, 0)
    if 2 * w * h < binary.size:
        return encode_window(binary[y : y + h, x : x + w], x, y, *binary.shape)
    rle = coco_mask.encode(_as_uint8(mask, "F"))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def _to_pycoco(rle: RLE) -> dict:
    """A compressed RLE in the form pycocotools' C functions take (``counts`` as bytes)."""
    counts = rle["counts"]
    height, width = (int(v) for v in rle["size"])
    if isinstance(counts, list):
        return coco_mask.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return {"size": [height, width], "counts": counts}


def to_compressed(rle: RLE) -> RLE:
    """Normalise an RLE (compressed with str/bytes counts, or uncompressed with a list) to compressed/str."""
    out = _to_pycoco(rle)
    counts = out["counts"]
    return {
        "size": [int(out["size"][0]), int(out["size"][1])],
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
    }


def run_lengths(rle: RLE) -> list[int]:
    """The runs of an RLE: alternating background and foreground pixel counts, background first, in
    column-major order (a list ``counts`` is returned as it is).

    A ``counts`` string is read as pycocotools reads it (6 bits per character from ``'0'``, five of
    value and a continuation bit, the last character of a run sign-extended, runs after the third
    stored as the difference to the run two before). pycocotools reads any string without a check and
    decodes a bad one to garbage or fails later, so this raises ValueError for a character outside
    ``'0'`` to ``'o'``, a string that ends inside a run, or a negative run.
    """
    counts = rle["counts"]
    if isinstance(counts, list):
        return list(counts)
    runs = _string_runs(counts)
    return runs.tolist() if isinstance(runs, np.ndarray) else runs


def _string_runs(counts: str | bytes) -> np.ndarray | list[int]:
    """The runs of a ``counts`` string (see :func:`run_lengths`): an int64 array, or a list of Python
    integers when a run is too long for 35 bits."""
    if isinstance(counts, bytes):
        counts = counts.decode("latin-1")
    if counts.isascii():
        codes = np.frombuffer(counts.encode("ascii"), np.uint8).astype(np.int64) - 48
    else:
        codes = np.frombuffer(counts.encode("utf-32-le"), np.uint32).astype(np.int64) - 48
    bad = np.flatnonzero((codes < 0) | (codes >= 64))
    digits = codes[: bad[0]] if bad.size else codes
    ends = (digits & 0x20) == 0
    complete = int(np.flatnonzero(ends)[-1]) + 1 if ends.any() else 0
    runs = _complete_runs(counts, digits[:complete], ends[:complete])  # errors in string order
    if bad.size:
        position = int(bad[0])
        raise ValueError(
            f"character {counts[position]!r} at position {position} is not an RLE digit ('0' to 'o')"
        )
    if complete < codes.size:
        raise ValueError("the string ends inside a run")
    return runs


def _complete_runs(counts: str, codes: np.ndarray, ends: np.ndarray) -> np.ndarray | list[int]:
    """The runs of the digits ``codes`` (``counts`` as numbers) that end on a run's last digit."""
    if not codes.size:
        return []
    last = np.flatnonzero(ends)  # the last digit of each run
    starts = np.concatenate(([0], last[:-1] + 1))
    digits = last - starts + 1
    if digits.max() > 7:  # a run of more than 35 bits: read it with Python's integers
        return _run_lengths_slow(counts)
    values = codes[starts] & 0x1F
    for k in range(1, int(digits.max())):
        more = np.flatnonzero(digits > k)
        values[more] |= (codes[starts[more] + k] & 0x1F) << (5 * k)
    negative = np.flatnonzero(codes[last] & 0x10)
    values[negative] -= np.left_shift(1, 5 * digits[negative])
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    below = np.flatnonzero(runs < 0)
    if below.size:
        index = int(below[0])
        raise ValueError(
            f"run {index} (ending at position {int(last[index])}) is negative ({int(runs[index])})"
        )
    return runs


def _run_lengths_slow(counts: str) -> list[int]:
    """:func:`run_lengths` of a ``counts`` string, one character at a time (any size of run)."""
    runs: list[int] = []
    value = shift = 0
    for position, char in enumerate(counts):
        code = ord(char) - 48
        if not 0 <= code < 64:
            raise ValueError(f"character {char!r} at position {position} is not an RLE digit ('0' to 'o')")
        value |= (code & 0x1F) << shift
        shift += 5
        if code & 0x20:
            continue
        if code & 0x10:
            value -= 1 << shift
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            raise ValueError(f"run {len(runs)} (ending at position {position}) is negative ({value})")
        runs.append(value)
        value = shift = 0
    if shift:
        raise ValueError("the string ends inside a run")
    return runs


def check_rle(rle: RLE, height: int, width: int) -> None:
    """Raise ValueError unless ``rle`` describes a mask of shape ``(height, width)``: ``size`` is
    ``[height, width]`` and the runs (:func:`run_lengths`) are non-negative integers that cover exactly
    ``height * width`` pixels. Every function of this module can then read it."""
    size = rle.get("size")
    if not isinstance(size, (list, tuple)) or list(size) != [height, width]:
        raise ValueError(f"size {size} differs from [{height}, {width}]")
    counts = rle.get("counts")
    if not isinstance(counts, (str, bytes, list)):
        raise ValueError("counts must be a string (compressed RLE) or a list of integers (uncompressed RLE)")
    if isinstance(counts, list):
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
            raise ValueError("the runs must be non-negative integers")
        covered = sum(counts)
    else:
        runs = _string_runs(counts)  # non-negative integers, or a ValueError
        covered = int(runs.sum()) if isinstance(runs, np.ndarray) else sum(runs)
    if covered != height * width:
        raise ValueError(f"the runs cover {covered} pixels, not height x width = {height * width}")


def decode(rle: RLE) -> np.ndarray:
    """Decode a (compressed or uncompressed) RLE to a ``bool`` mask of shape ``(H, W)``."""
    return coco_mask.decode(_to_pycoco(rle)).astype(bool, order="C")


def decode_window(rle: RLE, x: int, y: int, w: int, h: int) -> np.ndarray:
    """The mask within the window ``[x, x + w) x [y, y + h)`` (which must lie inside the image): a bool
    ``(h, w)`` array in C order, equal to ``decode(rle)[y:y + h, x:x + w]``. Each run is mapped to the
    window's column-major order (a run that spans columns covers, within the window, a contiguous stretch
    of it), so the time grows with the number of runs and the window, not with the image."""
    height = int(rle["size"][0])
    if w <= 0 or h <= 0:
        return np.zeros((max(h, 0), max(w, 0)), bool)
    counts = rle["counts"]
    runs = np.asarray(counts if isinstance(counts, list) else _string_runs(counts), np.int64)
    ends = np.cumsum(runs)
    mapped = _window_position(ends, height, x, y, w, h)
    lengths = np.diff(mapped, prepend=0)
    columns = np.repeat(np.arange(len(runs)) % 2 == 1, lengths)  # odd runs: foreground
    return np.ascontiguousarray(columns.reshape(w, h).T)


def _window_position(positions: np.ndarray, height: int, x: int, y: int, w: int, h: int) -> np.ndarray:
    """Column-major image positions -> the number of window pixels (column-major) that come before them."""
    column, row = np.divmod(positions, height)
    column -= x
    inside = np.clip(row - y, 0, h)
    return np.where(column < 0, 0, np.where(column >= w, w * h, column * h + inside))


def decode_crop(rle: RLE) -> tuple[np.ndarray, int, int]:
    """The mask cut to its bounding box, ``(crop, x, y)``: ``crop`` bool ``(h, w)`` in C order, equal to
    ``decode(rle)[y:y + h, x:x + w]`` (see :func:`decode_window`: the time grows with the object, not with
    the image). An empty mask gives a ``(0, 0)`` crop at ``(0, 0)``."""
    x, y, w, h = (int(v) for v in bbox(rle))
    if w == 0 or h == 0:
        return np.zeros((0, 0), bool), 0, 0
    return decode_window(rle, x, y, w, h), x, y


def encode_window(crop: np.ndarray, x: int, y: int, height: int, width: int) -> RLE:
    """Encode the ``(height, width)`` mask that is ``crop`` (``(h, w)``, non-zero = foreground) placed
    with its top-left pixel at ``(x, y)`` and background elsewhere; the window must lie inside the image.
    Equal to ``encode(full)`` of that full-size mask, in time that grows with the crop."""
    binary = _as_uint8(crop)
    h, w = binary.shape
    if not (0 <= x and 0 <= y and x + w <= width and y + h <= height):
        raise ValueError(f"the {w}x{h} window at ({x}, {y}) does not lie inside the {width}x{height} image")
    padded = np.zeros((w, h + 2), np.int8)
    padded[:, 1:-1] = binary.T
    change = np.diff(padded, axis=1)  # +1 where a foreground run starts, -1 after it ends
    cols, rows = np.nonzero(change)  # in column-major order of the image
    edges = (cols.astype(np.int64) + x) * height + y + rows
    if edges.size:  # a run that ends at the foot of a column and goes on at the head of the next one
        joined = np.flatnonzero(edges[1:-1:2] == edges[2::2])
        if joined.size:
            edges = np.delete(edges, np.concatenate([2 * joined + 1, 2 * joined + 2]))
    counts = np.diff(np.concatenate(([0], edges, [height * width])))
    if counts.size > 1 and counts[-1] == 0:
        counts = counts[:-1]
    rle = coco_mask.frPyObjects({"size": [height, width], "counts": counts.astype(np.uint32)}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def area(rle: RLE) -> int:
    """Number of foreground pixels."""
    return int(coco_mask.area(_to_pycoco(rle)))


def bbox(rle: RLE) -> list[float]:
    """Tight bbox ``[x, y, w, h]`` in pixels (``[0, 0, 0, 0]`` for an empty mask)."""
    return [float(v) for v in coco_mask.toBbox(_to_pycoco(rle))]


def merge(rles: Sequence[RLE], intersect: bool = False) -> RLE:
    """Union (or intersection) of RLEs of the same size."""
    merged = coco_mask.merge([_to_pycoco(r) for r in rles], intersect=intersect)
    return to_compressed(merged)


def part_count(mask: np.ndarray) -> int:
    """Number of 8-connected foreground components."""
    count, _ = cv2.connectedComponents(_content(mask), connectivity=8)
    return int(count) - 1


def has_holes(mask: np.ndarray) -> bool:
    """True when some background region is enclosed by foreground (an inner contour exists)."""
    _, hierarchy = cv2.findContours(_content(mask), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return hierarchy is not None and bool((hierarchy[0][:, 3] >= 0).any())


def _trace(
    mask: np.ndarray, retrieval: int, origin: tuple[int, int] = (0, 0)
) -> tuple[list[np.ndarray], np.ndarray | None, tuple[int, int]]:
    """Contours of a mask whose top-left pixel lies at image pixel ``origin`` traced at twice its
    resolution (see :func:`mask_to_polygons`).

    Returns the contours in doubled, cropped coordinates, their hierarchy and the crop's origin.
    """
    binary = _as_uint8(mask)
    x, y, w, h = cv2.boundingRect(binary)
    if w == 0 or h == 0:
        return [], None, (0, 0)
    crop = cv2.copyMakeBorder(binary[y : y + h, x : x + w], 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    doubled = crop.repeat(2, axis=0).repeat(2, axis=1)
    contours, hierarchy = cv2.findContours(doubled, retrieval, cv2.CHAIN_APPROX_SIMPLE)
    return list(contours), hierarchy, (x - 1 + int(origin[0]), y - 1 + int(origin[1]))


def _ring_points(contour: np.ndarray, origin: tuple[int, int], tolerance: float) -> np.ndarray:
    """A doubled-resolution contour -> ``(N, 2)`` image coordinates, simplified by ``tolerance`` px."""
    if tolerance > 0 and len(contour) > 4:
        simplified = cv2.approxPolyDP(contour, 2.0 * float(tolerance), True)
        if len(simplified) >= 3:
            contour = simplified
    return (contour.reshape(-1, 2).astype(np.float64) + 0.5) / 2.0 + np.asarray(origin, dtype=np.float64)


def mask_to_polygons(
    mask: np.ndarray, mode: PolygonMode = "all", tolerance: float = 1.0, origin: tuple[int, int] = (0, 0)
) -> list[Ring]:
    """Trace the outline of a mask as polygon rings.

    ``mode``: ``"largest"`` keeps the outer ring of the largest part, ``"all"`` the outer ring of every
    part, ``"all_with_holes"`` adds every hole as a ring with ``hole=True`` and ``parent`` set to the index
    of its outer ring (an island inside a hole is again an outer ring). Outer rings come in decreasing
    area. ``tolerance``: maximum distance in pixels between the traced and the simplified outline
    (``cv2.approxPolyDP``); 0 keeps every corner. Empty mask -> ``[]``.

    The outline is traced (``cv2.findContours``) on the mask enlarged twice with nearest-neighbour
    sampling, so it runs a quarter pixel outside the centres of the border pixels: rasterising the rings
    with pycocotools (:func:`polygons_to_rle`, pixel centres) gives the mask back exactly when
    ``tolerance`` is 0, and within ``tolerance`` pixels otherwise. Every part, even a single pixel,
    gives a ring of at least 3 points.

    ``origin``: the image pixel ``(x, y)`` of the mask's top-left pixel when ``mask`` is a crop (as
    :func:`decode_crop` gives it); the rings are in image coordinates, the same as those of the whole mask.
    """
    if mode not in POLYGON_MODES:
        raise ValueError(f"polygon mode must be one of {POLYGON_MODES}; got {mode!r}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 pixels; got {tolerance}")
    retrieval = cv2.RETR_CCOMP if mode == "all_with_holes" else cv2.RETR_EXTERNAL
    contours, hierarchy, origin = _trace(mask, retrieval, origin)
    if not contours:
        return []
    parents = hierarchy[0][:, 3]
    outer = [i for i in range(len(contours)) if parents[i] < 0]
    outer.sort(key=lambda i: -cv2.contourArea(contours[i]))
    if mode == "largest":
        outer = outer[:1]
    rings: list[Ring] = []
    for index in outer:
        parent_position = len(rings)
        rings.append(Ring(_ring_points(contours[index], origin, tolerance)))
        if mode == "all_with_holes":
            for child in np.flatnonzero(parents == index):
                rings.append(Ring(_ring_points(contours[child], origin, tolerance), True, parent_position))
    return rings


def check_polygon(polygon: Ring | np.ndarray | Sequence[float], height: int, width: int) -> None:
    """Raise ValueError for a ring pycocotools cannot rasterise on a ``(height, width)`` image: points not
    finite, or farther outside the image than its own width / height (its rasteriser takes memory in
    proportion to the length of the edges and overflows on huge coordinates)."""
    points = polygon.points if isinstance(polygon, Ring) else np.asarray(polygon, np.float64).reshape(-1, 2)
    if not np.isfinite(points).all():
        raise ValueError("the coordinates must be finite numbers")
    x, y = points[:, 0], points[:, 1]
    if len(points) and (x.min() < -width or x.max() > 2 * width or y.min() < -height or y.max() > 2 * height):
        raise ValueError(
            f"a point lies far outside the {width}x{height} image (more than the image's "
            "width or height beyond its border)"
        )


def polygons_to_rle(polygons: Sequence[Ring | np.ndarray | Sequence[float]], height: int, width: int) -> RLE:
    """Rasterise rings (``Ring``, ``(N, 2)`` arrays or flat ``[x0, y0, ...]`` lists) with pycocotools.

    Outer rings are united; each hole ring (``Ring.hole``) is cut out of its parent before the union.
    Points may lie outside the image (what lies outside is cut off) but not farther than the image's
    width / height beyond its border, and must be finite (ValueError otherwise).
    """
    rings = [
        p if isinstance(p, Ring) else Ring(np.asarray(p, dtype=np.float64).reshape(-1, 2)) for p in polygons
    ]
    for ring in rings:
        check_polygon(ring, height, width)
    if not rings:
        return encode(np.zeros((height, width), dtype=bool))
    holes: dict[int, list[Ring]] = {}
    for ring in rings:
        if ring.hole and ring.parent is not None:
            holes.setdefault(ring.parent, []).append(ring)
    parts = []
    for index, ring in enumerate(rings):
        if ring.hole:
            continue
        outer = coco_mask.frPyObjects([ring.flat()], height, width)[0]
        if index in holes:
            cut = coco_mask.merge(coco_mask.frPyObjects([h.flat() for h in holes[index]], height, width))
            x, y, w, h = (int(v) for v in coco_mask.toBbox(outer))  # the cut within the outer ring's bbox
            cut = to_compressed(cut)
            keep = decode_window(to_compressed(outer), x, y, w, h) & ~decode_window(cut, x, y, w, h)
            outer = _to_pycoco(encode_window(keep, x, y, height, width))
        parts.append(outer)
    return to_compressed(coco_mask.merge(parts))


def polygons_to_mask(
    polygons: Sequence[Ring | np.ndarray | Sequence[float]], height: int, width: int
) -> np.ndarray:
    """Rasterise rings to a ``bool`` mask ``(height, width)``; see :func:`polygons_to_rle`."""
    return decode(polygons_to_rle(polygons, height, width))


def boundary_distance(reference: np.ndarray, other: np.ndarray) -> float:
    """Largest distance (pixels) from a pixel where two masks differ to the reference mask's boundary.

    Distances are between pixel centres (a pixel next to the boundary is at 1), and the image border
    counts as boundary. 0 when the masks are equal. Used to check that a polygon round trip stays
    within its tolerance.
    """
    ref = _as_uint8(reference)
    diff = ref != _as_uint8(other)
    if not diff.any():
        return 0.0
    # a background frame: the image border counts as the mask's boundary
    padded = cv2.copyMakeBorder(ref, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    inside = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    outside = cv2.distanceTransform(1 - ref, cv2.DIST_L2, 5)
    return float(np.maximum(inside, outside)[diff].max())
