"""Export in the background: a snapshot of the document, written by a worker in a ``QThread``.

The same pattern as the batch dialog (:mod:`efficientsam_studio.gui.batch_dialog`): an
:class:`ExportWorker` moved onto a ``QThread`` runs the exporter and reports by signals; a
``threading.Event`` asks it to stop. The exporters call ``progress(done, total)`` after each image; the
worker's callback sends the progress to the dialog and raises :class:`ExportCancelled` once the event is
set, which unwinds the exporter after the image it has just written.

The worker reads a :func:`snapshot` of the document taken on the GUI thread, so edits made meanwhile (by
the user or a batch run) never reach a half-written export.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from efficientsam_studio.annotations.document import Document
from efficientsam_studio.annotations.formats.common import ExportReport, Progress
from efficientsam_studio.errors import StudioError

ExportCall = Callable[[Progress], ExportReport]
"""``export(progress)``: runs one export (e.g. :func:`~.dialogs.export.run_export` with its choices bound)."""


class ExportCancelled(Exception):
    """Raised by the worker's progress callback to stop an exporter after the image it has written."""


def snapshot(document: Document) -> Document:
    """A copy of ``document`` that another thread can read while the original is edited.

    Records (images, categories, instances with their RLE masks) are immutable and shared; only the
    containers (lookups and z-order lists) are new, so the copy costs O(records) and copies no mask.
    """
    copy = Document()
    copy.load_records(document.images, document.categories, document.iter_instances(), document.next_ids)
    return copy


@dataclass
class ExportOutcome:
    """How an export ended. ``report``: set when it finished; ``cancelled``; ``error``: the message of
    the failure; ``done`` / ``total``: images written so far / to write (from the last progress)."""

    report: ExportReport | None = None
    cancelled: bool = False
    error: str | None = None
    done: int = 0
    total: int = 0

    def describe(self, out: Path, folder: bool, existed: bool = False) -> str:
        """One sentence for the dialog. ``out``: the destination; ``folder``: a folder format;
        ``existed``: (single-file formats) a file was at ``out`` before the export started."""
        if self.report is not None:
            return f"Exported to {out}: {self.report.summary()}"
        if folder:
            written = f"{self.done} of {self.total} images written to {out}"
            if self.cancelled:
                return f"Cancelled: {written}; the export in that folder is incomplete."
            if self.done == 0:
                return f"{self.error}"
            return f"{self.error}\n\n{written}; the export in that folder is incomplete."
        kept = "the previous file is unchanged" if existed else "no file was written"
        if self.cancelled:
            return f"Cancelled: {out} was not written; {kept}."
        return f"{self.error}\n\n{out}: {kept}."


class ExportWorker(QObject):
    """Runs one export off the GUI thread (reads only the snapshot it was given)."""

    progress = Signal(int, int)  # images done, total
    finished = Signal(object)  # ExportOutcome

    def __init__(self, export: ExportCall, cancel: threading.Event) -> None:
        super().__init__()
        self.export, self.cancel = export, cancel
        self.outcome = ExportOutcome()

    def _progress(self, done: int, total: int) -> None:
        self.outcome.done, self.outcome.total = done, total
        self.progress.emit(done, total)
        if self.cancel.is_set():
            raise ExportCancelled

    @Slot()
    def run(self) -> None:
        outcome = self.outcome
        try:
            outcome.report = self.export(self._progress)
        except ExportCancelled:
            outcome.cancelled = True
        except Exception as exc:  # shown to the user; the dialog stays usable
            outcome.error = (
                str(exc) if isinstance(exc, (StudioError, OSError)) else f"{type(exc).__name__}: {exc}"
            )
        self.finished.emit(outcome)
