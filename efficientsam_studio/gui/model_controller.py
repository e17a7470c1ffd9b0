"""Loading the model from the settings, and the first-run path when no weights are installed.

The model loads in the engine worker. When it cannot load (no weights installed, a bad file), the
app keeps running without AI: the status bar says so, and the first use of the AI tool opens
:class:`WeightsOfferDialog` (download a published model with a cancellable progress dialog, or pick
a checkpoint / ONNX file). Success reloads the model; the manual tools work throughout.
"""

from __future__ import annotations

import dataclasses

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
from efficientsam_studio.gui.model_loading import FILE, MISSING, gui_download_text, gui_failure_text
from efficientsam_studio.gui.settings import MODELS, StudioSettings, save_settings

NO_MODEL_NOTE = "The polygon, brush and eraser tools work without one."


class ModelController(QObject):
    """Owns the load / offer / download cycle for one :class:`EngineService`."""

    status = Signal(str)
    model_changed = Signal(object)  # EngineInfo or None

    def __init__(self, engine: EngineService, settings: StudioSettings, parent: QWidget) -> None:
        super().__init__(parent)
        self.engine = engine
        self.settings = settings
        self.window = parent
        self.last_error = ""  # the message for the user about the last failed load
        self.last_kind = ""  # its kind (model_loading.failure_kind)
        self.download: WeightsDownload | None = None
        self._trial: StudioSettings | None = None  # a picked file's settings, saved once it has loaded
        self._restore_after_trial = False  # a model was loaded before the trial: back to it on failure
        engine.loaded.connect(self._on_loaded)
        engine.load_failed.connect(self._on_failed)

    def config(self, settings: StudioSettings | None = None) -> EngineConfig:
        s = settings or self.settings
        return EngineConfig(
            model=s.model,
            checkpoint=s.checkpoint or None,
            backend=s.backend,
            device=s.device,
            cache_mb=s.cache_mb,
            model_from_file=s is self._trial,
        )

    def load(self) -> None:
        self.last_error, self.last_kind = "", ""
        self._trial = None
        self.status.emit(f"Loading model {self.settings.model}…")
        self.engine.load_model(self.config())

    def _on_loaded(self, info: EngineInfo) -> None:
        notes = []
        trial, self._trial = self._trial, None
        if trial is not None:  # the picked file works: it becomes the setting
            if info.model in MODELS and info.model != trial.model:
                notes.append(
                    f"The file holds a {info.model} checkpoint, so the model setting is now {info.model}."
                )
                trial.model = info.model
            for field in ("model", "checkpoint", "backend"):
                setattr(self.settings, field, getattr(trial, field))
            save_settings(self.settings)
        if self.settings.device.startswith("cuda") and "cuda" not in info.device.lower():
            notes.append(
                "CUDA is not available on this machine, so the model runs on the CPU (Settings → Device)."
            )
        self.status.emit(" ".join([f"Model {info.model} ready ({info.backend}, {info.device}).", *notes]))
        self.model_changed.emit(info)

    def _on_failed(self, message: str) -> None:
        trial, self._trial = self._trial, None
        self.last_kind = self.engine.failure_kind
        self.last_error = gui_failure_text(self.last_kind, message, self.config(trial))
        if trial is not None:
            restore = self._restore_after_trial
            note = "The settings are unchanged" + ("; loading the previous model again." if restore else ".")
            text = f"{self.last_error} {note}"
            self.status.emit(text)
            self.model_changed.emit(None)
            if restore:
                self.load()
            QMessageBox.warning(self.window, "Cannot use this file", text)
            return
        self.status.emit(f"No model: {self.last_error} {NO_MODEL_NOTE}")
        self.model_changed.emit(None)

    # ----- first run without weights -----
    def offer_weights(self) -> Choice:
        """What to do about the missing model (called when the AI tool is used without one): get weights
        when they are what is missing, else say what to change in Settings."""
        if self.engine.is_loading or self.download is not None:
            return Choice.NOT_NOW
        if self.last_kind not in ("", MISSING, FILE):
            self.status.emit(f"No model: {self.last_error}")
            QMessageBox.warning(self.window, "Model not loaded", self.last_error)
            return Choice.NOT_NOW
        reason = self.last_error or "No model is loaded."
        dialog = WeightsOfferDialog(self.settings.model, reason, self.window)
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
        """Load a checkpoint or ONNX file; it is saved in the settings once it has loaded (as the model
        it holds), and the settings stay as they were when it cannot be used."""
        trial = dataclasses.replace(self.settings, checkpoint=path)
        if looks_like_onnx(path) and not trial.backend.startswith("onnx"):
            trial.backend = "onnx"
        elif not looks_like_onnx(path) and trial.backend.startswith("onnx"):
            trial.backend = "auto"  # ONNX Runtime does not read checkpoints
        self._restore_after_trial = self.engine.info is not None
        self.last_error, self.last_kind = "", ""
        self._trial = trial
        self.status.emit(f"Loading {path}…")
        self.engine.load_model(self.config(trial))

    def _download_done(self, model: str) -> None:
        self.download = None
        self.settings.model = model
        self.settings.checkpoint = ""
        save_settings(self.settings)
        self.load()

    def _download_failed(self, message: str) -> None:
        self.download = None
        message = gui_download_text(message)
        self.status.emit(message)
        QMessageBox.warning(self.window, "Download failed", message)

    def _download_cancelled(self) -> None:
        self.download = None
        self.status.emit("Download cancelled; the partial file is kept and the next download resumes it.")
