"""Keeps the canvas's instance overlay in step with the document.

The overlay is one ``uint8`` label map of the shown image. Each instance has a label of its own (a slot,
1 to 254, kept while it exists), so the colour table maps labels to colours and selection, visibility
and category colours only change the table. An added, changed or removed instance redraws only the
rectangle of its old and new bbox: the instances that cover it are drawn there again in z-order (from
their crops), and only the tiles of that rectangle are made again, so an edit costs time in proportion
to the object, not to the image. Opening an image, a reset or a new z-order rebuild the whole map; so
does every change while the image has more instances than labels (the instances past the 254th then
share label 255, drawn transparent).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject

from efficientsam_studio.annotations.document import Change
from efficientsam_studio.annotations.records import Instance
from efficientsam_studio.gui.canvas.overlays import MAX_LABELS, label_colors
from efficientsam_studio.gui.canvas.view import CanvasView
from efficientsam_studio.gui.session import Session

INSTANCE_KINDS = ("instance_added", "instance_changed", "instance_removed")
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) in image pixels


def _box(instance: Instance) -> Box:
    x, y, w, h = (int(v) for v in instance.bbox)
    return x, y, x + w, y + h


class InstanceLayer(QObject):
    """Connects a :class:`Session` to a :class:`CanvasView`'s instance overlay."""

    def __init__(self, canvas: CanvasView, session: Session) -> None:
        super().__init__(canvas)
        self.canvas = canvas
        self.session = session
        self._ids: list[int] = []  # the shown instances in z-order
        self._slots: dict[int, int] = {}  # instance id -> its label
        self._boxes: dict[int, Box] = {}  # instance id -> its bbox when it was drawn
        self._capped = False  # more instances than labels: labels are z positions, capped at 255
        self._image_id: int | None = None
        self._labels: np.ndarray | None = None  # the label map (H, W) uint8 of the shown image, or None
        self.rebuilds = 0  # how often the whole label map was rebuilt (for tests and diagnostics)
        self.updates = 0  # how often a rectangle of it was redrawn
        session.document_changed.connect(self._on_change)
        session.selection_changed.connect(lambda _: self.recolour())
        session.visibility_changed.connect(self.recolour)
        canvas.select_requested.connect(self.select_at)

    def _on_change(self, change: Change) -> None:
        if change.kind in ("category_changed", "category_removed"):
            self.recolour()
        elif change.kind == "reset" or (
            change.image_id is not None and change.image_id == self.session.current_image_id
        ):
            if not (change.kind in INSTANCE_KINDS and self._update(change.ids)):
                self.rebuild()

    def rebuild(self) -> None:
        """Draw the current image's masks into a new label map (call after the image is shown)."""
        image = self.session.current_image
        if image is None or self.canvas.image_size == (0, 0):  # no pixels shown yet
            self._ids, self._slots, self._boxes = [], {}, {}
            self._image_id, self._labels = None, None
            self.canvas.set_instance_labels(None, [])
            return
        instances = self.session.current_instances()
        self._ids = [inst.id for inst in instances]
        self._capped = len(instances) >= MAX_LABELS
        self._slots = {inst.id: min(i + 1, MAX_LABELS) for i, inst in enumerate(instances)}
        self._boxes = {inst.id: _box(inst) for inst in instances}
        self._image_id = image.id
        self._labels = np.zeros((image.height, image.width), dtype=np.uint8)
        self._draw(instances, (0, 0, image.width, image.height))
        self.rebuilds += 1
        self.canvas.set_instance_labels(self._labels if instances else None, self._colours())

    def _update(self, changed: tuple[int, ...]) -> bool:
        """Redraw the rectangle of the ``changed`` instances' old and new bboxes; False when the whole
        map must be rebuilt instead."""
        if self._labels is None or self._capped or self._image_id != self.session.current_image_id:
            return False
        instances = self.session.current_instances()
        ids = [inst.id for inst in instances]
        changed_set = set(changed)
        if [i for i in ids if i not in changed_set] != [i for i in self._ids if i not in changed_set]:
            return False  # another z-order
        if len(ids) >= MAX_LABELS:
            return False
        by_id = {inst.id: inst for inst in instances}
        boxes = [self._boxes.pop(i) for i in changed if i in self._boxes]
        for instance_id in changed:
            if instance_id not in by_id:
                self._slots.pop(instance_id, None)
        free = iter(sorted(set(range(1, MAX_LABELS)) - set(self._slots.values())))
        for instance_id in changed:
            if instance_id in by_id:
                if instance_id not in self._slots:
                    self._slots[instance_id] = next(free)
                self._boxes[instance_id] = _box(by_id[instance_id])
                boxes.append(self._boxes[instance_id])
        self._ids = ids
        boxes = [b for b in boxes if b[0] < b[2] and b[1] < b[3]]
        if boxes:
            region = (min(b[0] for b in boxes), min(b[1] for b in boxes),
                      max(b[2] for b in boxes), max(b[3] for b in boxes))  # fmt: skip
            self._draw(instances, region)
            if self.canvas.instances_item.level_count() == 0:  # nothing shown yet: show the map
                self.canvas.set_instance_labels(self._labels, self._colours())
            else:
                self.canvas.update_instance_labels(*region)
        self.updates += 1
        self.recolour()
        return True

    def _draw(self, instances: list[Instance], region: Box) -> None:
        """Clear ``region`` of the label map and draw there, in z-order, the instances that cover it."""
        rx0, ry0, rx1, ry1 = region
        self._labels[ry0:ry1, rx0:rx1] = 0
        for instance in instances:
            x0, y0, x1, y1 = self._boxes[instance.id]
            x0, y0, x1, y1 = max(x0, rx0), max(y0, ry0), min(x1, rx1), min(y1, ry1)
            if x0 < x1 and y0 < y1:
                window = instance.window(x0, y0, x1 - x0, y1 - y0)
                self._labels[y0:y1, x0:x1][window] = self._slots[instance.id]

    def instance_at(self, x: float, y: float) -> int | None:
        """Id of the visible instance on top at image pixel (x, y), or None."""
        if self._labels is None:
            return None
        row, col = int(y), int(x)
        if not (0 <= row < self._labels.shape[0] and 0 <= col < self._labels.shape[1]):
            return None
        label = int(self._labels[row, col])
        if label == 0:
            return None
        if self._capped:
            if label > len(self._ids):
                return None
            instance_id = self._ids[label - 1]
        else:
            instance_id = next((i for i, slot in self._slots.items() if slot == label), None)
            if instance_id is None:
                return None
        return None if instance_id in self.session.hidden else instance_id

    def select_at(self, x: float, y: float) -> None:
        """Select the instance under image pixel (x, y); clicking empty space clears the selection."""
        self.session.select_instance(self.instance_at(x, y))

    def recolour(self) -> None:
        self.canvas.set_instance_colors(self._colours())

    def _colours(self):
        """The colour table, label by label (a free label is transparent)."""
        document = self.session.document
        instances = [document.instance(i) for i in self._ids if document.has_instance(i)]
        labels = {inst.id: self._slots.get(inst.id, 0) for inst in instances}
        count = min(max(labels.values(), default=0), MAX_LABELS - 1)
        colours, visible = ["#000000"] * count, [False] * count
        selected = None
        for inst in instances:
            label = labels[inst.id]
            if not 1 <= label <= count or (self._capped and inst.id != self._ids[label - 1]):
                continue
            colours[label - 1] = document.category(inst.category_id).colour
            visible[label - 1] = inst.id not in self.session.hidden
            if inst.id == self.session.selected_instance_id:
                selected = label - 1
        return label_colors(colours, visible, selected)
