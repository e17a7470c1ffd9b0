"""The polygon tool: draw a new polygon, or edit the vertices of the selected instance.

Drawing: each left click adds a vertex; a double click on the last vertex or Enter closes the polygon
and adds it as a manual instance of the current category (an unlabelled image becomes in progress, in
the same undo step); Backspace removes the last vertex; Esc drops the drawing.
Editing: with an instance selected and no drawing under way, its outline is shown as rings of
vertex handles (traced by the annotation core with the polygon mode and the simplification tolerance
of the settings, as exports trace it); drag a handle to move a vertex or Shift+click it to delete it,
as one undo step. Only the pixels between the ring's traced and edited outline change: the rest of the
mask, other parts and holes included, keeps its pixels. A mask of many parts and holes (a noisy model
answer) gets handles on its largest rings only, at most ``MAX_HANDLES`` in all, so the canvas stays
fast and the handles usable. Coordinates are image pixels in COCO's convention (pixel centres at +0.5).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QMouseEvent, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsItem, QGraphicsPathItem

from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.commands import AddInstance, UpdateInstance
from efficientsam_studio.gui.canvas.view import CanvasView
from efficientsam_studio.gui.session import Session
from efficientsam_studio.gui.tools.base import Tool

HANDLE_RADIUS = 4.0  # screen pixels
GRAB_DISTANCE = 8.0  # screen pixels
MAX_HANDLES = 2000  # vertex handles shown at once


def ring_area(points: np.ndarray) -> float:
    """Area enclosed by a ring of ``(N, 2)`` points (shoelace formula), in square pixels."""
    x, y = points[:, 0], points[:, 1]
    return abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))) / 2


def rings_with_handles(rings: list[masks.Ring], budget: int = MAX_HANDLES) -> list[int]:
    """Indices (ascending) of the rings that get vertex handles: the largest rings by area first, each
    whole or not at all, while their vertices fit in ``budget``. When no ring fits, the largest one gets
    handles if it has at most four times ``budget`` vertices (a fine outline traced with tolerance 0)."""
    chosen, used = [], 0
    order = sorted(range(len(rings)), key=lambda i: -ring_area(rings[i].points))
    for index in order:
        count = len(rings[index].points)
        if used + count <= budget:
            chosen.append(index)
            used += count
    if not chosen and order and len(rings[order[0]].points) <= 4 * budget:
        chosen.append(order[0])
    return sorted(chosen)


def ring_family(rings: list[masks.Ring], index: int) -> list[masks.Ring]:
    """The outer ring that ring ``index`` is or belongs to, then that ring's holes (parent renumbered 0)."""
    ring = rings[index]
    outer = ring.parent if ring.hole and ring.parent is not None else index
    holes = [r for r in rings if r.hole and r.parent == outer]
    return [masks.Ring(rings[outer].points), *(masks.Ring(h.points, True, 0) for h in holes)]


class PolygonTool(Tool):
    """Polygon drawing and vertex editing; see the module docstring."""

    name = "polygon"

    def __init__(self, canvas: CanvasView, session: Session) -> None:
        super().__init__(canvas, session)
        self.vertices: list[QPointF] = []
        self.polygon_mode = "all_with_holes"
        self.tolerance = 1.0
        self._path_item = QGraphicsPathItem()
        self._path_item.setZValue(15)
        canvas.scene().addItem(self._path_item)
        self._traced: list[masks.Ring] = []  # the selected instance's outline as traced
        self._rings: list[masks.Ring] = []  # the same, with the user's edits
        self._handles: dict[tuple[int, int], QGraphicsEllipseItem] = {}  # (ring, vertex) -> handle
        self._drag: tuple[int, int] | None = None  # ring index, vertex index
        self._hover: QPointF | None = None
        session.selection_changed.connect(lambda _: self._refresh_handles())
        session.document_changed.connect(self._on_document_changed)
        session.image_changed.connect(lambda _: self._reset())

    def activate(self) -> None:
        super().activate()
        self.status.emit(
            "Click to add vertices, double-click the last one or press Enter to close; drag a vertex of the "
            "selected instance to move it, Shift+click to delete it."
        )
        self._refresh_handles()  # after the help text: a capped outline says so

    def deactivate(self) -> None:
        super().deactivate()
        self._reset()
        self._clear_handles()

    # ----- drawing -----
    def press(self, pos: QPointF, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        if not self.vertices:
            grabbed = self._handle_at(pos)
            if grabbed is not None and event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                self.remove_vertex(*grabbed)
                return
            if grabbed is not None:
                self._drag = grabbed
                return
        self.vertices.append(pos)
        self._draw_path()

    def move(self, pos: QPointF, event: QMouseEvent) -> None:
        if self._drag is not None:
            ring, vertex = self._drag
            self._rings[ring].points[vertex] = (pos.x(), pos.y())
            self._handles[ring, vertex].setPos(pos)
            return
        self._hover = pos
        if self.vertices:
            self._draw_path()

    def release(self, pos: QPointF, event: QMouseEvent) -> None:
        if self._drag is None:
            return
        ring, _ = self._drag
        self._drag = None
        self._apply_edit(ring)

    def double_click(self, pos: QPointF, event: QMouseEvent) -> None:
        """A double click on the last vertex closes the polygon; elsewhere it is a quick second click."""
        if self.vertices and self.screen_distance(pos, self.vertices[-1]) <= GRAB_DISTANCE:
            self.accept()
        else:
            self.press(pos, event)

    def has_pending(self) -> bool:
        return len(self.vertices) >= 3

    def accept(self) -> bool:
        """Close the drawn polygon and add it as an instance of the current category."""
        image = self.session.current_image
        category = self.session.current_category
        if len(self.vertices) < 3 or image is None:
            return False
        if category is None:
            self.status.emit("Add a category first (Categories panel) to keep a polygon.")
            return False
        ring = np.array([[p.x(), p.y()] for p in self.vertices], dtype=np.float64)
        rle = masks.polygons_to_rle([ring], image.height, image.width)
        self._reset()
        if masks.area(rle) == 0:
            self.status.emit("The polygon covers no pixel; draw a larger one.")
            return False
        add = AddInstance.from_rle(self.session.document, image.id, category.id, rle, source="manual")
        if self.session.push(self.session.labelling_step(add)):
            self.session.select_instance(add.instance.id)
            return True
        return False

    def cancel(self) -> bool:
        if not self.vertices:
            return False
        self._reset()
        return True

    def remove_last(self) -> bool:
        if not self.vertices:
            return False
        self.vertices.pop()
        self._draw_path()
        return True

    def _reset(self) -> None:
        self.vertices = []
        self._hover = None
        self._path_item.setPath(QPainterPath())

    def _draw_path(self) -> None:
        path = QPainterPath()
        points = [*self.vertices, *([self._hover] if self._hover is not None else [])]
        if points:
            path.addPolygon(QPolygonF(points))
        pen = QPen(self.category_colour(255), 2)
        pen.setCosmetic(True)
        self._path_item.setPen(pen)
        self._path_item.setBrush(QBrush(self.category_colour(60)))
        self._path_item.setPath(path)

    # ----- vertex editing -----
    def _on_document_changed(self, change: object) -> None:
        if self._drag is None:
            self._refresh_handles()

    def _refresh_handles(self) -> None:
        self._clear_handles()
        instance = self.session.selected_instance
        if not self.active or instance is None:
            return
        crop, x, y = instance.crop()
        self._traced = masks.mask_to_polygons(crop, self.polygon_mode, self.tolerance, origin=(x, y))
        self._rings = [masks.Ring(r.points.copy(), r.hole, r.parent) for r in self._traced]
        editable = rings_with_handles(self._rings, MAX_HANDLES)
        for ring_index in editable:
            for vertex_index, (x, y) in enumerate(self._rings[ring_index].points):
                self._handles[ring_index, vertex_index] = self._make_handle(QPointF(x, y))
        if len(editable) < len(self._rings):
            self.status.emit(
                f"Vertices are shown on the {len(editable)} largest of the {len(self._rings)} outlines of "
                f"this mask (at most {MAX_HANDLES}); the others keep their pixels. A larger simplification "
                "(Settings) gives fewer vertices."
            )

    def _make_handle(self, pos: QPointF) -> QGraphicsEllipseItem:
        r = HANDLE_RADIUS
        item = QGraphicsEllipseItem(QRectF(-r, -r, 2 * r, 2 * r))
        item.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
        item.setPos(pos)
        item.setBrush(QBrush(QColor("white")))
        item.setPen(QPen(QColor(20, 20, 20), 1))
        item.setZValue(16)
        self.canvas.scene().addItem(item)
        return item

    def _clear_handles(self) -> None:
        for item in self._handles.values():
            self.canvas.scene().removeItem(item)
        self._handles = {}

    def _handle_at(self, pos: QPointF) -> tuple[int, int] | None:
        best, best_distance = None, GRAB_DISTANCE
        for key, item in self._handles.items():
            distance = self.screen_distance(item.pos(), pos)
            if distance <= best_distance:
                best, best_distance = key, distance
        return best

    def remove_vertex(self, ring: int, vertex: int) -> bool:
        """Delete one vertex of the selected instance's outline (a ring keeps at least 3)."""
        points = self._rings[ring].points
        if len(points) <= 3:
            self.status.emit("A ring needs at least 3 vertices; delete the instance instead (Del).")
            return False
        self._rings[ring] = masks.Ring(
            np.delete(points, vertex, axis=0), self._rings[ring].hole, self._rings[ring].parent
        )
        self._apply_edit(ring)
        return True

    def _apply_edit(self, ring: int) -> None:
        """Change the pixels between ring ``ring``'s traced and edited outline (its outer ring with its
        holes rasterised before and after), as one undo step."""
        instance = self.session.selected_instance
        image = self.session.current_image
        if instance is None or image is None:
            return
        before = masks.polygons_to_rle(ring_family(self._traced, ring), image.height, image.width)
        after = masks.polygons_to_rle(ring_family(self._rings, ring), image.height, image.width)
        # every pixel that is or becomes foreground lies in the union of the three bboxes
        boxes = [b for b in (masks.bbox(before), masks.bbox(after), list(instance.bbox)) if b[2] and b[3]]
        x0, y0 = int(min(b[0] for b in boxes)), int(min(b[1] for b in boxes))
        x1, y1 = int(max(b[0] + b[2] for b in boxes)), int(max(b[1] + b[3] for b in boxes))
        window = (x0, y0, x1 - x0, y1 - y0)
        old = instance.window(*window)
        before_mask, after_mask = masks.decode_window(before, *window), masks.decode_window(after, *window)
        mask = (old & ~(before_mask & ~after_mask)) | (after_mask & ~before_mask)
        if not mask.any():
            self.status.emit("That edit would leave the instance empty; delete it instead (Del).")
            self._refresh_handles()
            return
        if np.array_equal(mask, old):
            self._refresh_handles()
            return
        rle = masks.encode_window(mask, x0, y0, image.height, image.width)
        # an outline corrected by hand is hand-made from now on (batch labelling keeps it)
        document = self.session.document
        update = UpdateInstance(document, instance.id, rle=rle, source="manual", text="Move vertex")
        if not self.session.push(update):  # a pushed edit refreshes the handles through document_changed
            self._refresh_handles()

    @property
    def handle_count(self) -> int:
        return len(self._handles)
