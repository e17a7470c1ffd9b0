"""Raster items that stay smooth on very large images (8000x6000 and more).

Each raster is kept as a pyramid (full size, 1/2, 1/4, ...) cut into tiles. A paint draws only
the tiles that intersect the exposed rectangle, from the coarsest level that still has at least one
source pixel per screen pixel, so zoomed out a 48-megapixel photo costs a few small tiles and zoomed
in only the visible tiles are drawn. Pyramids are built once per change with OpenCV, never per paint.

Scene coordinates are original-image pixels: the item's (0, 0) is the image's top-left corner.
"""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

TILE = 1024


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """A QImage (Format_RGB888) owning a copy of ``rgb`` (H, W, 3) uint8."""
    rgb = np.ascontiguousarray(rgb)
    h, w, _ = rgb.shape
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def labels_to_qimage(labels: np.ndarray, colors: list[QColor]) -> QImage:
    """An indexed QImage of a label map ``labels`` (H, W) uint8; index i is drawn in ``colors[i]``.

    Index 0 should be transparent. One byte per pixel, so recolouring or hiding a label only changes
    the colour table.
    """
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    h, w = labels.shape
    image = QImage(labels.data, w, h, w, QImage.Format.Format_Indexed8).copy()
    image.setColorTable([c.rgba() for c in colors] + [0] * (256 - len(colors)))
    return image


class _Level:
    def __init__(self, scale: float, tiles: list[tuple[int, int, QImage]], tile_size: int) -> None:
        self.scale = scale  # level pixels per image pixel (1, 1/2, 1/4, ...)
        self.tiles = tiles  # (x, y) of the tile's top-left in level pixels, image
        self.tile_size = tile_size


class RasterItem(QGraphicsItem):
    """An image or label map drawn from a tiled pyramid; see the module docstring."""

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self._levels: list[_Level] = []
        self._size = (0, 0)  # width, height in image pixels
        self._colors: list[QColor] = []
        self._indexed = False
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)

    # ----- content -----
    def set_rgb(self, rgb: np.ndarray | None) -> None:
        """Show ``rgb`` (H, W, 3) uint8; None clears the item."""
        self._indexed = False
        self._build(rgb, cv2.INTER_AREA)

    def set_labels(
        self, labels: np.ndarray | None, colors: list[QColor], offset: tuple[int, int] = (0, 0)
    ) -> None:
        """Show a label map (H, W) uint8 whose top-left lies at image pixel ``offset`` (x, y)."""
        self._indexed = True
        self._colors = list(colors)
        self.setPos(float(offset[0]), float(offset[1]))
        self._build(labels, cv2.INTER_NEAREST)

    def set_colors(self, colors: list[QColor]) -> None:
        """Change the colour table of a label map without rebuilding it (recolour, hide)."""
        self._colors = list(colors)
        table = [c.rgba() for c in colors] + [0] * (256 - len(colors))
        for level in self._levels:
            for _, _, image in level.tiles:
                image.setColorTable(table)
        self.update()

    def _build(self, array: np.ndarray | None, interpolation: int) -> None:
        self.prepareGeometryChange()
        self._levels = []
        if array is None or array.size == 0:
            self._size = (0, 0)
            return
        h, w = array.shape[:2]
        self._size = (w, h)
        scale = 1.0
        current = array
        while True:
            self._levels.append(_Level(scale, self._cut(current), TILE))
            ch, cw = current.shape[:2]
            if max(ch, cw) <= TILE:
                break
            nw, nh = max(1, cw // 2), max(1, ch // 2)
            current = cv2.resize(current, (nw, nh), interpolation=interpolation)
            scale = nw / w
        self.update()

    def _cut(self, array: np.ndarray) -> list[tuple[int, int, QImage]]:
        tiles = []
        h, w = array.shape[:2]
        for y in range(0, h, TILE):
            for x in range(0, w, TILE):
                part = array[y : y + TILE, x : x + TILE]
                image = labels_to_qimage(part, self._colors) if self._indexed else rgb_to_qimage(part)
                tiles.append((x, y, image))
        return tiles

    # ----- QGraphicsItem -----
    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt API)
        return QRectF(0, 0, self._size[0], self._size[1])

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        if not self._levels:
            return
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        level = self._levels[0]
        for candidate in self._levels:  # coarsest level that still has >= 1 pixel per screen pixel
            if candidate.scale >= lod:
                level = candidate
        exposed = option.exposedRect
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, not self._indexed and lod < 1.0)
        inv = 1.0 / level.scale
        for x, y, image in level.tiles:
            target = QRectF(x * inv, y * inv, image.width() * inv, image.height() * inv)
            if target.intersects(exposed):
                painter.drawImage(target, image, QRectF(0, 0, image.width(), image.height()))

    def level_count(self) -> int:
        """Pyramid levels (1 for an image no larger than one tile)."""
        return len(self._levels)


def transparent() -> QColor:
    return QColor(Qt.GlobalColor.transparent)
