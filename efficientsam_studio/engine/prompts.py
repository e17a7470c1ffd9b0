"""Prompts (points, labels, box) -> the decoder's point list, and the policy beyond its 6-point limit.

Coordinates are ``(x, y)`` in original image pixels. Point labels: 1 positive, 0 negative; a prompt
may hold negative points only. A box ``(x0, y0, x1, y1)`` becomes two points labelled 2 (top-left) and 3
(bottom-right); corners given in the wrong order are swapped into place.

Prompts and the image (:func:`fit_to_image`, applied by every predictor and by batch labelling): the
image spans ``0 <= x <= W`` and ``0 <= y <= H``. The model's coordinate transform scales ``x * 1024 / W``
and turns every negative coordinate into its padding value -1, so a point left of or above the image
would silently act as a point on its edge, and one beyond the far edges lies outside the frame the
model was trained on. Hence:

- a point at most :data:`EDGE_TOLERANCE` (one pixel) outside the image is moved onto its edge; a point
  further out is refused (:class:`PromptOutsideImageError`);
- a box is clipped to the image; a box that does not touch the image is refused. A box may be a line
  (``x0 == x1`` or ``y0 == y1``): the tight box of a one-pixel-wide object, which the model reads like any
  other.

The published decoder reads at most :data:`MAX_POINTS` points per prompt (a box uses two). When more are
given, the policy is: **keep the box and the most recent points** (the last ones in the order given,
since later clicks are usually corrections) and drop the earliest. Nothing is dropped silently: the
returned :class:`PromptInfo` lists the dropped indices and a note, and a
:class:`PromptsTruncatedWarning` is issued.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from efficientsam_studio.errors import StudioError

if TYPE_CHECKING:  # torch is imported where it is used, so the ONNX backend runs without it
    import torch

MAX_POINTS = 6
"""Points (box corners included) the published decoder reads per prompt."""

POSITIVE, NEGATIVE, BOX_TOP_LEFT, BOX_BOTTOM_RIGHT, PADDING = 1, 0, 2, 3, -1
"""Label values of the decoder's point list."""

PROMPT_POLICY = "keep the box and the most recent points"
"""One-line statement of what happens beyond :data:`MAX_POINTS`."""


EDGE_TOLERANCE = 1.0
"""Pixels a point may lie outside the image and still be used (moved onto the edge)."""


class PromptError(StudioError, ValueError):
    """Prompts of the wrong shape or with invalid values."""


class PromptOutsideImageError(PromptError):
    """A point or box lies outside the image; the message says which and the image's size."""


class PromptsTruncatedWarning(UserWarning):
    """More points were given than the decoder reads; the earliest were left out."""


@dataclass(frozen=True)
class Prompt:
    """One prompt: ``point_coords (N, 2)`` pixels ``(x, y)``, ``point_labels (N,)`` 1/0, ``box (4,)``."""

    point_coords: np.ndarray | None = None
    point_labels: np.ndarray | None = None
    box: np.ndarray | None = None


@dataclass(frozen=True)
class PromptInfo:
    """How a prompt reached the decoder: indices into the given points that were kept or dropped."""

    num_points: int
    kept_points: tuple[int, ...]
    dropped_points: tuple[int, ...]
    has_box: bool
    max_points: int = MAX_POINTS

    @property
    def truncated(self) -> bool:
        """True when some given points were not passed to the decoder."""
        return bool(self.dropped_points)

    @property
    def note(self) -> str | None:
        """A sentence for the user when points were dropped, else None."""
        if not self.truncated:
            return None
        box = " (a box uses 2)" if self.has_box else ""
        return (
            f"the model reads at most {self.max_points} points{box}; {PROMPT_POLICY}: used "
            f"{len(self.kept_points)} of {self.num_points} points, "
            f"left out points {list(self.dropped_points)}"
        )


def _as_array(value: object, name: str, shape_text: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PromptError(f"{name} must be numbers of shape {shape_text}: {exc}") from None
    if not np.all(np.isfinite(array)):
        raise PromptError(f"{name} holds values that are not finite numbers: {array.tolist()}")
    return array


def _number_text(value: float) -> str:
    return f"{float(value):g}"


def fit_to_image(
    point_coords: np.ndarray | None,
    box: np.ndarray | None,
    image_size: tuple[int, int],
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Apply the image rule of this module's docstring to ``point_coords (N, 2)`` and ``box (4,)``
    ``(x0, y0, x1, y1)`` of an ``image_size = (H, W)`` image.

    Returns the points moved onto the edge where they were within :data:`EDGE_TOLERANCE` of it and the
    box with its corners in order and clipped to the image, as float64 arrays (None stays None). Raises
    :class:`PromptOutsideImageError` naming the point or box and the image size.
    """
    h, w = (float(v) for v in image_size)
    frame = f"{int(w)}x{int(h)} image"
    coords = None
    if point_coords is not None:
        coords = np.asarray(point_coords, dtype=np.float64).reshape(-1, 2)
        margin = EDGE_TOLERANCE
        for x, y in coords:
            if not (-margin <= x <= w + margin and -margin <= y <= h + margin):
                raise PromptOutsideImageError(
                    f"point ({_number_text(x)}, {_number_text(y)}) lies outside the {frame} "
                    f"(x must be within 0..{int(w)}, y within 0..{int(h)})"
                )
        coords = np.stack([np.clip(coords[:, 0], 0.0, w), np.clip(coords[:, 1], 0.0, h)], axis=-1)
    fitted = None
    if box is not None:
        given = np.asarray(box, dtype=np.float64).reshape(4)
        x0, x1 = sorted(given[[0, 2]])
        y0, y1 = sorted(given[[1, 3]])
        # outside: beyond an edge, or touching it only from outside (a line on the edge itself is kept)
        beyond = x1 < 0 or y1 < 0 or x0 > w or y0 > h
        touching = (x1 == 0 < -x0) or (y1 == 0 < -y0) or (x0 == w < x1) or (y0 == h < y1)
        if beyond or touching:
            raise PromptOutsideImageError(f"box ({_box_text(given)}) lies outside the {frame}")
        fitted = np.clip([x0, y0, x1, y1], 0.0, [w, h, w, h])
    return coords, fitted


def _box_text(box: np.ndarray) -> str:
    return ", ".join(_number_text(v) for v in box)


def encode_prompt(
    point_coords: np.ndarray | None = None,
    point_labels: np.ndarray | None = None,
    box: np.ndarray | None = None,
    max_points: int = MAX_POINTS,
    warn: bool = True,
    image_size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, PromptInfo]:
    """Validate a prompt and apply the point-limit policy.

    Returns ``coords (M, 2)`` float32 in original pixels, ``labels (M,)`` float32 (points first, then the
    box corners labelled 2 and 3), with ``M <= max_points``, and a :class:`PromptInfo`. With
    ``image_size (H, W)`` the points and box are fitted to the image first (:func:`fit_to_image`).
    """
    coords = np.zeros((0, 2))
    labels = np.zeros((0,))
    if point_coords is not None or point_labels is not None:
        if point_coords is None or point_labels is None:
            raise PromptError("point_coords and point_labels must be given together")
        coords = _as_array(point_coords, "point_coords", "(N, 2)")
        labels = _as_array(point_labels, "point_labels", "(N,)")
        if coords.ndim != 2 or coords.shape[1] != 2:
            raise PromptError(f"point_coords must have shape (N, 2) as (x, y) pixels, got {coords.shape}")
        if labels.shape != (coords.shape[0],):
            raise PromptError(f"point_labels must have shape ({coords.shape[0]},), got {labels.shape}")
        if not np.isin(labels, (POSITIVE, NEGATIVE)).all():
            raise PromptError(f"point_labels must be 1 (positive) or 0 (negative), got {labels.tolist()}")
    corners = np.zeros((0, 2))
    if box is not None:
        box_array = _as_array(box, "box", "(4,)")
        if box_array.shape != (4,):
            raise PromptError(f"box must be (x0, y0, x1, y1), got shape {box_array.shape}")
        x0, x1 = sorted(box_array[[0, 2]])
        y0, y1 = sorted(box_array[[1, 3]])
        corners = np.array([[x0, y0], [x1, y1]])
    if len(coords) == 0 and len(corners) == 0:
        raise PromptError("give at least one point or a box")
    if image_size is not None:
        fitted_coords, fitted_box = fit_to_image(
            coords if len(coords) else None, corners.reshape(-1) if len(corners) else None, image_size
        )
        coords = coords if fitted_coords is None else fitted_coords
        corners = corners if fitted_box is None else fitted_box.reshape(2, 2)

    room = max_points - len(corners)
    n = len(coords)
    kept = tuple(range(max(0, n - room), n))
    dropped = tuple(range(0, max(0, n - room)))
    info = PromptInfo(
        num_points=n, kept_points=kept, dropped_points=dropped, has_box=box is not None, max_points=max_points
    )
    if info.truncated and warn:
        warnings.warn(info.note, PromptsTruncatedWarning, stacklevel=3)
    all_coords = np.concatenate([coords[list(kept)].reshape(-1, 2), corners]).astype(np.float32)
    box_labels = [BOX_TOP_LEFT, BOX_BOTTOM_RIGHT] if len(corners) else []
    all_labels = np.concatenate([labels[list(kept)], box_labels]).astype(np.float32)
    return all_coords, all_labels, info


def to_model_space(
    coords: torch.Tensor, original_size: tuple[int, int], img_size: int = 1024
) -> torch.Tensor:
    """Scale ``(..., 2)`` pixel coordinates ``(x, y)`` of an ``(H, W)`` image to the square input space.

    ``x * img_size / W`` and ``y * img_size / H``; negative coordinates become -1 (padding).
    """
    import torch

    h, w = original_size
    x, y = coords[..., 0], coords[..., 1]
    scaled_x = torch.where(x >= 0, x * img_size / w, -1.0)
    scaled_y = torch.where(y >= 0, y * img_size / h, -1.0)
    return torch.stack([scaled_x, scaled_y], dim=-1)


def stack_prompts(
    encoded: list[tuple[np.ndarray, np.ndarray]], max_points: int = MAX_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """Pad encoded prompts to ``max_points`` with coordinate -1 / label -1 and stack them.

    Returns ``coords (Q, max_points, 2)`` and ``labels (Q, max_points)``, float32.
    """
    coords = np.full((len(encoded), max_points, 2), -1.0, dtype=np.float32)
    labels = np.full((len(encoded), max_points), PADDING, dtype=np.float32)
    for i, (c, lab) in enumerate(encoded):
        coords[i, : len(c)] = c
        labels[i, : len(lab)] = lab
    return coords, labels


def prompts_from_arrays(
    point_coords: np.ndarray | None = None,
    point_labels: np.ndarray | None = None,
    boxes: np.ndarray | None = None,
) -> list[Prompt]:
    """Split batched arrays into :class:`Prompt` s: ``point_coords (Q, N, 2)``, ``point_labels (Q, N)``,
    ``boxes (Q, 4)``; when points and boxes are both given, prompt i holds points i and box i."""
    if point_coords is None and point_labels is None and boxes is None:
        raise PromptError("give point_coords with point_labels, boxes, or prompts")
    count = None
    if point_coords is not None or point_labels is not None:
        if point_coords is None or point_labels is None:
            raise PromptError("point_coords and point_labels must be given together")
        point_coords = np.asarray(point_coords)
        point_labels = np.asarray(point_labels)
        if point_coords.ndim != 3 or point_coords.shape[-1] != 2:
            raise PromptError(f"batched point_coords must have shape (Q, N, 2), got {point_coords.shape}")
        if point_labels.shape != point_coords.shape[:2]:
            raise PromptError(
                f"batched point_labels must have shape {point_coords.shape[:2]}, got {point_labels.shape}"
            )
        count = len(point_coords)
    if boxes is not None:
        boxes = np.asarray(boxes)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise PromptError(f"boxes must have shape (Q, 4), got {boxes.shape}")
        if count is not None and len(boxes) != count:
            raise PromptError(f"{count} point prompts but {len(boxes)} boxes; give one box per prompt")
        count = len(boxes)
    return [
        Prompt(
            point_coords=None if point_coords is None else point_coords[i],
            point_labels=None if point_labels is None else point_labels[i],
            box=None if boxes is None else boxes[i],
        )
        for i in range(count or 0)
    ]
