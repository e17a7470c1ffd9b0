"""The batch dialog: label the open project's images with the batch pipeline, in the background.

The same pipeline as ``efsam-studio label`` (:class:`efficientsam_studio.batch.BatchJob`): the
:class:`BatchWorker` loads its own predictor and computes masks image by image in a ``QThread``; each
result lands on the GUI thread as one undoable step of the session's undo stack (AI instances, status
"needs review"). The project is saved every few images and at the end; Cancel stops after the current
decoder batch (or cut, or batch of grid points) in every mode and keeps the images finished (the one cut
short is left untouched). Images labelled meanwhile are not overwritten. While it runs, the status line
shows the time elapsed and an estimate of the time left.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from efficientsam_studio.batch import (
    BatchJob,
    BatchParams,
    BatchProgress,
    BatchSummary,
    ImageFailure,
    ImageResult,
    read_box_prompts,
    read_point_prompts,
)
from efficientsam_studio.engine.automatic import AutomaticMaskParams, MaskGenerationCancelled
from efficientsam_studio.errors import StudioError
from efficientsam_studio.gui.worker_close import defer_close_while_running, end_worker_thread, worker_thread

PredictorFactory = Callable[[], Any]
MODE_LABELS = {
    "everything": "Segment everything (grid of points)",
    "boxes": "Boxes to masks (COCO, YOLO folder, CSV)",
    "points": "Points to masks (CSV, JSON)",
}


class BatchWorker(QObject):
    """Computes the masks of a job's images off the GUI thread (never touches the document)."""

    progress = Signal(object)  # BatchProgress ("working" events)
    result_ready = Signal(object)  # ImageResult
    image_failed = Signal(str, str)  # path, reason
    load_failed = Signal(str)
    finished = Signal(bool)  # cancelled

    def __init__(self, job: BatchJob, factory: PredictorFactory, cancel: threading.Event) -> None:
        super().__init__()
        self.job, self.factory, self.cancel = job, factory, cancel

    @Slot()
    def run(self) -> None:
        try:
            predictor = self.factory()
        except Exception as exc:  # shown to the user; the dialog stays usable
            message = str(exc) if isinstance(exc, StudioError) else f"{type(exc).__name__}: {exc}"
            self.load_failed.emit(message)
            self.finished.emit(False)
            return
        records = list(self.job.todo)
        for index, record in enumerate(records):
            if self.cancel.is_set():
                break
            self.progress.emit(BatchProgress(index, len(records), record.path, "working"))

            def step(done: int, total: int, index: int = index, path: str = record.path) -> None:
                self.progress.emit(BatchProgress(index, len(records), path, "working", step=(done, total)))

            try:
                result = self.job.compute(record, predictor, cancel=self.cancel.is_set, step=step)
            except MaskGenerationCancelled:
                break
            except Exception as exc:  # one bad image must not stop the run
                reason = str(exc) if isinstance(exc, StudioError) else f"{type(exc).__name__}: {exc}"
                self.image_failed.emit(record.path, reason)
                continue
            self.result_ready.emit(result)
        self.finished.emit(self.cancel.is_set())


class BatchDialog(QDialog):
    """Choose a mode and parameters, run, watch progress, cancel.

    Args:
        session: the main window's session (document and undo stack; results are pushed on it).
        project: the open project (its folder holds the images; ``save()`` is used when ``save`` is None).
        predictor_factory: called in the worker thread to load a predictor (``set_image``,
            ``predict_batch``, ``masks_from_logits``), e.g. the engine service's loader with the current
            model settings.
        save: saves the project, returns True on success (e.g. the autosaver's ``save_now``).
    """

    def __init__(
        self,
        session: Any,
        project: Any,
        predictor_factory: PredictorFactory,
        save: Callable[[], object] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Batch label images")
        self.setModal(True)
        self.session, self.project, self.factory = session, project, predictor_factory
        self._save = save or project.save
        self.job: BatchJob | None = None
        self.summary: BatchSummary | None = None
        self._thread: QThread | None = None
        self._worker: BatchWorker | None = None
        self._cancel = threading.Event()
        self._close_when_done = False
        self._since_save = 0
        self._late_skips = 0
        self._started = 0.0
        self._working_since: float | None = None  # the first image began (the model was loaded)
        self._last_event: BatchProgress | None = None
        self._clock = QTimer(self)
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self._show_progress)
        self._build()
        self._mode_changed()

    # ----------------------------------------------------------------- layout
    def _build(self) -> None:
        defaults = AutomaticMaskParams()
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.mode = QComboBox()
        for key, text in MODE_LABELS.items():
            self.mode.addItem(text, key)
        self.mode.currentIndexChanged.connect(self._mode_changed)
        form.addRow("Mode", self.mode)
        self.prompt_file = QLineEdit()
        self.prompt_file.setPlaceholderText("prompt file or YOLO labels")
        self.prompt_file.setToolTip("A prompt file (COCO, CSV, JSON) or a folder of YOLO txt labels")
        browse, browse_folder = QPushButton("File…"), QPushButton("Folder…")
        browse.clicked.connect(lambda: self._browse(folder=False))
        browse_folder.clicked.connect(lambda: self._browse(folder=True))
        row = QHBoxLayout()
        for widget in (self.prompt_file, browse, browse_folder):
            row.addWidget(widget)
        self.prompt_row = QWidget()
        self.prompt_row.setLayout(row)
        row.setContentsMargins(0, 0, 0, 0)
        form.addRow("Prompts", self.prompt_row)
        self.images_json = QLineEdit()
        self.images_json.setPlaceholderText("optional COCO file")
        self.images_json.setToolTip(
            "Optional: a COCO file naming the images of detection results (their image ids)"
        )
        for field in (self.prompt_file, self.images_json):
            metrics = field.fontMetrics()  # room for the whole placeholder, frame and cursor
            field.setMinimumWidth(
                metrics.horizontalAdvance(field.placeholderText()) + 4 * metrics.averageCharWidth()
            )
        form.addRow("Image ids", self.images_json)
        self.min_score = _double(0.0, 1.0, 0.0, 0.05)
        form.addRow("Min. detector score", self.min_score)
        self.refine_boxes = QCheckBox("Segment small boxes again at full resolution (one encoder run each)")
        form.addRow(self.refine_boxes)
        self.overwrite = QCheckBox("Label again images already labelled (replaces their AI masks)")
        self.overwrite.setToolTip("Images marked done keep their masks unless hand-made work is replaced too")
        self.replace_manual = QCheckBox("Also replace hand-made or edited masks, and images marked done")
        self.overwrite.toggled.connect(lambda on: self.replace_manual.setEnabled(on and not self.running))
        form.addRow(self.overwrite)
        form.addRow(self.replace_manual)
        layout.addLayout(form)

        self.grid_box = QGroupBox("Segment everything")
        grid = QFormLayout(self.grid_box)
        self.category = QLineEdit("object")
        self.points_per_side = _spin(1, 128, defaults.points_per_side)
        self.pred_iou = _double(0.0, 1.0, defaults.pred_iou_thresh, 0.01)
        self.stability = _double(0.0, 1.0, defaults.stability_score_thresh, 0.01)
        self.nms = _double(0.05, 1.0, defaults.box_nms_thresh, 0.05)
        self.min_area = _spin(0, 1_000_000, defaults.min_mask_area)
        self.crop_layers = _spin(0, 3, defaults.crop_n_layers)
        self.skip_covered = QCheckBox("Skip points inside masks already found (faster, no part masks)")
        for text, widget in (
            ("Category", self.category),
            ("Points per side", self.points_per_side),
            ("Predicted IoU threshold", self.pred_iou),
            ("Stability threshold", self.stability),
            ("Duplicate box IoU (NMS)", self.nms),
            ("Minimum area (px)", self.min_area),
            ("Crop layers", self.crop_layers),
        ):
            grid.addRow(text, widget)
        grid.addRow(self.skip_covered)
        layout.addWidget(self.grid_box)

        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.status = QLabel("")
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setMaximumBlockCount(500)
        lines = self.report.fontMetrics().lineSpacing()
        self.report.setMinimumHeight(10 * lines + 12)  # the summary without a scroll bar
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        layout.addWidget(self.report)
        buttons = QHBoxLayout()
        self.start_button, self.cancel_button, self.close_button = (
            QPushButton("Start"),
            QPushButton("Cancel"),
            QPushButton("Close"),
        )
        self.cancel_button.setEnabled(False)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.reject)
        buttons.addStretch(1)
        for button in (self.start_button, self.cancel_button, self.close_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)

    def _mode_changed(self) -> None:
        mode = self.mode.currentData()
        self.grid_box.setVisible(mode == "everything")
        self.prompt_row.setEnabled(mode != "everything")
        self.images_json.setEnabled(mode == "boxes")
        self.min_score.setEnabled(mode == "boxes")
        self.refine_boxes.setEnabled(mode == "boxes")
        self.replace_manual.setEnabled(self.overwrite.isChecked())

    def _browse(self, folder: bool) -> None:
        start = str(self.project.folder)
        if folder:
            path = QFileDialog.getExistingDirectory(self, "YOLO label folder", start)
        else:
            filters = "Prompts (*.json *.csv);;All (*)"
            path, _ = QFileDialog.getOpenFileName(self, "Prompt file", start, filters)
        if path:
            self.prompt_file.setText(path)

    # ----------------------------------------------------------------- running
    @property
    def running(self) -> bool:
        return self._thread is not None

    def params(self) -> BatchParams:
        """The parameters chosen in the dialog."""
        automatic = AutomaticMaskParams(
            points_per_side=self.points_per_side.value(),
            pred_iou_thresh=self.pred_iou.value(),
            stability_score_thresh=self.stability.value(),
            box_nms_thresh=self.nms.value(),
            min_mask_area=self.min_area.value(),
            crop_n_layers=self.crop_layers.value(),
            skip_covered_points=self.skip_covered.isChecked(),
        )
        return BatchParams(
            overwrite=self.overwrite.isChecked(),
            replace_manual=self.overwrite.isChecked() and self.replace_manual.isChecked(),
            category=self.category.text().strip() or "object",
            automatic=automatic,
            refine_small_boxes=self.refine_boxes.isChecked() and self.mode.currentData() == "boxes",
        )

    def _prompts(self, mode: str) -> Any:
        if mode == "everything":
            return None
        text = self.prompt_file.text().strip()
        if not text:
            raise StudioError(f"choose a {mode} file first (File… or Folder…)")
        if mode == "boxes":
            images_json = self.images_json.text().strip() or None
            return read_box_prompts(Path(text), images_json=images_json, min_score=self.min_score.value())
        return read_point_prompts(Path(text))

    def start(self) -> None:
        """Plan the run on this thread and start the worker; a bad choice is shown in the report."""
        if self.running:
            return
        mode = self.mode.currentData()
        try:
            prompts = self._prompts(mode)
            job = BatchJob(self.session.document, self.project.folder, mode, self.params(), prompts)
        except StudioError as exc:
            self.status.setText(f"Cannot start: {exc}")
            return
        self.job = job
        self.summary = BatchSummary(mode=mode, images=len(job.todo) + len(job.skipped))
        self.summary.skipped = [(record.path, reason) for record, reason in job.skipped]
        self.summary.unmatched_prompts = list(job.unmatched)
        self._since_save = 0
        self._late_skips = 0
        self._started = time.perf_counter()
        self._working_since, self._last_event = None, None
        self._cancel.clear()
        self.report.clear()
        self.progress_bar.setRange(0, max(1, len(job.todo)))
        self.progress_bar.setValue(0)
        if not job.todo:
            self._finish(False)
            return
        self.status.setText(f"Loading the model for {len(job.todo)} images…")
        self._worker = BatchWorker(job, self.factory, self._cancel)
        self._thread = worker_thread(self, self._worker)
        self._worker.progress.connect(self._on_progress)
        self._worker.result_ready.connect(self._on_result)
        self._worker.image_failed.connect(self._on_failed)
        self._worker.load_failed.connect(self._on_load_failed)
        self._worker.finished.connect(self._finish)
        self._set_running(True)
        self._clock.start()
        self._thread.start()

    def cancel(self) -> None:
        """Stop after the current decoder batch; finished images stay labelled."""
        if self.running:
            self._cancel.set()
            self.status.setText("Stopping after the current step…")

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        for widget in (
            self.mode,
            self.prompt_row,
            self.images_json,
            self.overwrite,
            self.replace_manual,
            self.grid_box,
            self.min_score,
            self.refine_boxes,
        ):
            widget.setEnabled(not running)
        if not running:
            self._mode_changed()

    def _done_count(self) -> int:
        summary = self.summary
        return 0 if summary is None else summary.labelled + len(summary.failed) + self._late_skips

    @Slot(object)
    def _on_progress(self, event: BatchProgress) -> None:
        if self._working_since is None:
            self._working_since = time.perf_counter()
        self._last_event = event
        self._show_progress()

    def _show_progress(self) -> None:
        """The image being labelled, the time elapsed and an estimate of the time left (also refreshed
        every second, as an image can take long)."""
        event = self._last_event
        if event is None or not self.running or self._cancel.is_set():  # keep "Stopping…" in view
            return
        step = f" — {event.step[0]}/{event.step[1]} points" if event.step else ""
        self.status.setText(f"{event.path}{step} — {self.timing()}")

    def timing(self) -> str:
        """``"0:42 elapsed, about 1:10 left (12.5 images/min)"``; the estimate once some work is done."""
        now = time.perf_counter()
        text = f"{_clock_text(now - self._started)} elapsed"
        event, total = self._last_event, len(self.job.todo) if self.job is not None else 0
        done = float(self._done_count())
        if event is not None and event.step and event.step[1]:
            done += min(event.step[0] / event.step[1], 1.0)  # the share of the current image
        if self._working_since is None or done <= 0 or total <= 0:
            return text
        per_image = (now - self._working_since) / done
        left = max(total - done, 0.0) * per_image
        return f"{text}, about {_clock_text(left)} left ({60.0 / per_image:.1f} images/min)"

    @Slot(object)
    def _on_result(self, result: ImageResult) -> None:
        summary, job = self.summary, self.job
        document = self.session.document
        record = document.image(result.image_id)
        reason = job.skip_reason(record)
        if reason is not None:  # labelled by hand while the batch ran: keep the user's work
            summary.skipped.append((record.path, f"labelled during the run: {reason}"))
            self._late_skips += 1
        else:
            command = job.apply_command(result)
            if self.session.push(command):
                summary.labelled += 1
                summary.instances_added += command.counts.added
                summary.instances_removed += command.counts.removed_ai + command.counts.removed_manual
                summary.manual_removed += command.counts.removed_manual
                summary.reviewed_relabelled += command.counts.reviewed
                summary.empty_masks += result.empty
                summary.skipped_prompts += result.skipped_prompts
                summary.notes.extend(result.notes)
                self._since_save += 1
            else:
                summary.failed.append(ImageFailure(record.path, "the result could not be added"))
        self.progress_bar.setValue(self._done_count())
        if self._since_save >= job.params.save_every:
            self._save()
            self._since_save = 0

    @Slot(str, str)
    def _on_failed(self, path: str, reason: str) -> None:
        self.summary.failed.append(ImageFailure(path, reason))
        self.status.setText(f"failed: {path}: {reason}")
        self.progress_bar.setValue(self._done_count())

    @Slot(str)
    def _on_load_failed(self, message: str) -> None:
        self.summary.notes.insert(0, f"the model could not be loaded: {message}")
        self.summary.not_labelled = len(self.job.todo) if self.job is not None else 0
        self.summary.not_labelled_reason = "the model could not be loaded (see the note)"

    @Slot(bool)
    def _finish(self, cancelled: bool) -> None:
        self._clock.stop()
        if self._thread is not None:
            end_worker_thread(self._thread)
            self._thread, self._worker = None, None
        summary = self.summary
        if summary is not None:
            summary.cancelled = cancelled
            summary.seconds = time.perf_counter() - self._started
            left = len(self.job.todo) - self._done_count() if self.job is not None else 0
            if cancelled and left > 0:
                summary.not_labelled, summary.not_labelled_reason = left, "cancelled"
            if self.session.document.dirty and self._save() is False:
                summary.notes.append("the project could not be saved; the results are in the open project")
            self.report.setPlainText(str(summary))
            loaded = not any(n.startswith("the model could not be loaded") for n in summary.notes)
            self.status.setText("Cancelled" if cancelled else "Finished" if loaded else "Model not loaded")
        self._set_running(False)
        if self._close_when_done:
            self._close_when_done = False
            super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        """Closing while running cancels first and closes when the worker has stopped."""
        if not defer_close_while_running(self, event):
            super().closeEvent(event)

    def reject(self) -> None:
        """Close, Escape and the window's close button: when running, cancel first and close after."""
        if self.running:
            self._close_when_done = True
            self.cancel()
            return
        super().reject()


def _clock_text(seconds: float) -> str:
    """``"0:07"``, ``"12:30"``, ``"1:02:03"``."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _spin(low: int, high: int, value: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    return box


def _double(low: float, high: float, value: float, step: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setDecimals(2)
    box.setSingleStep(step)
    box.setValue(value)
    return box
