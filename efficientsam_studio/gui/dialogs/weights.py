"""First run without weights: offer a download of a published model or a file of the user's.

:class:`WeightsOfferDialog` asks what to do; :class:`WeightsDownload` runs the weights manager's
download in a worker thread behind a cancellable ``QProgressDialog`` (Cancel sets the manager's
cancel event; the partial file is kept by the manager for a later resume). Manual tools stay usable
the whole time: nothing here blocks the event loop.
"""

from __future__ import annotations

import enum
import html
import threading
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot
from PySide6.QtWidgets import QDialog, QFileDialog, QLabel, QProgressDialog, QPushButton, QVBoxLayout, QWidget

from efficientsam_studio.errors import StudioError
from efficientsam_studio.gui.icons import icon

PUBLISHED_MODELS = ("vit_t", "vit_s")


class Choice(enum.Enum):
    NOT_NOW = 0
    DOWNLOAD = 1
    PICK_FILE = 2


class WeightsOfferDialog(QDialog):
    """Explains that the AI tools need weights and offers: download ``model``, choose a file, not now."""

    def __init__(self, model: str, reason: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Model weights needed")
        self.choice = Choice.NOT_NOW
        self.model = model if model in PUBLISHED_MODELS else "vit_t"
        text = QLabel(
            f"<p>The AI tools need EfficientSAM weights. {html.escape(reason)}</p>"
            "<p>Download a published model, or choose a checkpoint (.pt) or an ONNX encoder file you have. "
            "The polygon, brush and eraser tools work without a model.</p>"
        )
        text.setWordWrap(True)
        self.download_button = QPushButton(icon("download"), f"Download {self.model}")
        self.file_button = QPushButton(icon("import"), "Choose a checkpoint or ONNX file…")
        later = QPushButton("Not now")
        self.download_button.clicked.connect(lambda: self._finish(Choice.DOWNLOAD))
        self.file_button.clicked.connect(lambda: self._finish(Choice.PICK_FILE))
        later.clicked.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        for button in (self.download_button, self.file_button, later):
            layout.addWidget(button)

    def _finish(self, choice: Choice) -> None:
        self.choice = choice
        self.accept()


def pick_weights_file(parent: QWidget | None) -> str:
    """Ask for a checkpoint or ONNX file; "" when cancelled."""
    path, _ = QFileDialog.getOpenFileName(
        parent, "Choose model weights", "", "EfficientSAM weights (*.pt *.pth *.zip *.onnx);;All files (*)"
    )
    return path


class _DownloadWorker(QObject):
    progress = Signal(int, int)  # bytes done, bytes total (0 = unknown)
    retrying = Signal(int, int, float, str)  # attempt, attempts, delay in s, reason
    finished = Signal(str)  # installed path
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, model: str, cancel: threading.Event) -> None:
        super().__init__()
        self._model = model
        self._cancel = cancel

    @Slot()
    def run(self) -> None:
        from efficientsam_studio.engine import weights

        def report(done: int, total: int | None = None, *_: object) -> None:
            self.progress.emit(int(done), int(total or 0))

        try:
            path = weights.download(
                self._model, progress=report, cancel=self._cancel, on_retry=self.retrying.emit
            )
        except StudioError as exc:
            if self._cancel.is_set():
                self.cancelled.emit()
            else:
                self.failed.emit(str(exc))
            return
        except OSError as exc:
            self.failed.emit(f"Downloading {self._model} failed: {exc}")
            return
        self.finished.emit(str(path))


class WeightsDownload(QObject):
    """Download ``model`` with a cancellable progress dialog; emits ``finished(path)``, ``failed(message)``
    or ``cancelled()``. Call :meth:`start`; the dialog is non-blocking (``show``, not ``exec``)."""

    finished = Signal(str)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, model: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.cancel_event = threading.Event()
        self.dialog = QProgressDialog(f"Downloading {model} weights…", "Cancel", 0, 0, parent)
        self.dialog.setWindowTitle("Downloading model")
        self.dialog.setAutoClose(False)
        self.dialog.setAutoReset(False)
        self.dialog.canceled.connect(self.cancel_event.set)
        self._thread = QThread()
        self._worker = _DownloadWorker(model, self.cancel_event)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.progress.connect(self._on_progress)
        self._worker.retrying.connect(self._on_retrying)
        # bound slots of this GUI-thread object: the calls are queued into the GUI thread
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_failed)
        self._worker.cancelled.connect(self._on_cancelled)

    def start(self) -> None:
        self.dialog.show()
        self._thread.start()

    def _on_progress(self, done: int, total: int) -> None:
        if total > 0:
            self.dialog.setMaximum(1000)
            self.dialog.setValue(int(1000 * done / total))
            self.dialog.setLabelText(
                f"Downloading {self.model}: {done / 2**20:.1f} of {total / 2**20:.1f} MiB"
            )
        else:
            self.dialog.setLabelText(f"Downloading {self.model}: {done / 2**20:.1f} MiB")

    @Slot(int, int, float, str)
    def _on_retrying(self, attempt: int, attempts: int, delay: float, reason: str) -> None:
        wait = f"in {delay:.0f} s" if delay >= 1 else "now"
        self.dialog.setLabelText(
            f"Downloading {self.model}: the connection failed ({reason}).\n"
            f"Trying again {wait} (attempt {attempt} of {attempts})…"
        )

    @Slot(str)
    def _on_finished(self, path: str) -> None:
        self._stop()
        self.finished.emit(path)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._stop()
        self.failed.emit(message)

    @Slot()
    def _on_cancelled(self) -> None:
        self._stop()
        self.cancelled.emit()

    def _stop(self) -> None:
        self._thread.quit()
        self._thread.wait()
        self.dialog.close()


def looks_like_onnx(path: str) -> bool:
    return Path(path).suffix.lower() == ".onnx"
