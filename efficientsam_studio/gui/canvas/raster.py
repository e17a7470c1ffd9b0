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


def label_tile(labels: np.ndarray, table) -> QImage:
    """A tile of a label map: indexed (``uint8`` labels, ``table`` a list of 256 ARGB ints) or, for wider
    labels, ARGB32 pixels looked up in ``table`` (a ``uint32`` array; labels past its end are clear)."""
    if labels.dtype == np.uint8:
        return indexed_image(labels, table)
    lut = np.asarray(table, dtype=np.uint32)
    top = int(labels.max()) if labels.size else 0
    if top >= len(lut):
        lut = np.concatenate([lut, np.zeros(top + 1 - len(lut), np.uint32)])
    argb = np.ascontiguousarray(lut[labels])
    h, w = labels.shape
    return QImage(argb.data, w, h, 4 * w, QImage.Format.Format_ARGB32).copy()


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
    def of_labels(cls, labels: np.ndarray, colors) -> Pyramid:
        """Pyramid of a label map (H, W) drawn with the colour table ``colors`` (QColors or a ``uint32``
        ARGB array, label by label; levels sampled with :func:`nearest_sources`). A ``uint8`` map gives
        indexed tiles; a wider one (more than 255 labels) ARGB32 tiles from a numpy lookup."""
        if labels.dtype not in (np.uint16, np.uint32):
            labels = labels.astype(np.uint8, copy=False)
        labels = np.ascontiguousarray(labels)
        table = color_table(colors, wide=labels.dtype != np.uint8)
        h, w = labels.shape
        levels = []
        current, sources, scale = labels, None, 1.0
        while True:
            ch, cw = current.shape
            tiles = [
                (x, y, label_tile(current[y : y + TILE, x : x + TILE], table))
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
        pyramid.table = table
        return pyramid

    @property
    def wide(self) -> bool:
        """A label map with more than ``uint8`` labels: its tiles hold colours, not indices."""
        return self.indexed and self.levels[0].array is not None and self.levels[0].array.dtype != np.uint8

    def set_table(self, colors, regions=None) -> None:
        """Give a label map a new colour table. Indexed tiles take it at once; ARGB tiles are drawn again
        in ``regions`` (boxes x0, y0, x1, y1 in image pixels; None: everywhere)."""
        self.table = color_table(colors, wide=self.wide)
        if not self.wide:
            for level in self.levels:
                for _, _, image in level.tiles:
                    image.setColorTable(self.table)
            return
        if regions is None:
            regions = [(0, 0, *self.size)]
        for box in regions:
            self.update_region(*box)

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
                    image = label_tile(level.array[ty : ty + TILE, tx : tx + TILE], self.table)
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


def color_table(colors, wide: bool = False):
    """The colour table for ``colors`` (QColors or a ``uint32`` ARGB array): for an indexed QImage its
    256 entries (the rest transparent); with ``wide``, a ``uint32`` array for any number of labels."""
    if isinstance(colors, np.ndarray):
        values = colors.astype(np.uint32, copy=False)
    else:
        values = np.array([c.rgba() for c in colors], dtype=np.uint32)
    if wide:
        return values
    values = values[:256].tolist()
    return values + [0] * (256 - len(values))


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
        """Show a label map (H, W), ``uint8`` or wider, whose top-left lies at image pixel ``offset``."""
        self.setPos(float(offset[0]), float(offset[1]))
        self.set_pyramid(None if labels is None or labels.size == 0 else Pyramid.of_labels(labels, colors))

    def update_labels(self, x0: int, y0: int, x1: int, y1: int) -> None:
        """Redraw the rectangle ``[x0, x1) x [y0, y1)`` of the label map shown, changed in place."""
        if self._pyramid is None:
            return
        self._pyramid.update_region(x0, y0, x1, y1)
        self.update(QRectF(x0, y0, x1 - x0, y1 - y0))

    def set_colors(self, colors, regions=None) -> None:
        """Change the colour table of a label map without rebuilding it (recolour, hide). A wide map's
        tiles are drawn again only in ``regions`` (see :meth:`Pyramid.set_table`)."""
        if self._pyramid is None:
            return
        self._pyramid.set_table(colors, regions)
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
