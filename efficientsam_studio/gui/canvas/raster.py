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
    return indexed_image(labels, color_table(colors))


def indexed_image(labels: np.ndarray, table: list[int]) -> QImage:
    """An indexed QImage owning a copy of ``labels`` (H, W) uint8, with the colour table ``table``."""
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    h, w = labels.shape
    image = QImage(labels.data, w, h, w, QImage.Format.Format_Indexed8).copy()
    image.setColorTable(table)
    return image


class Level:
    """One pyramid level: ``scale`` = level pixels per image pixel (1, 1/2, ...), tiles as (x, y, QImage)
    with (x, y) the tile's top-left corner in level pixels. A label map's level also keeps its array and,
    below the first level, the rows and columns of the level above that it samples (``sources``)."""

    def __init__(
        self,
        scale: float,
        tiles: list[tuple[int, int, QImage]],
        array: np.ndarray | None = None,
        sources: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.scale = scale
        self.tiles = tiles
        self.array = array
        self.sources = sources


def nearest_sources(size: int, new_size: int) -> np.ndarray:
    """The source index of each of ``new_size`` samples taken from ``size`` (nearest, ``i * size //
    new_size``)."""
    return (np.arange(new_size, dtype=np.int64) * size) // new_size


class Pyramid:
    """Tiled levels of one raster and its size (width, height) in image pixels.

    Building one touches only numpy, OpenCV and QImage (no QPixmap), so it may run in a worker thread.
    A label map's pyramid keeps its arrays (the first level is the label map itself, not a copy), so a
    change of a rectangle of the map is redrawn with :meth:`update_region` in time that grows with it.
    """

    def __init__(self, levels: list[Level], size: tuple[int, int], indexed: bool) -> None:
        self.levels, self.size, self.indexed = levels, size, indexed
        self.table: list[int] = []

    @classmethod
    def of_rgb(cls, rgb: np.ndarray) -> Pyramid:
        """Pyramid of an image (H, W, 3) uint8 RGB (levels shrunk with area averaging)."""
        return cls._build(rgb, cv2.INTER_AREA, lambda part: rgb_to_qimage(part), indexed=False)

    @classmethod
    def of_labels(cls, labels: np.ndarray, colors: list[QColor]) -> Pyramid:
        """Pyramid of a label map (H, W) uint8 drawn with the colour table ``colors`` (levels sampled
        with :func:`nearest_sources`)."""
        labels = np.ascontiguousarray(labels, dtype=np.uint8)
        h, w = labels.shape
        levels = []
        current, sources, scale = labels, None, 1.0
        while True:
            ch, cw = current.shape
            tiles = [
                (x, y, labels_to_qimage(current[y : y + TILE, x : x + TILE], colors))
                for y in range(0, ch, TILE)
                for x in range(0, cw, TILE)
            ]
            levels.append(Level(scale, tiles, current, sources))
            if max(ch, cw) <= TILE:
                break
            nw, nh = max(1, cw // 2), max(1, ch // 2)
            sources = (nearest_sources(ch, nh), nearest_sources(cw, nw))
            current = current[np.ix_(*sources)]
            scale = nw / w
        pyramid = cls(levels, (w, h), indexed=True)
        pyramid.table = color_table(colors)
        return pyramid

    def update_region(self, x0: int, y0: int, x1: int, y1: int) -> None:
        """Redraw the label map's rectangle ``[x0, x1) x [y0, y1)`` (image pixels) after it changed in
        place: the coarser levels' samples of it and the tiles that hold them are made again."""
        for index, level in enumerate(self.levels):
            if level.array is None:
                raise ValueError("only a label map's pyramid can be updated in place")
            if index:
                rows, cols = level.sources
                y0, y1 = np.searchsorted(rows, y0), np.searchsorted(rows, y1)
                x0, x1 = np.searchsorted(cols, x0), np.searchsorted(cols, x1)
                if y0 < y1 and x0 < x1:
                    above = self.levels[index - 1].array
                    level.array[y0:y1, x0:x1] = above[np.ix_(rows[y0:y1], cols[x0:x1])]
            if y0 >= y1 or x0 >= x1:
                return
            for position, (tx, ty, _) in enumerate(level.tiles):
                if tx < x1 and tx + TILE > x0 and ty < y1 and ty + TILE > y0:
                    image = indexed_image(level.array[ty : ty + TILE, tx : tx + TILE], self.table)
                    level.tiles[position] = (tx, ty, image)

    @classmethod
    def _build(cls, array: np.ndarray, interpolation: int, to_image, indexed: bool) -> Pyramid:
        h, w = array.shape[:2]
        levels = []
        scale, current = 1.0, array
        while True:
            ch, cw = current.shape[:2]
            tiles = [
                (x, y, to_image(current[y : y + TILE, x : x + TILE]))
                for y in range(0, ch, TILE)
                for x in range(0, cw, TILE)
            ]
            levels.append(Level(scale, tiles))
            if max(ch, cw) <= TILE:
                break
            nw, nh = max(1, cw // 2), max(1, ch // 2)
            current = cv2.resize(current, (nw, nh), interpolation=interpolation)
            scale = nw / w
        return cls(levels, (w, h), indexed)


def color_table(colors: list[QColor]) -> list[int]:
    """The 256 entries of an indexed QImage's colour table for ``colors`` (the rest transparent)."""
    return [c.rgba() for c in colors] + [0] * (256 - len(colors))


class RasterItem(QGraphicsItem):
    """An image or label map drawn from a tiled pyramid; see the module docstring."""

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self._pyramid: Pyramid | None = None
        self.painted: tuple[float, int] = (0.0, 0)  # last paint: level scale, tiles drawn (diagnostics)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)

    # ----- content -----
    def set_pyramid(self, pyramid: Pyramid | None) -> None:
        """Show a pyramid built beforehand (possibly in a worker thread); None clears the item."""
        self.prepareGeometryChange()
        self._pyramid = pyramid
        self.update()

    def set_rgb(self, rgb: np.ndarray | None) -> None:
        """Show ``rgb`` (H, W, 3) uint8; None clears the item."""
        self.set_pyramid(None if rgb is None or rgb.size == 0 else Pyramid.of_rgb(rgb))

    def set_labels(
        self, labels: np.ndarray | None, colors: list[QColor], offset: tuple[int, int] = (0, 0)
    ) -> None:
        """Show a label map (H, W) uint8 whose top-left lies at image pixel ``offset`` (x, y)."""
        self.setPos(float(offset[0]), float(offset[1]))
        self.set_pyramid(None if labels is None or labels.size == 0 else Pyramid.of_labels(labels, colors))

    def update_labels(self, x0: int, y0: int, x1: int, y1: int) -> None:
        """Redraw the rectangle ``[x0, x1) x [y0, y1)`` of the label map shown, changed in place."""
        if self._pyramid is None:
            return
        self._pyramid.update_region(x0, y0, x1, y1)
        self.update(QRectF(x0, y0, x1 - x0, y1 - y0))

    def set_colors(self, colors: list[QColor]) -> None:
        """Change the colour table of a label map without rebuilding it (recolour, hide)."""
        if self._pyramid is None:
            return
        table = color_table(colors)
        self._pyramid.table = table
        for level in self._pyramid.levels:
            for _, _, image in level.tiles:
                image.setColorTable(table)
        self.update()

    # ----- QGraphicsItem -----
    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt API)
        if self._pyramid is None:
            return QRectF()
        return QRectF(0, 0, *self._pyramid.size)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        if self._pyramid is None:
            return
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        levels = self._pyramid.levels
        level = levels[0]
        for candidate in levels:  # coarsest level that still has >= 1 pixel per screen pixel
            if candidate.scale >= lod:
                level = candidate
        exposed = option.exposedRect
        smooth = not self._pyramid.indexed and lod < 1.0
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        inv = 1.0 / level.scale
        drawn = 0
        for x, y, image in level.tiles:
            target = QRectF(x * inv, y * inv, image.width() * inv, image.height() * inv)
            if target.intersects(exposed):
                painter.drawImage(target, image, QRectF(0, 0, image.width(), image.height()))
                drawn += 1
        self.painted = (level.scale, drawn)

    def level_count(self) -> int:
        """Pyramid levels (1 for an image no larger than one tile)."""
        return 0 if self._pyramid is None else len(self._pyramid.levels)


def transparent() -> QColor:
    return QColor(Qt.GlobalColor.transparent)
