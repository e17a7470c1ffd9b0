"""The export dialog: every format of the annotation core, with its polygon choices.

The dialog only collects choices; :func:`run_export` calls the annotation core's exporter, so the
GUI writes exactly what ``efsam-studio export`` writes. Export runs in the background
(:class:`~efficientsam_studio.gui.export_worker.ExportWorker` in a ``QThread``, as the batch dialog
runs) on a snapshot of the document taken when it starts, with a progress bar: the windows stay usable
and later edits do not reach the files being written. Cancel stops after the image being written; a
COCO file is written atomically at the end, so a cancelled or failed COCO export leaves the previous
file as it was, and a cancelled folder export says how many images it wrote.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QThread, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
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

from efficientsam_studio.annotations.document import Document
from efficientsam_studio.annotations.formats.common import POLYGON_POLICIES, ExportReport, Progress
from efficientsam_studio.annotations.project import Project, protected_files
from efficientsam_studio.annotations.storage import output_problem
from efficientsam_studio.errors import StudioError
from efficientsam_studio.gui.export_worker import ExportOutcome, ExportWorker, snapshot
from efficientsam_studio.gui.settings import StudioSettings
from efficientsam_studio.gui.worker_close import defer_close_while_running, end_worker_thread, worker_thread


@dataclass(frozen=True)
class ExportFormat:
    """``key`` as in ``efsam-studio export --format``; ``target``: "file" (a .json) or "folder";
    ``options``: which of ``polygons``, ``tolerance``, ``image_root`` the exporter takes."""

    key: str
    label: str
    module: str
    function: str
    target: str
    options: tuple[str, ...] = ()

    @property
    def polygons(self) -> bool:
        return "polygons" in self.options


FORMATS: tuple[ExportFormat, ...] = (
    ExportFormat(
        "coco", "COCO instance segmentation (.json)", "coco", "export_coco", "file", ("polygons", "tolerance")
    ),
    ExportFormat(
        "labelme",
        "labelme JSON (one file per image)",
        "labelme",
        "export_labelme",
        "folder",
        ("polygons", "tolerance", "image_root"),
    ),
    ExportFormat(
        "yolo",
        "YOLO segmentation (txt + data.yaml)",
        "yolo",
        "export_yolo",
        "folder",
        ("tolerance", "image_root"),
    ),
    ExportFormat("masks", "PNG masks (semantic and instance)", "png_masks", "export_png_masks", "folder"),
)


MIN_DESTINATION_WIDTH, MAX_DESTINATION_WIDTH = 320, 900  # pixels of the destination field


def _exporter(fmt: ExportFormat) -> Callable[..., ExportReport] | None:
    try:
        module = importlib.import_module(f"efficientsam_studio.annotations.formats.{fmt.module}")
    except ImportError:
        return None
    return getattr(module, fmt.function, None)


def available_formats() -> list[ExportFormat]:
    """The formats whose exporter is installed in the annotation core."""
    return [fmt for fmt in FORMATS if _exporter(fmt) is not None]


def run_export(
    project: Project,
    key: str,
    out: str | Path,
    polygons: str = "auto",
    tolerance: float = 1.0,
    *,
    document: Document | None = None,
    progress: Progress | None = None,
) -> ExportReport:
    """Export ``project`` in format ``key`` to ``out`` (a file for COCO, a folder otherwise).

    ``document``: what to write (default: the project's; the dialog passes a snapshot); ``progress``:
    called with ``(images done, total)`` after each image.
    """
    fmt = next((f for f in FORMATS if f.key == key), None)
    exporter = _exporter(fmt) if fmt is not None else None
    if fmt is None or exporter is None:
        raise StudioError(
            f"unknown export format {key!r}; choose one of: {', '.join(f.key for f in available_formats())}"
        )
    values = {"polygons": polygons, "tolerance": tolerance, "image_root": project.folder}
    options = {name: values[name] for name in fmt.options}
    document = project.document if document is None else document
    return exporter(document, Path(out), progress=progress, **options)


class ExportDialog(QDialog):
    """Choose a format, a destination and the polygon policy; Export runs :func:`run_export` in a
    worker thread on a snapshot of the document.

    While it runs, Export is disabled and the progress bar counts images; Cancel (or Escape) stops the
    export and keeps the dialog open with what was written; a second Cancel, or closing the dialog,
    closes it (once the worker has stopped, which is after the image being written).
    """

    def __init__(self, project: Project, settings: StudioSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export annotations")
        self.project = project
        self.report: ExportReport | None = None
        self.outcome: ExportOutcome | None = None
        self.message = ""  # how the last export ended (also shown under the progress bar)
        self._thread: QThread | None = None
        self._worker: ExportWorker | None = None
        self._cancel = threading.Event()
        self._close_when_done = False
        self._out, self._folder, self._existed = Path(), True, False
        self.format = QComboBox()
        for fmt in available_formats():
            self.format.addItem(fmt.label, fmt.key)
        self.format.currentIndexChanged.connect(lambda _: self._suggest_destination())
        self.destination = QLineEdit()
        self.destination.textChanged.connect(self._fit_destination)
        self.browse = QPushButton("Browse…")
        self.browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.destination, 1)
        row.addWidget(self.browse)
        self.polygons = QComboBox()
        self.polygons.addItems(list(POLYGON_POLICIES))
        self.polygons.setToolTip("auto: polygons unless a mask has holes or several parts (then RLE)")
        self.tolerance = QDoubleSpinBox(
            minimum=0.0, maximum=50.0, value=settings.polygon_tolerance, singleStep=0.5, suffix=" px"
        )
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("Format", self.format)
        form.addRow("Destination", row)
        form.addRow("Polygons", self.polygons)
        form.addRow("Simplification", self.tolerance)
        form.addRow(self.progress_bar)
        form.addRow(self.status)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.cancel_button = buttons.button(QDialogButtonBox.StandardButton.Cancel)
        self.export_button = buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.export)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self._suggest_destination()

    def _fit_destination(self, text: str) -> None:
        """Widen the destination field to show the whole path (up to MAX_DESTINATION_WIDTH pixels; a
        longer one scrolls), and give the full path as its tooltip."""
        self.destination.setToolTip(text)
        metrics = self.destination.fontMetrics()
        wanted = metrics.horizontalAdvance(text) + 4 * metrics.averageCharWidth()  # frame and cursor
        self.destination.setMinimumWidth(min(max(wanted, MIN_DESTINATION_WIDTH), MAX_DESTINATION_WIDTH))

    def _fmt(self) -> ExportFormat:
        return next(f for f in FORMATS if f.key == self.format.currentData())

    def _suggest_destination(self) -> None:
        fmt = self._fmt()
        stem = self.project.path.name.removesuffix(".efsam.json")
        name = f"{stem}_coco.json" if fmt.target == "file" else f"{stem}_{fmt.key}"
        self.destination.setText(str(self.project.folder / "exports" / name))
        self._enable_options()

    def _enable_options(self) -> None:
        fmt = self._fmt()
        self.polygons.setEnabled(fmt.polygons)
        self.tolerance.setEnabled("tolerance" in fmt.options)

    def _browse(self) -> None:
        if self._fmt().target == "file":
            path, _ = QFileDialog.getSaveFileName(self, "Export to", self.destination.text(), "JSON (*.json)")
        else:
            path = QFileDialog.getExistingDirectory(self, "Export into folder", self.destination.text())
        if path:
            self.destination.setText(path)

    # ----------------------------------------------------------------- running
    @property
    def running(self) -> bool:
        """True while an export is being written."""
        return self._thread is not None

    def _destination_problem(self, fmt: ExportFormat, out: Path) -> str | None:
        if not str(out).strip() or str(out) == ".":
            return "choose a destination first"
        problem = output_problem(out, folder=fmt.target == "folder")
        if problem is None and fmt.target == "file":
            replaced = protected_files(self.project.path).get(out.resolve())
            if replaced is not None:
                problem = f"{out} would replace {replaced}; choose another file"
        return problem

    def export(self) -> bool:
        """Start the export in a worker thread; False (and the reason shown) when it cannot start.

        The document is snapshotted here, on the GUI thread; the summary (or the error) is shown when
        the worker is done, and the dialog closes after a finished export.
        """
        if self.running:
            return False
        fmt = self._fmt()
        out = Path(self.destination.text().strip()).expanduser()
        problem = self._destination_problem(fmt, out)
        if problem is not None:
            QMessageBox.critical(self, "Export failed", problem)
            return False
        self._out, self._folder = out, fmt.target == "folder"
        self._existed = not self._folder and out.exists()
        document = snapshot(self.project.document)
        project, key = self.project, fmt.key
        polygons, tolerance = self.polygons.currentText(), self.tolerance.value()

        def export(progress: Progress) -> ExportReport:
            return run_export(project, key, out, polygons, tolerance, document=document, progress=progress)

        self.report, self.outcome, self.message = None, None, ""
        self._cancel.clear()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.status.setText(f"Exporting to {out}…")
        self._worker = ExportWorker(export, self._cancel)
        self._thread = worker_thread(self, self._worker)
        self._worker.progress.connect(self._on_progress)
        self._worker.finished.connect(self._finish)
        self._set_running(True)
        self._thread.start()
        return True

    def cancel(self) -> None:
        """Stop the export after the image being written (a COCO file is then not written at all)."""
        if self.running and not self._cancel.is_set():
            self._cancel.set()
            self.status.setText("Stopping after the current image…")

    def stop(self) -> None:
        """Cancel and wait for the worker (at most the image being written, or the COCO file's write)."""
        if self.running:
            self._close_when_done = False
            self.cancel()
            worker = self._worker
            self._thread.quit()
            self._thread.wait()
            self._finish(worker.outcome)

    def _set_running(self, running: bool) -> None:
        self.export_button.setEnabled(not running)
        for widget in (self.format, self.destination, self.browse, self.polygons, self.tolerance):
            widget.setEnabled(not running)
        if not running:
            self._enable_options()

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        self.progress_bar.setRange(0, total)
        self.progress_bar.setValue(done)
        if self._cancel.is_set():
            return
        writing = f"; writing {self._out}…" if not self._folder and done == total else "…"
        self.status.setText(f"{done} of {total} images{writing}")

    @Slot(object)
    def _finish(self, outcome: ExportOutcome) -> None:
        if self._worker is None or outcome is not self._worker.outcome:
            return  # already handled by stop()
        end_worker_thread(self._thread)
        self._thread, self._worker = None, None
        self._set_running(False)
        self.outcome = outcome
        self.message = outcome.describe(self._out, self._folder, self._existed)
        self.status.setText(self.message)
        closing, self._close_when_done = self._close_when_done, False
        if outcome.report is not None:
            self.report = outcome.report
            if not closing:
                QMessageBox.information(self, "Export done", self.message)
            self.accept()
            return
        if outcome.error is not None:
            QMessageBox.critical(self, "Export failed", self.message)
        if closing:
            super().reject()

    def reject(self) -> None:
        """Cancel and Escape: while exporting, the first cancels the export and the next closes the
        dialog once the worker has stopped; otherwise close."""
        if self.running:
            if self._cancel.is_set():
                self._close_when_done = True
            self.cancel()
            return
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        """Closing while exporting cancels first and closes when the worker has stopped."""
        if not defer_close_while_running(self, event):
            super().closeEvent(event)
