"""Keeps the canvas's instance overlay in step with the document.

The overlay is one label map of the shown image. Each instance has a label of its own (a slot kept while
it exists), so the colour table maps labels to colours and selection, visibility and category colours
only change the table. The map is ``uint8`` (an indexed image) while the image has fewer than 255
instances and ``uint16`` (or wider) past that, drawn through a numpy colour lookup, so every instance is
drawn and can be picked whatever their number.

An added, changed or removed instance redraws only the rectangle of its old and new bbox: the instances
that cover it are drawn there again in z-order (from their crops), and only the tiles of that rectangle
are made again, so an edit costs time in proportion to the object, not to the image. A change that keeps
the mask (a relabel) only changes the instance's colour. Opening an image, a reset, a new z-order or a
label map that runs out of labels rebuild the whole map.
"""

from __future__ import annotations

import heapq

import numpy as np
from PySide6.QtCore import QObject

from efficientsam_studio.annotations.document import Change
from efficientsam_studio.annotations.records import Instance
from efficientsam_studio.gui.canvas.overlays import fill_argb, label_dtype
from efficientsam_studio.gui.canvas.view import CanvasView
from efficientsam_studio.gui.session import Session

INSTANCE_KINDS = ("instance_added", "instance_changed", "instance_removed")
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) in image pixels
FEW_REGIONS = 16  # a recolour of more labels than this draws a wide map's tiles again everywhere


def _box(instance: Instance) -> Box:
    x, y, w, h = (int(v) for v in instance.bbox)
    return x, y, x + w, y + h


def _union(boxes: list[Box]) -> Box | None:
    boxes = [b for b in boxes if b[0] < b[2] and b[1] < b[3]]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))  # fmt: skip


class InstanceLayer(QObject):
    """Connects a :class:`Session` to a :class:`CanvasView`'s instance overlay."""

    def __init__(self, canvas: CanvasView, session: Session) -> None:
        super().__init__(canvas)
        self.canvas = canvas
        self.session = session
        self._ids: list[int] = []  # the shown instances in z-order
        self._slots: dict[int, int] = {}  # instance id -> its label
        self._owners: dict[int, int] = {}  # label -> instance id
        self._boxes: dict[int, Box] = {}  # instance id -> its bbox when it was drawn
        self._masks: dict[int, object] = {}  # instance id -> the RLE it was drawn from
        self._free: list[int] = []  # labels given back, a heap
        self._next = 1  # the lowest label never given out
        self._lut = np.zeros(1, np.uint32)  # label -> ARGB
        self._image_id: int | None = None
        self._labels: np.ndarray | None = None  # the label map (H, W) of the shown image, or None
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
            self._ids, self._slots, self._owners, self._boxes, self._masks = [], {}, {}, {}, {}
            self._free, self._next = [], 1
            self._image_id, self._labels = None, None
            self.canvas.set_instance_labels(None, [])
            return
        instances = self.session.current_instances()
        self._ids = [inst.id for inst in instances]
        self._slots = {inst.id: i + 1 for i, inst in enumerate(instances)}
        self._owners = {label: instance_id for instance_id, label in self._slots.items()}
        self._boxes = {inst.id: _box(inst) for inst in instances}
        self._masks = {inst.id: inst.rle for inst in instances}
        self._free, self._next = [], len(instances) + 1
        self._image_id = image.id
        self._labels = np.zeros((image.height, image.width), dtype=label_dtype(len(instances)))
        self._draw(instances, (0, 0, image.width, image.height))
        self.rebuilds += 1
        self._lut = self._full_lut()
        self.canvas.set_instance_labels(self._labels if instances else None, self._lut)

    @property
    def _capacity(self) -> int:
        """The highest label the label map can hold."""
        return int(np.iinfo(self._labels.dtype).max) - (1 if self._labels.dtype == np.uint8 else 0)

    def _take_label(self) -> int | None:
        if self._free:
            return heapq.heappop(self._free)
        if self._next > self._capacity:
            return None
        self._next += 1
        return self._next - 1

    def _update(self, changed: tuple[int, ...]) -> bool:
        """Redraw the rectangle of the ``changed`` instances' old and new bboxes; False when the whole
        map must be rebuilt instead."""
        if self._labels is None or self._image_id != self.session.current_image_id:
            return False
        instances = self.session.current_instances()
        changed_set = set(changed)
        if len(changed_set) == 1 and len(instances) == len(self._ids):
            same_order = self._ids[: len(instances)] == [inst.id for inst in instances]
        else:
            ids = [inst.id for inst in instances]
            same_order = [i for i in ids if i not in changed_set] == [
                i for i in self._ids if i not in changed_set
            ]
        if not same_order:
            return False  # another z-order
        by_id = {inst.id: inst for inst in instances if inst.id in changed_set}
        added = [i for i in changed if i in by_id and i not in self._slots]
        if len(added) > len(self._free) + self._capacity - self._next + 1:
            return False  # out of labels: a wider map
        boxes: list[Box] = []
        redraw = False
        for instance_id in changed:
            instance = by_id.get(instance_id)
            old_box, old_mask = self._boxes.get(instance_id), self._masks.get(instance_id)
            if instance is None:  # removed
                if instance_id in self._slots:
                    label = self._slots.pop(instance_id)
                    self._owners.pop(label, None)
                    heapq.heappush(self._free, label)
                    self._lut_set(label, 0)
                    self._boxes.pop(instance_id, None)
                    self._masks.pop(instance_id, None)
                    boxes.append(old_box)
                    redraw = True
                continue
            if instance_id not in self._slots:
                label = self._take_label()
                self._slots[instance_id], self._owners[label] = label, instance_id
            new_box = _box(instance)
            self._boxes[instance_id], self._masks[instance_id] = new_box, instance.rle
            self._lut_set(self._slots[instance_id], self._entry(instance))
            if (
                old_box is not None
                and old_box == new_box
                and (old_mask is instance.rle or old_mask == instance.rle)
            ):
                boxes.append(new_box)  # the same pixels: only its colour may differ
                continue
            redraw = True
            boxes += [new_box] if old_box is None else [old_box, new_box]
        self._ids = [inst.id for inst in instances]
        region = _union(boxes)
        if redraw and region is not None:
            self._draw(instances, region)
            self.canvas.set_instance_colors(self._lut, [])
            if self.canvas.instances_item.level_count() == 0:  # nothing shown yet: show the map
                self.canvas.set_instance_labels(self._labels, self._lut)
            else:
                self.canvas.update_instance_labels(*region)
        elif region is not None:
            self.canvas.set_instance_colors(self._lut, [region])
        self.updates += 1
        return True

    def _draw(self, instances: list[Instance], region: Box) -> None:
        """Clear ``region`` of the label map and draw there, in z-order, the instances that cover it."""
        rx0, ry0, rx1, ry1 = region
        self._labels[ry0:ry1, rx0:rx1] = 0
        boxes = np.array([self._boxes[inst.id] for inst in instances], dtype=np.int64).reshape(-1, 4)
        x0, y0 = np.maximum(boxes[:, 0], rx0), np.maximum(boxes[:, 1], ry0)
        x1, y1 = np.minimum(boxes[:, 2], rx1), np.minimum(boxes[:, 3], ry1)
        for index in np.flatnonzero((x0 < x1) & (y0 < y1)):
            instance = instances[index]
            a, b, c, d = int(x0[index]), int(y0[index]), int(x1[index]), int(y1[index])
            window = instance.window(a, b, c - a, d - b)
            self._labels[b:d, a:c][window] = self._slots[instance.id]

    def instance_at(self, x: float, y: float) -> int | None:
        """Id of the visible instance on top at image pixel (x, y), or None."""
        if self._labels is None:
            return None
        row, col = int(y), int(x)
        if not (0 <= row < self._labels.shape[0] and 0 <= col < self._labels.shape[1]):
            return None
        instance_id = self._owners.get(int(self._labels[row, col]))
        if instance_id is None:
            return None
        return None if instance_id in self.session.hidden else instance_id

    def select_at(self, x: float, y: float) -> None:
        """Select the instance under image pixel (x, y); clicking empty space clears the selection."""
        self.session.select_instance(self.instance_at(x, y))

    def recolour(self) -> None:
        """Give every label its colour again; a wide map is drawn again only where colours changed."""
        if self._labels is None:
            return
        old, self._lut = self._lut, self._full_lut()
        size = max(len(old), len(self._lut))
        before = np.zeros(size, np.uint32)
        before[: len(old)] = old
        after = np.zeros(size, np.uint32)
        after[: len(self._lut)] = self._lut
        changed = np.flatnonzero(before != after)
        if len(changed) == 0:
            return
        boxes = [self._boxes[self._owners[int(lab)]] for lab in changed if int(lab) in self._owners]
        regions = None if len(boxes) > FEW_REGIONS or len(boxes) < len(changed) else boxes
        self.canvas.set_instance_colors(self._lut, regions)

    def _entry(self, instance: Instance) -> int:
        document = self.session.document
        return fill_argb(
            document.category(instance.category_id).colour,
            instance.id not in self.session.hidden,
            instance.id == self.session.selected_instance_id,
        )

    def _lut_set(self, label: int, value: int) -> None:
        if label >= len(self._lut):
            grown = np.zeros(max(label + 1, 2 * len(self._lut)), np.uint32)
            grown[: len(self._lut)] = self._lut
            self._lut = grown
        self._lut[label] = value

    def _full_lut(self) -> np.ndarray:
        """The colour table, label by label (a free label is transparent)."""
        document = self.session.document
        lut = np.zeros(max(self._next, len(self._slots) + 1), np.uint32)
        for instance_id, label in self._slots.items():
            if document.has_instance(instance_id):
                lut[label] = self._entry(document.instance(instance_id))
        return lut

    def _colours(self) -> np.ndarray:
        """The colour table as ARGB values, label by label."""
        return self._lut
