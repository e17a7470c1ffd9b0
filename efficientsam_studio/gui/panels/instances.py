"""The instances panel: the masks of the current image, top of the z-order first.

Select a row to select the instance; the check box hides or shows it on the canvas; the buttons
delete it, relabel it with the current category, and move it up or down in the z-order. An added,
changed or removed instance updates only its own row, so a bulk edit of k instances costs k rows.

Ctrl/Shift+click and Ctrl+A select several rows. The current row stays the session's selected
instance (the one the canvas highlights and the tools edit); with two or more rows selected, delete,
relabel and merge act on all of them, each as one undo step. The selection is kept across row updates
and refills of the same image; removed instances leave it.
"""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from efficientsam_studio.annotations.commands import Merge, Relabel, RemoveInstances, Reorder
from efficientsam_studio.annotations.document import Change
from efficientsam_studio.annotations.records import Instance
from efficientsam_studio.gui.panels.categories import swatch, tool_button
from efficientsam_studio.gui.session import Session

INSTANCE_KINDS = ("instance_added", "instance_changed", "instance_removed")


class InstancesPanel(QWidget):
    """List of the current image's instances; see the module docstring."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.list = QListWidget()
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self._rows: dict[int, QListWidgetItem] = {}  # instance id -> its row
        self._shown_image: int | None = None  # the image whose instances the rows show
        self.list.currentItemChanged.connect(self._on_current)
        self.list.itemChanged.connect(self._on_check)
        buttons = QHBoxLayout()
        buttons.addWidget(tool_button("delete", "Delete the selected instances (Del)", self.delete_selected))
        buttons.addWidget(
            tool_button(
                "relabel", "Give the selected instances the current category (L)", self.relabel_selected
            )
        )
        buttons.addWidget(
            tool_button("up", "Bring the selected instance forward", lambda: self.move_selected(1))
        )
        buttons.addWidget(
            tool_button("down", "Send the selected instance backward", lambda: self.move_selected(-1))
        )
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(buttons)
        layout.addWidget(self.list)
        session.image_changed.connect(lambda _: self._refresh())
        session.selection_changed.connect(self._show_selection)
        session.document_changed.connect(self._on_change)

    def _on_change(self, change: Change) -> None:
        if (
            change.kind == "reset"
            or change.kind.startswith("categor")
            or (change.image_id is not None and change.image_id == self.session.current_image_id)
        ):
            if not (change.kind in INSTANCE_KINDS and self._update_rows(change)):
                self._refresh()

    def _refresh(self) -> None:
        image_id = self.session.current_image_id
        kept = set(self.selected_rows()) if image_id == self._shown_image else set()
        self._shown_image = image_id
        self.list.blockSignals(True)
        self.list.clear()
        self._rows = {}
        for instance in reversed(self.session.current_instances()):
            item = QListWidgetItem()
            self._fill(item, instance)
            self._rows[instance.id] = item
            self.list.addItem(item)
            if instance.id == self.session.selected_instance_id:
                self.list.setCurrentItem(item)
        for instance_id in kept:
            if instance_id in self._rows:
                self._rows[instance_id].setSelected(True)
        self.list.blockSignals(False)

    def _fill(self, item: QListWidgetItem, instance: Instance) -> None:
        """Show ``instance`` in the row ``item``."""
        category = self.session.document.category(instance.category_id)
        score = f" {instance.score:.2f}" if instance.score is not None else ""
        item.setIcon(swatch(category.colour))
        item.setText(f"#{instance.id} {category.name} ({instance.source}{score})")
        item.setData(Qt.ItemDataRole.UserRole, instance.id)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        hidden = instance.id in self.session.hidden
        item.setCheckState(Qt.CheckState.Unchecked if hidden else Qt.CheckState.Checked)

    def _update_rows(self, change: Change) -> bool:
        """Update the rows of the instances in ``change`` only; False when the list must be refilled."""
        document = self.session.document
        count = len(self.session.current_instances())
        self.list.blockSignals(True)
        try:
            if change.kind == "instance_removed":
                for instance_id in change.ids:
                    item = self._rows.pop(instance_id, None)
                    if item is not None:
                        self.list.takeItem(self.list.row(item))
            elif change.kind == "instance_changed":
                for instance_id in change.ids:
                    item = self._rows.get(instance_id)
                    if item is None or not document.has_instance(instance_id):
                        return False
                    self._fill(item, document.instance(instance_id))
            else:  # added: insert each at its final row, top row first
                placed = sorted((count - 1 - document.z_index(i), i) for i in change.ids)
                for row, instance_id in placed:
                    item = QListWidgetItem()
                    self._fill(item, document.instance(instance_id))
                    self._rows[instance_id] = item
                    self.list.insertItem(row, item)
                    if instance_id == self.session.selected_instance_id:
                        self.list.setCurrentItem(item, QItemSelectionModel.SelectionFlag.NoUpdate)
                        item.setSelected(True)
        finally:
            self.list.blockSignals(False)
        return self.list.count() == count == len(self._rows)

    def _show_selection(self, instance_id: int) -> None:
        """The session selected ``instance_id`` (canvas, undo, a tool): it becomes the only selected row,
        unless it is the current row already (a click in the list chose it)."""
        item = self._rows.get(instance_id)
        if item is not None and item is self.list.currentItem():
            return
        self.list.blockSignals(True)
        if item is None:
            self.list.setCurrentRow(-1)
            self.list.clearSelection()
        else:
            self.list.setCurrentItem(item, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        self.list.blockSignals(False)

    def _on_current(self, item: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        self.session.select_instance(None if item is None else int(item.data(Qt.ItemDataRole.UserRole)))

    def _on_check(self, item: QListWidgetItem) -> None:
        hidden = item.checkState() != Qt.CheckState.Checked
        self.session.set_hidden(int(item.data(Qt.ItemDataRole.UserRole)), hidden)

    # ----- the multi-selection -----
    def selected_rows(self) -> list[int]:
        """Ids of the selected rows, top row first."""
        rows = sorted(self.list.row(item) for item in self.list.selectedItems())
        return [int(self.list.item(r).data(Qt.ItemDataRole.UserRole)) for r in rows]

    def targets(self) -> list[int]:
        """What delete and relabel act on: the selected rows when there are several, else the
        session's selected instance (none: an empty list)."""
        rows = self.selected_rows()
        if len(rows) > 1:
            return rows
        instance = self.session.selected_instance
        return [] if instance is None else [instance.id]

    # ----- public edits -----
    def act(self, key: str) -> bool:
        """The window's "delete", "relabel" and "merge" actions."""
        return getattr(self, f"{key}_selected")()

    def delete_selected(self) -> bool:
        ids = self.targets()
        return bool(ids) and self.session.push(RemoveInstances(self.session.document, ids))

    def relabel_selected(self) -> bool:
        category = self.session.current_category
        if category is None:
            return False
        document = self.session.document
        ids = [i for i in self.targets() if document.instance(i).category_id != category.id]
        return bool(ids) and self.session.push(Relabel(document, ids, category.id))

    def merge_selected(self) -> bool:
        """Merge the selected rows into the top one (its id, category and z position stay); refused,
        with a message, when fewer than two rows are selected."""
        ids = self.selected_rows()
        if len(ids) < 2:
            self.session.error.emit("Select two or more instances in the Instances panel to merge them.")
            return False
        if not self.session.push(Merge(self.session.document, ids)):
            return False
        self.session.select_instance(ids[0])
        return True

    def move_selected(self, steps: int) -> bool:
        """Move the selected instance ``steps`` places up (positive) or down the z-order."""
        instance = self.session.selected_instance
        if instance is None:
            return False
        document = self.session.document
        count = len(document.instances_of(instance.image_id))
        target = min(max(document.z_index(instance.id) + steps, 0), count - 1)
        if target == document.z_index(instance.id):
            return False
        return self.session.push(Reorder.move(document, instance.id, target))
