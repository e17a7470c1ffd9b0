"""Reading many compressed COCO RLE ``counts`` strings at once (opening a project).

:func:`read_counts` parses all the strings of a project in one pass of ``numpy`` operations over their
concatenation, checks each the way :func:`.masks.check_rle` does, and computes the area and bbox that
pycocotools would give (:func:`.masks.area`, :func:`.masks.bbox`). A string it cannot vouch for (a bad
character, a run cut off, negative or longer than 35 bits, runs that do not cover the image, an empty
mask, a foreground run of length zero, an image of ``2**32`` pixels or more) is only marked as not read:
the caller then takes the one-mask path (:func:`.masks.check_rle`, ``Instance.from_rle``), which gives
the exact error, so the messages stay those of that path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_MAX_DIGITS = 7  # 35 bits: longer runs are read one string at a time (Python integers)


@dataclass(frozen=True)
class CountsBatch:
    """The result of :func:`read_counts`, one entry per string.

    ``read``: bool, True where the string is a valid, non-empty mask of its image and ``area`` and
    ``bbox`` hold its pixel count and ``[x, y, w, h]`` (those of pycocotools); elsewhere they are 0.
    """

    read: np.ndarray
    area: np.ndarray
    bbox: np.ndarray

    def geometries(self) -> list[tuple[int, tuple[float, float, float, float]] | None]:
        """``(area, bbox)`` of each string as Python numbers, None where it was not read."""
        boxes = [tuple(box) for box in self.bbox.tolist()]
        return [
            (pixels, box) if ok else None
            for ok, pixels, box in zip(self.read.tolist(), self.area.tolist(), boxes, strict=True)
        ]


def _segmented_cumsum(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Running sums of ``values`` restarting where ``groups`` (non-decreasing) changes."""
    total = np.cumsum(values)
    if not values.size:
        return total
    first = np.ones(values.size, bool)
    first[1:] = groups[1:] != groups[:-1]
    base = (total - values)[first]
    return total - base[np.cumsum(first) - 1]


def read_counts(counts: Sequence[str], heights: Sequence[int], widths: Sequence[int]) -> CountsBatch:
    """Check and measure the compressed RLE strings ``counts`` of images ``heights`` x ``widths``
    (see the module's doc)."""
    n = len(counts)
    height = np.asarray(heights, np.int64).reshape(n)
    width = np.asarray(widths, np.int64).reshape(n)
    pixels = height * width
    read = (height > 0) & (width > 0) & (pixels < 2**32)
    text = "".join(counts)
    if not text.isascii():
        ascii_only = np.fromiter((c.isascii() for c in counts), bool, n)
        read &= ascii_only
        counts = [c if ok else "" for c, ok in zip(counts, ascii_only, strict=True)]
        text = "".join(counts)
    lengths = np.fromiter(map(len, counts), np.int64, n)
    codes = np.frombuffer(text.encode("ascii"), np.uint8).astype(np.int16) - 48
    owner = np.repeat(np.arange(n, dtype=np.int32), lengths)  # the string of each character
    bad = (codes < 0) | (codes >= 64)
    read[owner[bad]] = False
    codes[bad] = 0  # a run's last digit: keeps the runs of the other strings apart
    ends = (codes & 0x20) == 0
    last_char = np.cumsum(lengths) - 1
    tails = last_char[lengths > 0]
    read[owner[tails[~ends[tails]]]] = False  # the string ends inside a run
    ends[tails] = True

    last = np.flatnonzero(ends)  # the last digit of each run
    starts = np.empty_like(last)
    starts[:1] = 0
    starts[1:] = last[:-1] + 1
    digits = last - starts + 1
    read[owner[last[digits > _MAX_DIGITS]]] = False
    digits = np.minimum(digits, _MAX_DIGITS)
    values = (codes[starts] & 0x1F).astype(np.int64)
    for k in range(1, int(digits.max(initial=1))):
        more = np.flatnonzero(digits > k)
        values[more] |= (codes[starts[more] + k] & 0x1F).astype(np.int64) << (5 * k)
    negative = (codes[last] & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * digits[negative])

    run_owner = owner[last]
    run_count = np.bincount(run_owner, minlength=n)
    first_run = np.cumsum(run_count) - run_count
    index = np.arange(last.size) - first_run[run_owner]  # each run's index within its string
    runs = values.copy()  # runs after the third are stored as the difference to the run two before
    for parity, start in ((1, 1), (0, 2)):
        chosen = np.flatnonzero((index % 2 == parity) & (index >= start))
        runs[chosen] = _segmented_cumsum(values[chosen], run_owner[chosen])
    run_pixels = pixels[run_owner]
    foreground = index % 2 == 1
    broken = (runs < 0) | (runs > run_pixels) | (foreground & (runs == 0))
    read[run_owner[broken]] = False
    runs[broken] = 0  # keeps the sums below from overflowing

    covered = np.concatenate(([0], np.cumsum(runs)))
    read &= covered[first_run + run_count] - covered[first_run] == pixels
    fg_sum = np.concatenate(([0], np.cumsum(np.where(foreground, runs, 0))))
    area = fg_sum[first_run + run_count] - fg_sum[first_run]
    read &= area > 0
    area[~read] = 0

    # bbox as pycocotools computes it: over (background, foreground) pairs, the first and the last
    # pixel of each foreground run; a run that goes on into the next column spans the full height
    paired = np.flatnonzero(index < 2 * (run_count[run_owner] // 2))
    bbox = np.zeros((n, 4), np.float64)
    if paired.size:
        owner_p = run_owner[paired]
        position = covered[paired + 1] - covered[first_run[owner_p]] - (index[paired] % 2)
        column, row = np.divmod(position, height[owner_p])
        group = np.flatnonzero(np.concatenate(([True], owner_p[1:] != owner_p[:-1])))
        who = owner_p[group]
        pairs = column.reshape(-1, 2)
        spans = np.zeros(n, bool)
        spans[owner_p[::2][pairs[:, 0] < pairs[:, 1]]] = True
        x0 = np.minimum.reduceat(column, group)
        x1 = np.maximum.reduceat(column, group)
        y0 = np.where(spans[who], 0, np.minimum.reduceat(row, group))
        y1 = np.where(spans[who], height[who] - 1, np.maximum.reduceat(row, group))
        bbox[who] = np.stack([x0, y0, x1 - x0 + 1, y1 - y0 + 1], axis=1)
    bbox[~read] = 0
    return CountsBatch(read, area, bbox)
