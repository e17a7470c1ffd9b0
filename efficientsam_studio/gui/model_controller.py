"""Loading the model from the settings, and the first-run path when no weights are installed.

The model loads in the engine worker. When it cannot load (no weights installed, a bad file), the
app keeps running without AI: the status bar says so, and the first use of the AI tool opens
:class:`WeightsOfferDialog` (download a published model with a cancellable progress dialog, or pick
a checkpoint / ONNX file). Success reloads the model; the manual tools work throughout.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QDialog, QMessageBox, QWidget

from efficientsam_studio.gui.dialogs.weights import (
    Choice,
    WeightsDownload,
    WeightsOfferDialog,
    looks_like_onnx,
    pick_weights_file,
)
from efficientsam_studio.gui.engine_service import EngineConfig, EngineInfo, EngineService
from efficientsam_studio.gui.settings import StudioSettings, save_settings


class ModelController(QObject):
    """Owns the load / offer / download cycle for one :class:`EngineService`."""

    status = Signal(str)
    model_changed = Signal(object)  # EngineInfo or None

    def __init__(self, engine: EngineService, settings: StudioSettings, parent: QWidget) -> None:
        super().__init__(parent)
        self.engine = engine
        self.settings = settings
        self.window = parent
        self.last_error = ""
        self.download: WeightsDownload | None = None
        engine.loaded.connect(self._on_loaded)
        engine.load_failed.connect(self._on_failed)

    def config(self) -> EngineConfig:
        s = self.settings
        return EngineConfig(
            model=s.model,
            checkpoint=s.checkpoint or None,
            backend=s.backend,
            device=s.device,
            cache_mb=s.cache_mb,
        )

    def load(self) -> None:
        self.last_error = ""
        self.status.emit(f"Loading model {self.settings.model}…")
        self.engine.load_model(self.config())

    def _on_loaded(self, info: EngineInfo) -> None:
        self.status.emit(f"Model {info.model} ready ({info.backend}, {info.device}).")
        self.model_changed.emit(info)

    def _on_failed(self, message: str) -> None:
        self.last_error = message
        self.status.emit(f"No model: {message} The polygon, brush and eraser tools work without one.")
        self.model_changed.emit(None)

    # ----- first run without weights -----
    def offer_weights(self) -> Choice:
        """Show the weights offer (called when the AI tool is used without a model) and act on it."""
        if self.engine.is_loading or self.download is not None:
            return Choice.NOT_NOW
        dialog = WeightsOfferDialog(self.settings.model, self.last_error, self.window)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return Choice.NOT_NOW
        if dialog.choice is Choice.DOWNLOAD:
            self.start_download(dialog.model)
        elif dialog.choice is Choice.PICK_FILE:
            path = pick_weights_file(self.window)
            if not path:
                return Choice.NOT_NOW
            self.use_file(path)
        return dialog.choice

    def start_download(self, model: str) -> WeightsDownload:
        """Download ``model`` in a worker thread behind a cancellable progress dialog."""
        self.download = WeightsDownload(model, self.window)
        self.download.finished.connect(lambda _path: self._download_done(model))
        self.download.failed.connect(self._download_failed)
        self.download.cancelled.connect(self._download_cancelled)
        self.download.start()
        return self.download

    def use_file(self, path: str) -> None:
        """Use a checkpoint or ONNX file from now on (saved in the settings) and load it."""
        self.settings.checkpoint = path
        if looks_like_onnx(path) and not self.settings.backend.startswith("onnx"):
            self.settings.backend = "onnx"
        save_settings(self.settings)
        self.load()

    def _download_done(self, model: str) -> None:
        self.download = None
        self.settings.model = model
        self.settings.checkpoint = ""
        save_settings(self.settings)
        self.load()

    def _download_failed(self, message: str) -> None:
        self.download = None
        self.status.emit(message)
        QMessageBox.warning(self.window, "Download failed", message)

    def _download_cancelled(self) -> None:
        self.download = None
        self.status.emit("Download cancelled; the partial file is kept and the next download resumes it.")
