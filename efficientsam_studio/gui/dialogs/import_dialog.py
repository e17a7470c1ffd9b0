"""The import dialog: choose a format and a file or folder; the file is read in a worker thread.

COCO is read from one JSON file; labelme from one JSON file or a folder of them (sub-folders included),
which also reads X-AnyLabeling's files, as they are labelme files with a few extra keys. Import starts
an :class:`~efficientsam_studio.gui.import_flow.ImportWorker` in a ``QThread`` on the records of the
document at that moment, with a busy bar; the result goes to the ``apply`` callback on the GUI thread.
A malformed file is shown in an error box and the dialog stays open, the project unchanged.

The importers cannot be interrupted halfway, so Cancel (or closing the dialog) while a file is being read
drops the result: the dialog closes once the worker is done, and nothing reaches the project.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QThread, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QWidget,
)

from efficientsam_studio.gui.import_flow import (
    ApplyImport,
    DocumentState,
    ImportOutcome,
    ImportWorker,
)
from efficientsam_studio.gui.worker_close import defer_close_while_running, end_worker_thread, worker_thread

FORMATS = (
    (
        "coco",
        "COCO JSON file",
        "A COCO instances file (polygons or RLE). Categories are matched by name, images by their path "
        "relative to the project folder; new images are added.",
    ),
    (
        "labelme",
        "labelme / X-AnyLabeling JSON (a file or a folder)",
        "One labelme or X-AnyLabeling JSON file, or a folder searched for them (sub-folders included). "
        "Polygons, rectangles, circles and masks are read; each file's imagePath finds its image.",
    ),
)


def source_problem(fmt: str, text: str) -> str | None:
    """Why ``text`` cannot be imported as ``fmt`` (read as the command line reads ``--from``), or None."""
    if not text.strip():
        return "Choose a file or folder to import first."
    source = Path(text.strip()).expanduser()
    if not source.exists():
        return f"{source} does not exist."
    if fmt == "coco" and not source.is_file():
        return f"{source} is a folder: COCO annotations are read from their .json file."
    return None


class ImportDialog(QDialog):
    """Format, source and progress of one import.

    Args:
        image_root: the project folder (image paths in the files are relative to it).
        capture: the records of the open document, taken when Import is pressed.
        apply: puts a finished import into the project; True when the dialog may close.
    """

    def __init__(
        self,
        image_root: Path,
        capture: Callable[[], DocumentState],
        apply: ApplyImport,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import annotations")
        self.image_root, self._capture, self._apply = Path(image_root), capture, apply
        self.outcome: ImportOutcome | None = None
        self._thread: QThread | None = None
        self._worker: ImportWorker | None = None
        self._discard = False  # the running import's result is dropped (Cancel, closing)
        self._close_when_done = False
        self.format = QComboBox()
        for key, label, _ in FORMATS:
            self.format.addItem(label, key)
        self.format.currentIndexChanged.connect(lambda _: self._format_changed())
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.source = QLineEdit(placeholderText="a .json file, or a folder of labelme files")
        self.file_button = QPushButton("File…")
        self.file_button.clicked.connect(lambda: self._browse(folder=False))
        self.folder_button = QPushButton("Folder…")
        self.folder_button.clicked.connect(lambda: self._browse(folder=True))
        row = QHBoxLayout()
        row.addWidget(self.source, 1)
        row.addWidget(self.file_button)
        row.addWidget(self.folder_button)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setTextVisible(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("Format", self.format)
        form.addRow(self.hint)
        form.addRow("From", row)
        form.addRow(self.progress_bar)
        form.addRow(self.status)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.cancel_button = buttons.button(QDialogButtonBox.StandardButton.Cancel)
        self.import_button = buttons.addButton("Import", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.start)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.setMinimumWidth(560)
        self._format_changed()

    @property
    def fmt(self) -> str:
        return self.format.currentData()

    def set_format(self, fmt: str) -> None:
        self.format.setCurrentIndex(self.format.findData(fmt))

    def _format_changed(self) -> None:
        self.hint.setText(next(text for key, _, text in FORMATS if key == self.fmt))
        self.folder_button.setEnabled(self.fmt == "labelme" and not self.running)

    def _browse(self, folder: bool) -> None:
        start = self.source.text().strip() or str(self.image_root)
        if folder:
            path = QFileDialog.getExistingDirectory(self, "Import labelme files from folder", start)
        else:
            path, _ = QFileDialog.getOpenFileName(
                self, "Import annotations from file", start, "JSON (*.json);;All files (*)"
            )
        if path:
            self.source.setText(path)

    # ----------------------------------------------------------------- running
    @property
    def running(self) -> bool:
        """True while a file is being read."""
        return self._thread is not None

    def start(self) -> bool:
        """Read the chosen source in a worker thread; False (with the reason shown) when it cannot start."""
        if self.running:
            return False
        problem = source_problem(self.fmt, self.source.text())
        if problem is not None:
            QMessageBox.critical(self, "Cannot import", problem)
            return False
        source = Path(self.source.text().strip()).expanduser()
        outcome = ImportOutcome(self.fmt, source, self._capture())
        self.outcome, self._discard, self._close_when_done = None, False, False
        self.progress_bar.setRange(0, 0)  # busy until the importer reports its first step
        self.status.setText(f"Reading {source}…")
        self._worker = ImportWorker(outcome, self.image_root)
        self._thread = worker_thread(self, self._worker)
        self._worker.finished.connect(self._finish)
        self._worker.progress.connect(self._on_progress)
        self._set_running(True)
        self._thread.start()
        return True

    def cancel(self) -> None:
        """Stop the running import at its next step; nothing of it is imported, and the dialog closes."""
        if self.running:
            self._discard, self._close_when_done = True, True
            self._worker.cancel.set()
            self.status.setText("Cancelling: nothing will be imported…")

    def stop(self) -> None:
        """Stop the running import and wait for the worker (until its next step)."""
        if self.running:
            self._discard = True
            worker = self._worker
            worker.cancel.set()
            self._thread.quit()
            self._thread.wait()
            self._finish(worker.outcome)

    def _set_running(self, running: bool) -> None:
        for widget in (self.import_button, self.format, self.source, self.file_button):
            widget.setEnabled(not running)
        self.folder_button.setEnabled(not running and self.fmt == "labelme")
        if not running:
            self.progress_bar.setRange(0, 1)

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        if self.running and not self._discard and total > 0:
            self.progress_bar.setRange(0, total)
            self.progress_bar.setValue(done)

    @Slot(object)
    def _finish(self, outcome: ImportOutcome) -> None:
        if self._worker is None or outcome is not self._worker.outcome:
            return  # already handled by stop()
        end_worker_thread(self._thread)
        self._thread, self._worker = None, None
        self._set_running(False)
        self.outcome = outcome
        if self._discard or outcome.cancelled:
            self.status.setText("Cancelled: nothing was imported.")
            if self._close_when_done:
                super().reject()
            return
        if outcome.error is not None:
            self.progress_bar.setValue(0)
            self.status.setText("The file was not imported; the project is unchanged.")
            QMessageBox.critical(
                self, "Import failed", f"{outcome.error}\n\nNothing was imported; the project is unchanged."
            )
            return
        self.progress_bar.setValue(self.progress_bar.maximum())
        if self._apply(outcome):
            self.status.setText(f"Imported {outcome.source}.")
            self.accept()
        else:
            self.status.setText("The file was not imported; the project is unchanged.")

    def reject(self) -> None:
        """Cancel and Escape: while a file is being read, drop the import and close when it is done."""
        if self.running:
            self.cancel()
            return
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        if not defer_close_while_running(self, event):
            super().closeEvent(event)
