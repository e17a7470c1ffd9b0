"""Prompt sampling for finetuning and evaluation.

Coordinates are ``(x, y)`` = ``(column, row)`` pixel indices of the image the mask belongs to (the
engine and the model add the half-pixel shift themselves). A prompt is a set of points with labels in
the model's convention: 1 positive point, 0 negative point, 2 / 3 the top-left / bottom-right corners of a
box, -1 padding. A box is ``[x0, y0, x1, y1]`` where ``(x0, y0)`` and ``(x1, y1)`` are the indices of
the extreme foreground pixels (inclusive), as in segment-anything.

The model takes at most :data:`MAX_PROMPT_POINTS` points per prompt (a box counts as two).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

MAX_PROMPT_POINTS = 6
LABEL_PAD, LABEL_NEGATIVE, LABEL_POSITIVE, LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT = -1, 0, 1, 2, 3


@dataclass(frozen=True)
class PromptConfig:
    """How training prompts are drawn for each mask.

    ``box_probability``: chance of a (jittered) box instead of points. ``box_jitter``: standard deviation
    of the corner noise as a fraction of the box side; ``box_jitter_max``: cap of that noise in pixels of
    the image (segment-anything: 10 % and 20 px, the latter in its 1024-px input; see trainer/README.md).
    ``min_points`` .. ``max_points``: how many points a point prompt has (the first is always positive,
    drawn uniformly inside the mask);
    ``negative_probability``: chance that each further point is negative (drawn outside the mask,
    within the mask's box grown by ``negative_margin`` of its side on each edge).
    ``iterative_clicks``: corrective clicks added after the first prediction (training only, see
    :func:`error_region_clicks`).
    """

    box_probability: float = 0.5
    box_jitter: float = 0.1
    box_jitter_max: float = 20.0
    min_points: int = 1
    max_points: int = 1
    negative_probability: float = 0.5
    negative_margin: float = 0.5
    iterative_clicks: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.box_probability <= 1.0:
            raise ValueError(f"box_probability must be in [0, 1]; got {self.box_probability}")
        if not 1 <= self.min_points <= self.max_points:
            raise ValueError(f"need 1 <= min_points <= max_points; got {self.min_points}, {self.max_points}")
        if self.max_points + self.iterative_clicks > MAX_PROMPT_POINTS:
            raise ValueError(
                f"max_points + iterative_clicks must be <= {MAX_PROMPT_POINTS} (the model's limit); "
                f"got {self.max_points} + {self.iterative_clicks}"
            )


@dataclass
class Prompt:
    """``coords`` float32 ``(N, 2)`` ``(x, y)`` pixel indices; ``labels`` int64 ``(N,)``."""

    coords: np.ndarray
    labels: np.ndarray

    @property
    def is_box(self) -> bool:
        return bool((self.labels == LABEL_BOX_TOP_LEFT).any())


def mask_to_box(mask: np.ndarray) -> np.ndarray:
    """Tight box ``[x0, y0, x1, y1]`` (float32, inclusive pixel indices) of a non-empty ``(H, W)`` mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("cannot take the box of an empty mask")
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], dtype=np.float32)


def jitter_box(
    box: np.ndarray,
    rng: np.random.Generator,
    width: int,
    height: int,
    fraction: float = 0.1,
    max_pixels: float = 20.0,
) -> np.ndarray:
    """Add Gaussian noise (std ``fraction`` x side, clipped to ``max_pixels``) to each corner; keep it inside
    the image and ordered."""
    x0, y0, x1, y1 = (float(v) for v in box)
    scale = np.array([x1 - x0 + 1, y1 - y0 + 1, x1 - x0 + 1, y1 - y0 + 1], dtype=np.float32) * fraction
    noise = np.clip(rng.normal(0.0, 1.0, size=4) * scale, -max_pixels, max_pixels)
    out = np.asarray(box, dtype=np.float32) + noise.astype(np.float32)
    out[[0, 2]] = np.clip(out[[0, 2]], 0, width - 1)
    out[[1, 3]] = np.clip(out[[1, 3]], 0, height - 1)
    return np.array(
        [min(out[0], out[2]), min(out[1], out[3]), max(out[0], out[2]), max(out[1], out[3])], dtype=np.float32
    )


def random_points(region: np.ndarray, rng: np.random.Generator, count: int = 1) -> np.ndarray:
    """``count`` pixels drawn uniformly (with replacement) from a non-empty bool region.

    Returns float32 ``(count, 2)`` ``(x, y)``.
    """
    rows, cols = np.nonzero(region)
    if rows.size == 0:
        raise ValueError("cannot draw a point from an empty region")
    picks = rng.integers(0, rows.size, size=count)
    return np.stack([cols[picks], rows[picks]], axis=1).astype(np.float32)


def center_point(region: np.ndarray) -> np.ndarray:
    """The pixel of a non-empty region farthest from its boundary (distance transform; the image border
    counts as boundary): float32 ``(2,)`` ``(x, y)``. Among equally deep pixels (a ridge), the one nearest
    to their mean position is taken, so a rectangle gives its centre."""
    padded = np.pad(region.astype(np.uint8), 1)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    deepest = distance.max()
    if deepest <= 0:
        raise ValueError("cannot take the centre of an empty region")
    rows, cols = np.nonzero(distance >= deepest - 1e-4)
    mean_row, mean_col = rows.mean(), cols.mean()
    pick = int(np.argmin((rows - mean_row) ** 2 + (cols - mean_col) ** 2))
    return np.array([cols[pick], rows[pick]], dtype=np.float32)


def box_prompt(box: np.ndarray) -> Prompt:
    """A box as the model's two labelled corner points."""
    coords = np.asarray(box, dtype=np.float32).reshape(2, 2)
    return Prompt(coords, np.array([LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT], dtype=np.int64))


def _negative_region(mask: np.ndarray, margin: float) -> np.ndarray:
    height, width = mask.shape
    x0, y0, x1, y1 = mask_to_box(mask)
    grow_x, grow_y = (x1 - x0 + 1) * margin, (y1 - y0 + 1) * margin
    near = np.zeros_like(mask)
    near[
        int(max(0, y0 - grow_y)) : int(min(height, y1 + grow_y + 1)),
        int(max(0, x0 - grow_x)) : int(min(width, x1 + grow_x + 1)),
    ] = True
    region = near & ~mask
    return region if region.any() else ~mask


def sample_prompt(
    mask: np.ndarray, rng: np.random.Generator, config: PromptConfig = PromptConfig()
) -> Prompt:
    """Draw one training prompt for a non-empty bool ``(H, W)`` mask: a jittered box or 1..N points."""
    height, width = mask.shape
    if rng.random() < config.box_probability:
        box = jitter_box(mask_to_box(mask), rng, width, height, config.box_jitter, config.box_jitter_max)
        return box_prompt(box)
    count = int(rng.integers(config.min_points, config.max_points + 1))
    coords = [random_points(mask, rng, 1)[0]]
    labels = [LABEL_POSITIVE]
    outside = None
    for _ in range(count - 1):
        if rng.random() < config.negative_probability and not mask.all():
            outside = _negative_region(mask, config.negative_margin) if outside is None else outside
            coords.append(random_points(outside, rng, 1)[0])
            labels.append(LABEL_NEGATIVE)
        else:
            coords.append(random_points(mask, rng, 1)[0])
            labels.append(LABEL_POSITIVE)
    return Prompt(np.stack(coords).astype(np.float32), np.asarray(labels, dtype=np.int64))


def error_click(
    predicted: np.ndarray, target: np.ndarray, rng: np.random.Generator | None = None, mode: str = "random"
) -> tuple[np.ndarray, int] | None:
    """A corrective click from the error region of a prediction (evaluation, one mask at a time).

    ``predicted`` and ``target``: bool ``(H, W)``. Returns ``((x, y), label)`` — label 1 on a missed
    foreground pixel, 0 on a wrongly included one — or None when the prediction is exact. ``mode``:
    ``"random"`` draws uniformly from all error pixels (``rng`` required); ``"center"`` takes the error
    pixel farthest from the error region's boundary.
    """
    missed = target & ~predicted
    extra = predicted & ~target
    error = missed | extra
    if not error.any():
        return None
    if mode == "random":
        if rng is None:
            raise ValueError("mode 'random' needs an rng")
        point = random_points(error, rng, 1)[0]
    elif mode == "center":
        point = center_point(error)
    else:
        raise ValueError(f"unknown click mode {mode!r}; expected 'random' or 'center'")
    col, row = int(point[0]), int(point[1])
    return point, LABEL_POSITIVE if missed[row, col] else LABEL_NEGATIVE


def error_region_clicks(
    predicted: torch.Tensor, target: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched corrective clicks for training: one uniformly random error pixel per mask.

    ``predicted``, ``target``: bool ``(..., H, W)``. Returns ``coords`` float32 ``(..., 2)`` as ``(x, y)``
    pixel indices of that grid, and ``labels`` int64 ``(...)``: 1 where the pixel was missed foreground,
    0 where it was wrongly included, -1 (padding, coords -1) where the prediction is exact.
    """
    missed = target & ~predicted
    error = missed | (predicted & ~target)
    flat = error.flatten(-2)
    noise = torch.rand(flat.shape, generator=generator, device=flat.device)
    index = torch.where(flat, noise + 1.0, noise * 0).argmax(dim=-1)
    width = predicted.shape[-1]
    coords = torch.stack([index % width, index // width], dim=-1).to(torch.float32)
    hit_missed = missed.flatten(-2).gather(-1, index.unsqueeze(-1)).squeeze(-1)
    labels = torch.where(hit_missed, LABEL_POSITIVE, LABEL_NEGATIVE).to(torch.int64)
    has_error = flat.any(dim=-1)
    labels = torch.where(has_error, labels, torch.full_like(labels, LABEL_PAD))
    coords = torch.where(has_error.unsqueeze(-1), coords, torch.full_like(coords, -1.0))
    return coords, labels


def pad_prompts(prompts: list[Prompt], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stack prompts into ``coords`` float32 ``(Q, N, 2)`` and ``labels`` int64 ``(Q, N)``, padding with
    coordinate -1 / label -1 up to ``length`` (default: the longest prompt)."""
    length = max((len(p.labels) for p in prompts), default=1) if length is None else length
    coords = np.full((len(prompts), length, 2), -1.0, dtype=np.float32)
    labels = np.full((len(prompts), length), LABEL_PAD, dtype=np.int64)
    for index, prompt in enumerate(prompts):
        n = min(length, len(prompt.labels))
        coords[index, :n] = prompt.coords[:n]
        labels[index, :n] = prompt.labels[:n]
    return coords, labels
