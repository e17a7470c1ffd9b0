"""Keeps the canvas's instance overlay in step with the document.

The label map is rebuilt (RLE decode + one pass per instance) only when the instances of the current
image change; selection, visibility and category colours only change the colour table.
"""

from __future__ import annotations

from PySide6.QtCore import QObject

from efficientsam_studio.annotations.document import Change
from efficientsam_studio.gui.canvas.overlays import build_label_map, label_colors
from efficientsam_studio.gui.canvas.view import CanvasView
from efficientsam_studio.gui.session import Session


class InstanceLayer(QObject):
    """Connects a :class:`Session` to a :class:`CanvasView`'s instance overlay."""

    def __init__(self, canvas: CanvasView, session: Session) -> None:
        super().__init__(canvas)
        self.canvas = canvas
        self.session = session
        self._ids: list[int] = []
        self._labels = None  # the label map (H, W) uint8 of the shown image, or None
        self.rebuilds = 0  # how often the label map was rebuilt (for tests and diagnostics)
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
            self.rebuild()

    def rebuild(self) -> None:
        """Decode the current image's masks into the label map (call after the image is shown)."""
        image = self.session.current_image
        if image is None or self.canvas.image_size == (0, 0):  # no pixels shown yet
            self._ids = []
            self._labels = None
            self.canvas.set_instance_labels(None, [])
            return
        instances = self.session.current_instances()
        self._ids = [inst.id for inst in instances]
        labels = build_label_map([inst.mask() for inst in instances], image.height, image.width)
        self.rebuilds += 1
        self._labels = labels
        self.canvas.set_instance_labels(labels if instances else None, self._colours())

    def instance_at(self, x: float, y: float) -> int | None:
        """Id of the visible instance on top at image pixel (x, y), or None."""
        if self._labels is None:
            return None
        row, col = int(y), int(x)
        if not (0 <= row < self._labels.shape[0] and 0 <= col < self._labels.shape[1]):
            return None
        label = int(self._labels[row, col])
        if label == 0 or label > len(self._ids):
            return None
        instance_id = self._ids[label - 1]
        return None if instance_id in self.session.hidden else instance_id

    def select_at(self, x: float, y: float) -> None:
        """Select the instance under image pixel (x, y); clicking empty space clears the selection."""
        self.session.select_instance(self.instance_at(x, y))

    def recolour(self) -> None:
        self.canvas.set_instance_colors(self._colours())

    def _colours(self):
        document = self.session.document
        instances = [document.instance(i) for i in self._ids if document.has_instance(i)]
        selected = self.session.selected_instance_id
        colours = [document.category(inst.category_id).colour for inst in instances]
        visible = [inst.id not in self.session.hidden for inst in instances]
        index = next((i for i, inst in enumerate(instances) if inst.id == selected), None)
        return label_colors(colours, visible, index)
