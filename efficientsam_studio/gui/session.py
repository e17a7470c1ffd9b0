"""The open project as the widgets see it: document, undo stack, current image, category and selection.

Panels and tools read this object and change the document only through :meth:`Session.push`, so
every edit lands on the one ``QUndoStack``. Document changes are re-emitted as a Qt signal.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from efficientsam_studio.annotations.commands import Command
from efficientsam_studio.annotations.document import Category, Change, Document, ImageRecord, Instance
from efficientsam_studio.errors import StudioError
from efficientsam_studio.gui.undo import CoreCommand

NONE = -1  # "no image / category / instance" in signals


class Session(QObject):
    """Shared state of the main window; ``root`` is the folder image paths are relative to."""

    image_changed = Signal(int)  # image id or NONE
    category_changed = Signal(int)  # category id or NONE
    selection_changed = Signal(int)  # instance id or NONE
    visibility_changed = Signal()
    document_changed = Signal(object)  # annotations.document.Change
    error = Signal(str)  # a refused edit, for the status bar / a dialog

    def __init__(self, document: Document, root: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.root = Path(root)
        self.undo_stack = QUndoStack(self)
        self.current_image_id: int | None = None
        self.current_category_id: int | None = document.categories[0].id if document.categories else None
        self.selected_instance_id: int | None = None
        self.hidden: set[int] = set()
        self._unsubscribe = document.subscribe(self._on_change)

    def close(self) -> None:
        self._unsubscribe()

    # ----- edits -----
    def push(self, command: Command | QUndoCommand) -> bool:
        """Apply an edit through the undo stack; a refused edit is reported by :attr:`error`."""
        try:
            self.undo_stack.push(command if isinstance(command, QUndoCommand) else CoreCommand(command))
        except StudioError as exc:
            self.error.emit(str(exc))
            return False
        return True

    def _on_change(self, change: Change) -> None:
        if change.kind == "instance_removed" and self.selected_instance_id in change.ids:
            self.select_instance(None)
        if change.kind == "category_removed" and self.current_category_id in change.ids:
            categories = self.document.categories
            self.set_category(categories[0].id if categories else None)
        if change.kind == "category_added" and self.current_category_id is None:
            self.set_category(change.ids[0])
        self.document_changed.emit(change)

    # ----- images -----
    @property
    def current_image(self) -> ImageRecord | None:
        if self.current_image_id is None:
            return None
        return self.document.image(self.current_image_id)

    def image_path(self, image_id: int) -> Path:
        """Absolute path of an image of the document."""
        return self.root / self.document.image(image_id).path

    def image_key(self, image_id: int) -> str:
        """The engine's name for an image (its absolute path)."""
        return str(self.image_path(image_id))

    def set_current_image(self, image_id: int | None) -> None:
        if image_id == self.current_image_id:
            return
        self.current_image_id = image_id
        self.selected_instance_id = None
        self.image_changed.emit(NONE if image_id is None else image_id)
        self.selection_changed.emit(NONE)

    def step_image(self, delta: int) -> None:
        """Go to the next (``delta`` = 1) or previous (-1) image of the document."""
        ids = [image.id for image in self.document.images]
        if not ids:
            return
        index = ids.index(self.current_image_id) if self.current_image_id in ids else -delta
        self.set_current_image(ids[min(max(index + delta, 0), len(ids) - 1)])

    def current_instances(self) -> list[Instance]:
        """Instances of the current image in z-order (bottom first)."""
        if self.current_image_id is None:
            return []
        return self.document.instances_of(self.current_image_id)

    # ----- categories -----
    @property
    def current_category(self) -> Category | None:
        if self.current_category_id is None:
            return None
        return self.document.category(self.current_category_id)

    def set_category(self, category_id: int | None) -> None:
        if category_id == self.current_category_id:
            return
        self.current_category_id = category_id
        self.category_changed.emit(NONE if category_id is None else category_id)

    def set_category_by_number(self, number: int) -> None:
        """Make the ``number``-th category (1-based, as on the keyboard) current, if it exists."""
        categories = self.document.categories
        if 1 <= number <= len(categories):
            self.set_category(categories[number - 1].id)

    # ----- selection and visibility -----
    @property
    def selected_instance(self) -> Instance | None:
        sid = self.selected_instance_id
        if sid is None or not self.document.has_instance(sid):
            return None
        return self.document.instance(sid)

    def select_instance(self, instance_id: int | None) -> None:
        if instance_id == self.selected_instance_id:
            return
        self.selected_instance_id = instance_id
        self.selection_changed.emit(NONE if instance_id is None else instance_id)

    def set_hidden(self, instance_id: int, hidden: bool) -> None:
        """Hide or show an instance on the canvas (view state; not saved, not undoable)."""
        if hidden:
            self.hidden.add(instance_id)
        else:
            self.hidden.discard(instance_id)
        self.visibility_changed.emit()
