"""The open project as the widgets see it: document, undo stack, current image, category and selection.

Panels and tools read this object and change the document only through :meth:`Session.push`, so
every edit lands on the one ``QUndoStack``. Document changes are re-emitted as a Qt signal.
:meth:`Session.undo` and :meth:`Session.redo` show the image a step belongs to before undoing or
redoing it, so an edit never changes out of sight, and select the instance a step brings back (redo
of an add, undo of a delete), as the original edit left it selected. A read-only session refuses every
edit with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from efficientsam_studio.annotations.commands import AddInstance, Command, CompoundCommand, SetImageStatus
from efficientsam_studio.annotations.document import (
    Category,
    Change,
    Document,
    ImageRecord,
    ImageStatus,
    Instance,
)
from efficientsam_studio.errors import StudioError
from efficientsam_studio.gui.undo import CoreCommand, StudioCommand

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
        self.read_only = False  # the project cannot be saved: edits are refused
        self._touched: set[int] | None = None  # images changed by the step being pushed
        self._added: list[int] | None = None  # instances added by the step being replayed
        self._unsubscribe = document.subscribe(self._on_change)

    def close(self) -> None:
        self._unsubscribe()

    # ----- edits -----
    def push(self, command: Command | StudioCommand) -> bool:
        """Apply an edit and put it on the undo stack; False, with the reason sent by :attr:`error`,
        when the document refuses it (the refused edit does not enter the history).

        The images the edit changed are recorded in the step (:attr:`StudioCommand.image_ids`)."""
        if self.read_only:
            self.error.emit("The project is open read-only: edits cannot be saved. Export still works.")
            return False
        step = command if isinstance(command, StudioCommand) else CoreCommand(command)
        touched: set[int] = set()
        self._touched = touched
        try:
            step.apply_now()
        except StudioError as exc:
            self.error.emit(str(exc))
            return False
        finally:
            self._touched = None
        step.image_ids = step.image_ids | touched
        self.undo_stack.push(step)
        return True

    def undo(self) -> bool:
        """Undo the last step. A step that belongs to one image other than the current one makes that
        image current first; a failure is reported by :attr:`error`."""
        stack = self.undo_stack
        if not stack.canUndo():
            return False
        return self._replay(stack.command(stack.index() - 1), stack.undo)

    def redo(self) -> bool:
        """Redo the last undone step, showing its image first as :meth:`undo` does."""
        stack = self.undo_stack
        if not stack.canRedo():
            return False
        return self._replay(stack.command(stack.index()), stack.redo)

    def _replay(self, step: QUndoCommand, action: Callable[[], None]) -> bool:
        image_ids = getattr(step, "image_ids", frozenset())
        if len(image_ids) == 1 and self.current_image_id not in image_ids:
            self.set_current_image(next(iter(image_ids)))
        added: list[int] = []
        self._added = added
        try:
            action()
        except StudioError as exc:
            self.error.emit(str(getattr(step, "failure", None) or exc))
            return False
        finally:
            self._added = None
        shown = [i for i in added if self.document.has_instance(i)]
        if shown and self.document.instance(shown[-1]).image_id == self.current_image_id:
            self.select_instance(shown[-1])
        return True

    def labelling_step(self, add: AddInstance) -> Command:
        """``add`` as the user's own labelling: on an unlabelled image the same undo step also marks
        the image in progress."""
        image = self.document.image(add.instance.image_id)
        if image.status != ImageStatus.UNLABELLED:
            return add
        status = SetImageStatus(self.document, image.id, ImageStatus.IN_PROGRESS)
        return CompoundCommand(add.text, [add, status])

    def _on_change(self, change: Change) -> None:
        if self._touched is not None:
            if change.image_id is not None:
                self._touched.add(change.image_id)
            elif change.kind == "image_changed":
                self._touched.update(change.ids)
        if self._added is not None and change.kind == "instance_added":
            self._added.extend(change.ids)
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

    def step_image(self, delta: int, shown: Callable[[int], bool] | None = None) -> bool:
        """Go to the next (``delta`` = 1) or previous (-1) image of the document; with ``shown``, to the
        next or previous image for which ``shown(image_id)`` is true (the file list's filters). Stays
        put at either end; True when the current image changed."""
        ids = [image.id for image in self.document.images]
        if not ids:
            return False
        if self.current_image_id in ids:
            index = ids.index(self.current_image_id) + delta
        else:
            index = 0 if delta > 0 else len(ids) - 1
        while 0 <= index < len(ids):
            if shown is None or shown(ids[index]):
                self.set_current_image(ids[index])
                return True
            index += delta
        return False

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
