"""Brush and eraser on the selected instance's mask.

A stroke is drawn as a vector path while the button is held (no raster work per mouse move) and is
rasterised into the mask with OpenCV on release, as one undo step; only the rectangle of the stroke and
the instance's bbox is rasterised, decoded and encoded, so a stroke costs the same on any image size.
The brush adds to the selected instance, or starts a new manual instance of the current category when
none is selected (an unlabelled image becomes in progress, in the same undo step); the eraser removes
from the selected instance. ``size`` is the stroke diameter in image pixels; ``[`` and ``]`` (routed by
the main window) change it.
"""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsPathItem

from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.commands import AddInstance, UpdateInstance
from efficientsam_studio.gui.canvas.view import CanvasView
from efficientsam_studio.gui.session import Session
from efficientsam_studio.gui.tools.base import Tool

MIN_SIZE, MAX_SIZE = 1, 500


def stroke_window(
    points: list[tuple[float, float]], size: int, height: int, width: int
) -> tuple[int, int, int, int]:
    """The rectangle ``(x, y, w, h)`` of the image that a stroke (see :func:`rasterise_stroke`) can touch:
    the points' bounding box grown by the pen's radius and a margin, cut to the image (w or h may be 0)."""
    radius = max(int(round(size / 2)), 1)
    pts = np.round(np.asarray(points, dtype=np.float64)).reshape(-1, 2)
    margin = radius + 2
    x0 = int(min(max(pts[:, 0].min() - margin, 0), width))
    y0 = int(min(max(pts[:, 1].min() - margin, 0), height))
    x1 = int(min(max(pts[:, 0].max() + margin + 1, x0), width))
    y1 = int(min(max(pts[:, 1].max() + margin + 1, y0), height))
    return x0, y0, x1 - x0, y1 - y0


def rasterise_stroke_window(
    points: list[tuple[float, float]], size: int, height: int, width: int
) -> tuple[np.ndarray, int, int]:
    """The stroke of :func:`rasterise_stroke` within its :func:`stroke_window`: ``(crop, x, y)``, ``crop``
    bool ``(h, w)`` equal to ``rasterise_stroke(...)[y:y + h, x:x + w]`` (the stroke is drawn shifted
    onto a canvas of the window's size, so the time grows with the stroke, not with the image)."""
    x, y, w, h = stroke_window(points, size, height, width)
    canvas = np.zeros((h, w), dtype=np.uint8)
    if w == 0 or h == 0:
        return canvas.astype(bool), x, y
    radius = max(int(round(size / 2)), 1)
    pts = np.round(np.asarray(points, dtype=np.float64)).astype(np.int32).reshape(-1, 2) - [x, y]
    pts = pts.astype(np.int32)
    if len(pts) == 1:
        cv2.circle(canvas, (int(pts[0, 0]), int(pts[0, 1])), radius, 1, thickness=-1)
    else:
        cv2.polylines(canvas, [pts], isClosed=False, color=1, thickness=2 * radius, lineType=cv2.LINE_8)
        for px, py in pts[[0, -1]]:
            cv2.circle(canvas, (int(px), int(py)), radius, 1, thickness=-1)
    return canvas.astype(bool), x, y


def rasterise_stroke(points: list[tuple[float, float]], size: int, height: int, width: int) -> np.ndarray:
    """Bool mask (height, width) of a round-capped stroke of diameter ``size`` through ``points`` (x, y)."""
    mask = np.zeros((height, width), dtype=bool)
    crop, x, y = rasterise_stroke_window(points, size, height, width)
    mask[y : y + crop.shape[0], x : x + crop.shape[1]] = crop
    return mask


class BrushTool(Tool):
    """Paint (``erase=False``) or erase (``erase=True``) strokes; see the module docstring."""

    size_changed = Signal(int)

    def __init__(self, canvas: CanvasView, session: Session, erase: bool = False) -> None:
        super().__init__(canvas, session)
        self.erase = erase
        self.name = "eraser" if erase else "brush"
        self.size = 20
        self._points: list[tuple[float, float]] = []
        self._item = QGraphicsPathItem()
        self._item.setZValue(15)
        canvas.scene().addItem(self._item)

    def activate(self) -> None:
        super().activate()
        self.status.emit(self.describe())

    def describe(self) -> str:
        """Status text: what a stroke does and the current size."""
        what = (
            "Erase from the selected instance"
            if self.erase
            else "Paint on the selected instance (or a new one)"
        )
        return f"{what}; size {self.size} px ([ and ] change it)"

    def set_size(self, size: int) -> None:
        """Set the stroke diameter (clamped to 1-500 image pixels); the active tool's status follows."""
        self.size = int(min(max(size, MIN_SIZE), MAX_SIZE))
        self.size_changed.emit(self.size)
        if self.active:
            self.status.emit(self.describe())

    def press(self, pos: QPointF, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        if self.erase and self.session.selected_instance is None:
            self.status.emit("Select an instance first: the eraser works on the selected instance.")
            return
        self._points = [(pos.x(), pos.y())]
        colour = QColor(255, 255, 255, 140) if self.erase else self.category_colour(140)
        pen = QPen(
            colour, self.size, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin
        )
        self._item.setPen(pen)
        self._update_path()

    def move(self, pos: QPointF, event: QMouseEvent) -> None:
        if self._points:
            self._points.append((pos.x(), pos.y()))
            self._update_path()

    def release(self, pos: QPointF, event: QMouseEvent) -> None:
        if not self._points:
            return
        points, self._points = self._points, []
        self._item.setPath(QPainterPath())
        self.apply_stroke(points)

    def _update_path(self) -> None:
        path = QPainterPath(QPointF(*self._points[0]))
        for x, y in self._points[1:]:
            path.lineTo(x, y)
        if len(self._points) == 1:
            path.lineTo(self._points[0][0] + 0.01, self._points[0][1])
        self._item.setPath(path)

    def apply_stroke(self, points: list[tuple[float, float]]) -> bool:
        """Rasterise a stroke through ``points`` (image pixels) into the mask, as one undo step."""
        image = self.session.current_image
        if image is None:
            return False
        stroke, sx, sy = rasterise_stroke_window(points, self.size, image.height, image.width)
        if not stroke.any():
            self.status.emit("The stroke is outside the image.")
            return False
        instance = self.session.selected_instance
        document = self.session.document
        if instance is None:
            category = self.session.current_category
            if self.erase or category is None:
                self.status.emit("Add a category first to paint a new instance.")
                return False
            rle = masks.encode_window(stroke, sx, sy, image.height, image.width)
            add = AddInstance.from_rle(document, image.id, category.id, rle, source="manual")
            if self.session.push(self.session.labelling_step(add)):
                self.session.select_instance(add.instance.id)
                return True
            return False
        # the window of the stroke and the instance's bbox holds every pixel that is or becomes foreground
        bx, by, bw, bh = (int(v) for v in instance.bbox)
        x0, y0 = min(sx, bx), min(sy, by)
        x1 = max(sx + stroke.shape[1], bx + bw)
        y1 = max(sy + stroke.shape[0], by + bh)
        mask = instance.window(x0, y0, x1 - x0, y1 - y0)
        local = np.zeros_like(mask)
        local[sy - y0 : sy - y0 + stroke.shape[0], sx - x0 : sx - x0 + stroke.shape[1]] = stroke
        new = mask & ~local if self.erase else mask | local
        if not new.any():
            self.status.emit("The eraser would leave the instance empty; delete it instead (Del).")
            return False
        if np.array_equal(new, mask):
            return False
        text = "Erase" if self.erase else "Paint"
        rle = masks.encode_window(new, x0, y0, image.height, image.width)
        return self.session.push(UpdateInstance(document, instance.id, rle=rle, source="manual", text=text))
