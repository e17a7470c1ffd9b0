"""The canvas: a QGraphicsView showing the image, the instance masks, the AI preview and tool items.

Scene coordinates are original-image pixels (x right, y down, (0, 0) = top-left corner of the image).
Zoom with the mouse wheel (around the cursor), fit to the window or 1:1; pan with the middle button,
or with the left button while Space is held; Ctrl+click asks to select the instance under the cursor.
Every other mouse event goes to the active tool in scene coordinates. Masks arrive as numpy arrays
and are turned into indexed images once per change.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent, QMouseEvent, QPainter, QResizeEvent, QWheelEvent
from PySide6.QtWidgets import QGraphicsScene, QGraphicsView, QWidget

from efficientsam_studio.gui.canvas.raster import Pyramid, RasterItem

ZOOM_STEP = 1.25
MIN_SCALE, MAX_SCALE = 1 / 64, 64.0


class CanvasTool(Protocol):
    """What the canvas calls on the active tool; positions are scene (image pixel) coordinates."""

    def press(self, pos: QPointF, event: QMouseEvent) -> None: ...

    def move(self, pos: QPointF, event: QMouseEvent) -> None: ...

    def release(self, pos: QPointF, event: QMouseEvent) -> None: ...

    def double_click(self, pos: QPointF, event: QMouseEvent) -> None: ...


class CanvasView(QGraphicsView):
    """Image, masks and tool items; see the module docstring for coordinates and mouse handling."""

    zoom_changed = Signal(float)  # screen pixels per image pixel
    cursor_moved = Signal(float, float)  # image pixel x, y (only while an image is shown)
    cleared = Signal()  # no image is shown any more (zoom and cursor position mean nothing)
    select_requested = Signal(float, float)  # Ctrl+click at image pixel x, y: select what is there
    left = Signal()  # the cursor left the canvas

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setOptimizationFlag(QGraphicsView.OptimizationFlag.DontSavePainterState, True)
        self.setBackgroundBrush(QColor(40, 40, 40))
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.image_item = RasterItem()
        self.instances_item = RasterItem()
        self.preview_item = RasterItem()
        for z, item in enumerate((self.image_item, self.instances_item, self.preview_item)):
            item.setZValue(z)
            self.scene().addItem(item)
        self._size = (0, 0)
        self._tool: CanvasTool | None = None
        self._pan_from: QPointF | None = None
        self._space_down = False
        self._fitted = True  # keep fitting on resize until the user zooms

    # ----- content -----
    @property
    def image_size(self) -> tuple[int, int]:
        """Width, height of the shown image in pixels ((0, 0) when none)."""
        return self._size

    def set_image(self, rgb: np.ndarray | None) -> None:
        """Show ``rgb`` (H, W, 3) uint8 and fit it to the window; None shows nothing."""
        self.show_pyramid(None if rgb is None else Pyramid.of_rgb(rgb))

    def show_pyramid(self, pyramid: Pyramid | None) -> None:
        """Show an image pyramid built beforehand (see :class:`Pyramid`) and fit it to the window; None
        shows nothing and emits ``cleared``."""
        self.image_item.set_pyramid(pyramid)
        self.instances_item.set_labels(None, [])
        self.preview_item.set_labels(None, [])
        self._size = (0, 0) if pyramid is None else pyramid.size
        self.scene().setSceneRect(QRectF(0, 0, *self._size) if pyramid is not None else QRectF())
        self.fit()
        if pyramid is None:
            self.cleared.emit()

    def set_instance_labels(self, labels: np.ndarray | None, colors) -> None:
        """Instance overlay: label map (H, W), ``uint8`` or wider, label i drawn in ``colors[i]`` (QColors
        or a ``uint32`` ARGB array; 0 transparent)."""
        self.instances_item.set_labels(labels, colors)

    def update_instance_labels(self, x0: int, y0: int, x1: int, y1: int) -> None:
        """Redraw the rectangle ``[x0, x1) x [y0, y1)`` of the label map given to
        :meth:`set_instance_labels`, after it was changed in place."""
        self.instances_item.update_labels(x0, y0, x1, y1)

    def set_instance_colors(self, colors, regions=None) -> None:
        """New colours for the overlay's labels; a wide map is drawn again only in ``regions`` (boxes
        x0, y0, x1, y1; None: everywhere)."""
        self.instances_item.set_colors(colors, regions)

    def set_preview(self, mask: np.ndarray | None, color: QColor) -> None:
        """Preview overlay of one mask (H, W) bool, cropped to its bounding box; None clears it."""
        if mask is None or not mask.any():
            self.preview_item.set_labels(None, [])
            return
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        crop = mask[y0:y1, x0:x1].astype(np.uint8)
        self.preview_item.set_labels(crop, [QColor(0, 0, 0, 0), color], offset=(int(x0), int(y0)))

    # ----- tools -----
    def set_tool(self, tool: CanvasTool | None) -> None:
        self._tool = tool

    # ----- zoom -----
    def current_scale(self) -> float:
        return self.transform().m11()

    def fit(self) -> None:
        """Fit the whole image in the window."""
        self._fitted = True
        if self._size[0] and self._size[1]:
            self.fitInView(QRectF(0, 0, *self._size), Qt.AspectRatioMode.KeepAspectRatio)
            self.zoom_changed.emit(self.current_scale())

    def actual_size(self) -> None:
        """One image pixel per screen pixel (1:1)."""
        self._fitted = False
        self.resetTransform()
        self.zoom_changed.emit(1.0)

    def zoom_by(self, factor: float) -> None:
        """Multiply the zoom by ``factor`` around the mouse (or the view centre)."""
        scale = self.current_scale()
        factor = min(max(scale * factor, MIN_SCALE), MAX_SCALE) / scale
        self._fitted = False
        self.scale(factor, factor)
        self.zoom_changed.emit(self.current_scale())

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        if self._fitted:
            self.fit()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 (Qt API)
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(ZOOM_STEP**steps)
        event.accept()

    # ----- mouse -----
    def _scene_pos(self, event: QMouseEvent) -> QPointF:
        return self.mapToScene(event.position().toPoint())

    def _start_pan(self, event: QMouseEvent) -> bool:
        panning = event.button() == Qt.MouseButton.MiddleButton or (
            event.button() == Qt.MouseButton.LeftButton and self._space_down
        )
        if panning:
            self._pan_from = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
        return panning

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        self.setFocus()
        if self._start_pan(event):
            return
        ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if ctrl and event.button() == Qt.MouseButton.LeftButton and self._size[0]:
            pos = self._scene_pos(event)
            self.select_requested.emit(pos.x(), pos.y())
            return
        if self._tool is not None and self._size[0]:
            self._tool.press(self._scene_pos(event), event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        pos = self._scene_pos(event)
        if self._size[0]:
            self.cursor_moved.emit(pos.x(), pos.y())
        if self._pan_from is not None:
            delta = event.position() - self._pan_from
            self._pan_from = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - int(delta.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - int(delta.y()))
            return
        if self._tool is not None and self._size[0]:
            self._tool.move(pos, event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        if self._pan_from is not None:
            self._pan_from = None
            self.viewport().unsetCursor()
            return
        if self._tool is not None and self._size[0]:
            self._tool.release(self._scene_pos(event), event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        if self._tool is not None and self._size[0]:
            self._tool.double_click(self._scene_pos(event), event)

    def leaveEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt API)
        self.left.emit()
        super().leaveEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt API)
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt API)
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = False
            self.viewport().unsetCursor()
            return
        super().keyReleaseEvent(event)
