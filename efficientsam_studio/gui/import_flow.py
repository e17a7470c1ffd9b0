"""File → Import annotations: COCO or labelme (X-AnyLabeling) files into the open project, as one undo step.

The importers of the annotation core do the work
(:func:`~efficientsam_studio.annotations.formats.coco_import.import_coco`,
:func:`~efficientsam_studio.annotations.formats.labelme.import_labelme`), exactly as
``efsam-studio import`` runs them, but on a copy of the document in a worker thread
(:class:`ImportWorker`): reading, rasterising and checking thousands of polygons takes seconds, and a
malformed file (a :class:`FormatError`) leaves the open document untouched because the copy is simply
dropped.

The result comes back to the GUI thread as two :class:`DocumentState` objects, the records before and
after the import (records are immutable, so a state shares them and copies no mask). :class:`ImportCommand`
puts the "after" records into the open document with one ``load_records`` call (one ``reset`` change:
the file list, the panels and the canvas refresh once), and undo puts the "before" records back the same
way. Both check first that the document holds exactly the records they expect, so neither can drop an
edit made outside the history. Id counters only grow: undo keeps them where the import left them, so an
id is never handed out twice. The document stays dirty after either step and is saved like any edit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QMessageBox

from efficientsam_studio.annotations.document import Category, Document, ImageRecord, Instance
from efficientsam_studio.annotations.errors import DocumentError
from efficientsam_studio.annotations.formats.common import ImportReport, Progress
from efficientsam_studio.errors import StudioError
from efficientsam_studio.gui.undo import StudioCommand

if TYPE_CHECKING:
    from efficientsam_studio.gui.dialogs.import_dialog import ImportDialog
    from efficientsam_studio.gui.main_window import MainWindow
    from efficientsam_studio.gui.session import Session

UNDO_HINT = "Edit → Undo (Ctrl+Z) takes the whole import back."


def _same(records: Iterable[Any], expected: tuple[Any, ...]) -> bool:
    found = tuple(records)
    return len(found) == len(expected) and all(a is b for a, b in zip(found, expected, strict=True))


@dataclass(frozen=True)
class DocumentState:
    """The records of a document in their order (instances image by image, each image's in z-order)
    and its id counters. The records are shared with the document, not copied."""

    images: tuple[ImageRecord, ...]
    categories: tuple[Category, ...]
    instances: tuple[Instance, ...]
    next_ids: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, document: Document) -> DocumentState:
        return cls(
            tuple(document.images),
            tuple(document.categories),
            tuple(document.iter_instances()),
            document.next_ids,
        )

    def matches(self, document: Document) -> bool:
        """True when ``document`` holds exactly these records (the same objects, in the same order)."""
        return (
            _same(document.images, self.images)
            and _same(document.categories, self.categories)
            and _same(document.iter_instances(), self.instances)
        )

    def same_records(self, other: DocumentState) -> bool:
        return (
            _same(other.images, self.images)
            and _same(other.categories, self.categories)
            and _same(other.instances, self.instances)
        )

    def document(self) -> Document:
        """A new document holding these records (for another thread to work on)."""
        copy = Document()
        copy.load_records(self.images, self.categories, self.instances, self.next_ids)
        return copy


def run_import(
    fmt: str, source: Path, image_root: Path, before: DocumentState, progress: Progress | None = None
) -> tuple[ImportReport, DocumentState]:
    """Import ``source`` (format ``fmt``: "coco" or "labelme") into a copy of ``before``; returns the
    report and the records after the import. Raises the importer's FormatError for a malformed file.
    ``progress(done, total)``: see the importers; an exception it raises stops the import."""
    document = before.document()
    if fmt == "coco":
        from efficientsam_studio.annotations.formats.coco_import import import_coco

        report = import_coco(document, source, image_root=image_root, progress=progress)
    elif fmt == "labelme":
        from efficientsam_studio.annotations.formats.labelme import import_labelme

        report = import_labelme(document, source, image_root=image_root, progress=progress)
    else:
        raise ValueError(f"unknown import format {fmt!r}")
    return report, DocumentState.of(document)


@dataclass
class ImportOutcome:
    """How an import ended: ``report`` and ``after`` when the file was read, ``error`` (its message)
    when it was refused, ``cancelled`` when it was stopped; ``before``: the records it started from."""

    fmt: str
    source: Path
    before: DocumentState
    report: ImportReport | None = None
    after: DocumentState | None = None
    error: str | None = None
    cancelled: bool = False


ApplyImport = Callable[[ImportOutcome], bool]
"""``apply(outcome)``: puts a finished import into the project; True when the dialog may close."""


class ImportCancelled(Exception):
    """Raised from the progress callback to stop a running import."""


class ImportWorker(QObject):
    """Runs :func:`run_import` off the GUI thread (it reads only the records it was given), reporting
    ``progress(done, total)`` and stopping between steps once :attr:`cancel` is set."""

    finished = Signal(object)  # ImportOutcome
    progress = Signal(int, int)

    def __init__(self, outcome: ImportOutcome, image_root: Path) -> None:
        super().__init__()
        self.outcome, self.image_root = outcome, image_root
        self.cancel = threading.Event()

    def _progress(self, done: int, total: int) -> None:
        if self.cancel.is_set():
            raise ImportCancelled
        self.progress.emit(done, total)

    @Slot()
    def run(self) -> None:
        outcome = self.outcome
        try:
            outcome.report, outcome.after = run_import(
                outcome.fmt, outcome.source, self.image_root, outcome.before, self._progress
            )
        except ImportCancelled:
            outcome.cancelled = True
        except Exception as exc:  # shown to the user; nothing was added to the open document
            outcome.error = (
                str(exc) if isinstance(exc, (StudioError, OSError)) else f"{type(exc).__name__}: {exc}"
            )
        self.finished.emit(outcome)


class ImportCommand(StudioCommand):
    """The whole import as one step: ``apply`` shows the ``after`` records, ``revert`` the ``before`` ones.

    Each direction refuses (DocumentError) when the document does not hold the records the other one
    left, which an edit outside the history would cause; nothing is changed then.
    """

    def __init__(self, session: Session, before: DocumentState, after: DocumentState, text: str) -> None:
        super().__init__(
            text, lambda: self._show(before, after, "redo"), lambda: self._show(after, before, "undo")
        )
        self.session = session

    def _show(self, expected: DocumentState, target: DocumentState, verb: str) -> None:
        session, document = self.session, self.session.document
        if not expected.matches(document):
            raise DocumentError(
                f"cannot {verb} '{self.text()}': the project changed outside the edit history"
            )
        _leave_what_goes(session, target)
        saved = document.saved_revision
        next_ids = {
            kind: max(value, target.next_ids.get(kind, 1)) for kind, value in document.next_ids.items()
        }
        try:
            document.load_records(target.images, target.categories, target.instances, next_ids)
        except StudioError:  # records a document once held: not expected; put the others back
            document.load_records(expected.images, expected.categories, expected.instances, next_ids)
            raise
        finally:
            document.mark_saved(saved)  # load_records marks clean; the change still has to be saved
        _settle(session, target)


def _leave_what_goes(session: Session, target: DocumentState) -> None:
    """Before a reset to ``target``: move the current image, category and selection off records that
    ``target`` lacks, onto ones both the document and ``target`` hold, so no view asks for a record
    that is gone while it refreshes."""
    document = session.document
    image_ids = {image.id for image in document.images}
    if session.current_image_id is not None and session.current_image_id not in {i.id for i in target.images}:
        kept = [image.id for image in target.images if image.id in image_ids]
        session.set_current_image(kept[0] if kept else None)
    instance_ids = {instance.id for instance in target.instances}
    if session.selected_instance_id is not None and session.selected_instance_id not in instance_ids:
        session.select_instance(None)
    session.hidden &= instance_ids
    category_ids = {category.id for category in document.categories}
    if session.current_category_id is not None and session.current_category_id not in {
        c.id for c in target.categories
    }:
        kept = [category.id for category in target.categories if category.id in category_ids]
        session.set_category(kept[0] if kept else None)


def _settle(session: Session, target: DocumentState) -> None:
    """After a reset: a current image and category when the document has some and none was chosen."""
    if session.current_image_id is None and target.images:
        session.set_current_image(target.images[0].id)
    if session.current_category_id is None and target.categories:
        session.set_category(target.categories[0].id)


def report_text(outcome: ImportOutcome, project_name: str, undoable: bool) -> str:
    """The report shown after an import (the command line prints the same summary)."""
    assert outcome.report is not None
    text = f"Imported {outcome.source} into {project_name}: {outcome.report.summary()}"
    return f"{text}\n\n{UNDO_HINT}" if undoable else text


class ImportFlow(QObject):
    """The main window's import command: the busy and read-only guards, the dialog, and applying the
    result to the open project (:meth:`apply`)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.dialog: ImportDialog | None = None
        self.outcome: ImportOutcome | None = None  # the last import applied

    @property
    def running(self) -> bool:
        """True while a file is being read."""
        return self.dialog is not None and self.dialog.running

    def refusal(self) -> str | None:
        """Why an import cannot start now, or None."""
        ws = self.window.workspace
        if ws is None:
            return "Open a project first."
        if ws.project.read_only:
            return "The project is open read-only: an import could not be saved."
        busy = self.window._busy_message()
        if busy:
            return f"{busy}\n\nImport annotations once it has finished."
        return None

    def start(self) -> bool:
        """Open the import dialog (window-modal, so the project is not edited while a file is read);
        False, with the reason in a message box, when an import cannot start now."""
        problem = self.refusal()
        if problem:
            QMessageBox.warning(self.window, "Cannot import now", problem)
            return False
        if self.dialog is not None:
            self.dialog.raise_()
            return True
        from efficientsam_studio.gui.dialogs.import_dialog import ImportDialog

        ws = self.window.workspace
        dialog = ImportDialog(
            ws.project.folder, lambda: DocumentState.of(ws.session.document), self.apply, self.window
        )
        dialog.finished.connect(lambda _result: self._closed(dialog))
        self.dialog = dialog
        dialog.open()
        return True

    def _closed(self, dialog: ImportDialog) -> None:
        if self.dialog is dialog:
            self.dialog = None
        dialog.deleteLater()

    def stop(self) -> None:
        """Drop a running import (nothing of it reaches the project) and close the dialog."""
        dialog = self.dialog
        if dialog is not None:
            dialog.stop()
            dialog.done(0)

    def apply(self, outcome: ImportOutcome) -> bool:
        """Put a finished import into the open project as one undo step and show the report; False
        (with the reason shown) when it cannot be applied, which leaves the project unchanged."""
        ws, window = self.window.workspace, self.window
        if ws is None or outcome.report is None or outcome.after is None:
            return False
        name = ws.project.path.name
        if not outcome.before.matches(ws.session.document):
            QMessageBox.warning(
                window,
                "Import not applied",
                f"{name} changed while {outcome.source} was being read, so nothing was imported. "
                "Import the file again.",
            )
            return False
        changed = not outcome.after.same_records(outcome.before)
        if changed:
            label = outcome.source.name or str(outcome.source)
            command = ImportCommand(ws.session, outcome.before, outcome.after, f"Import {label}")
            errors: list[str] = []

            def note(message: str) -> None:
                errors.append(message)

            ws.session.error.connect(note)
            try:
                pushed = ws.session.push(command)
            finally:
                ws.session.error.disconnect(note)
            if not pushed:
                reason = errors[-1] if errors else "the project refused the change"
                QMessageBox.critical(window, "Import failed", f"{reason}\n\nNothing was imported.")
                return False
        self.outcome, report = outcome, outcome.report
        window.show_message(
            f"Imported {report.instances_added} instances, {len(report.images_added)} images and "
            f"{len(report.categories_added)} categories from {outcome.source.name}"
        )
        QMessageBox.information(window, "Import done", report_text(outcome, name, changed))
        return True
