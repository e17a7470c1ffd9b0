"""Overlay content: the instance label map and its colour table, prompt markers.

The instance overlay is one label map per image: label ``i + 1`` marks the pixels of the ``i``-th
instance in z-order (later instances drawn over earlier ones). It is ``uint8`` while the labels fit
(:data:`MAX_LABELS`) and ``uint16`` or wider past that, so every instance keeps a label of its own.
Colours live in the colour table, so hiding, selecting or recolouring an instance does not rebuild
the map.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsItem, QGraphicsRectItem, QGraphicsScene

from efficientsam_studio.gui.prompts import BoxPrompt, PointPrompt, PromptSet

MAX_LABELS = 255  # labels of a uint8 map (label 0 is the background)
FILL_ALPHA = 110
SELECTED_ALPHA = 190
MARKER_RADIUS = 5.0  # screen pixels


def label_dtype(count: int) -> type:
    """The narrowest label-map type with a label of its own for each of ``count`` instances."""
    if count < MAX_LABELS:
        return np.uint8
    return np.uint16 if count < 0xFFFF else np.uint32


def build_label_map(masks: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """Label map (height, width) of masks in z-order; instance ``i`` gets label ``i + 1``
    (``uint8`` for fewer than 255 masks, wider otherwise)."""
    labels = np.zeros((height, width), dtype=label_dtype(len(masks)))
    for index, mask in enumerate(masks):
        labels[mask] = index + 1
    return labels


def fill_argb(hex_colour: str, shown: bool, selected: bool) -> int:
    """The ARGB value of an instance's fill: its category colour, clear when hidden, more opaque when
    selected."""
    alpha = 0 if not shown else SELECTED_ALPHA if selected else FILL_ALPHA
    return (alpha << 24) | (QColor(hex_colour).rgb() & 0xFFFFFF) if alpha else 0


def label_colors(colors: Sequence[str], visible: Sequence[bool], selected: int | None) -> list[QColor]:
    """Colour table for :func:`build_label_map`: ``colors`` ("#rrggbb") per instance in z-order.

    Hidden instances are transparent; the ``selected`` index (z-order) is drawn more opaque.
    """
    table = [QColor(0, 0, 0, 0)]
    for index, (hex_colour, shown) in enumerate(zip(colors, visible, strict=False)):
        colour = QColor(hex_colour)
        colour.setAlpha(0 if not shown else SELECTED_ALPHA if index == selected else FILL_ALPHA)
        table.append(colour)
    return table


class PromptMarkers:
    """Markers of the current prompts: green dots (positive), red dots (negative), a dashed box."""

    def __init__(self, scene: QGraphicsScene) -> None:
        self._scene = scene
        self._items: list[QGraphicsItem] = []

    def show(self, prompts: PromptSet) -> None:
        self.clear()
        box = prompts.box
        if box is not None:
            self._add_box(box)
        for point in prompts.points:
            self._add_point(point)

    def clear(self) -> None:
        for item in self._items:
            self._scene.removeItem(item)
        self._items = []

    def _add_point(self, point: PointPrompt) -> None:
        r = MARKER_RADIUS
        item = QGraphicsEllipseItem(QRectF(-r, -r, 2 * r, 2 * r))
        item.setPos(QPointF(point.x, point.y))
        item.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
        fill = QColor(40, 200, 80) if point.label == 1 else QColor(230, 50, 50)
        item.setBrush(QBrush(fill))
        item.setPen(QPen(QColor("white"), 1.5))
        item.setZValue(10)
        self._scene.addItem(item)
        self._items.append(item)

    def _add_box(self, box: BoxPrompt) -> None:
        item = QGraphicsRectItem(QRectF(box.x0, box.y0, box.x1 - box.x0, box.y1 - box.y0))
        pen = QPen(QColor(255, 220, 0), 2, Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        item.setPen(pen)
        item.setZValue(10)
        self._scene.addItem(item)
        self._items.append(item)

    @property
    def count(self) -> int:
        return len(self._items)
