"""Prompts of the AI tool, Qt-free: points and an optional box in original-image pixels.

Coordinates are ``(x, y)`` in pixels of the original image, x to the right, y down, the same
convention as :meth:`Predictor.predict`. Labels: 1 = positive point, 0 = negative point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Prompt points the model reads per call (the published decoder pads or truncates to 6); a box counts as 2.
MODEL_POINT_SLOTS = 6


@dataclass(frozen=True)
class PointPrompt:
    """One click: ``x``, ``y`` in image pixels and ``label`` (1 positive, 0 negative)."""

    x: float
    y: float
    label: int


@dataclass(frozen=True)
class BoxPrompt:
    """A dragged box ``x0, y0, x1, y1`` in image pixels with ``x0 <= x1`` and ``y0 <= y1``."""

    x0: float
    y0: float
    x1: float
    y1: float

    @staticmethod
    def from_corners(ax: float, ay: float, bx: float, by: float) -> BoxPrompt:
        return BoxPrompt(min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))


Prompt = PointPrompt | BoxPrompt


@dataclass
class PromptSet:
    """The prompts of the object being segmented, in the order they were given.

    A new box replaces the previous one (the model takes one box per object).
    """

    prompts: list[Prompt] = field(default_factory=list)

    def copy(self) -> PromptSet:
        return PromptSet(list(self.prompts))

    @property
    def points(self) -> list[PointPrompt]:
        return [p for p in self.prompts if isinstance(p, PointPrompt)]

    @property
    def box(self) -> BoxPrompt | None:
        boxes = [p for p in self.prompts if isinstance(p, BoxPrompt)]
        return boxes[-1] if boxes else None

    def is_empty(self) -> bool:
        return not self.prompts

    def with_added(self, prompt: Prompt) -> PromptSet:
        """A new set with ``prompt`` appended (a box replaces the earlier box)."""
        kept = [p for p in self.prompts if not (isinstance(prompt, BoxPrompt) and isinstance(p, BoxPrompt))]
        return PromptSet([*kept, prompt])

    def without_last(self) -> PromptSet:
        return PromptSet(self.prompts[:-1])

    def used_points(self) -> tuple[list[PointPrompt], int]:
        """The points sent to the model and how many older points are left out.

        Policy: the box (2 slots) is always kept, then the most recent points up to
        :data:`MODEL_POINT_SLOTS`; older points are left out and the user is told so.
        """
        slots = MODEL_POINT_SLOTS - (2 if self.box is not None else 0)
        points = self.points
        used = points[-slots:] if slots > 0 else []
        return used, len(points) - len(used)

    def predict_kwargs(self) -> dict:
        """Arguments for ``Predictor.predict``: ``point_coords`` (N,2) float32, ``point_labels`` (N,) int32,
        ``box`` (4,) float32 or None. Only the points kept by :meth:`used_points` are passed on."""
        points, _ = self.used_points()
        coords = np.array([[p.x, p.y] for p in points], dtype=np.float32).reshape(-1, 2)
        labels = np.array([p.label for p in points], dtype=np.int32)
        box = self.box
        box_arr = None if box is None else np.array([box.x0, box.y0, box.x1, box.y1], dtype=np.float32)
        return {
            "point_coords": coords if len(points) else None,
            "point_labels": labels if len(points) else None,
            "box": box_arr,
        }

    def limit_message(self) -> str:
        """Status text about the point limit: empty while every prompt fits in the model's 6 slots."""
        _, dropped = self.used_points()
        if not dropped:
            return ""
        return (
            f"The model reads {MODEL_POINT_SLOTS} prompt points (a box counts as 2): "
            f"the {dropped} oldest point(s) are not used. "
            "Remove points with Backspace or start over with Esc."
        )
