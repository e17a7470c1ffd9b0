"""The engine service: the only place where the GUI reaches the model, always off the GUI thread.

Every torch call of the app happens in the worker's thread. Besides keeping the window responsive,
this keeps torch's OpenMP threads at one team: once a second thread has run a parallel torch
operation, libgomp manages more threads than a small machine's cores and lets idle workers sleep at
once, and each parallel operation of the engine then waits for one to wake (a click's decode went
from 11 to 17.6 ms on a 2-core machine; ``benchmarks/README.md``).

:class:`EngineWorker` lives in a ``QThread``; it loads the predictor, encodes images and decodes
prompts. :class:`EngineService` is its facade on the GUI thread: every call returns a request id at
once, the work is queued to the worker, and answers come back as signals carrying that id. Answers
to requests that a newer request has superseded are dropped (on the worker before the work starts
when possible, and again on the GUI side), so a fast user never sees an old mask.

When the worker is idle it encodes the next images of the list (``precompute``) through the
engine's embedding cache (``CachedPredictor.cache_image``), so switching to them is instant. The
user's own requests (encoding the shown image, decoding prompts) always go first: a precompute job
never starts while one of them is sent and not yet taken up by the worker, nor within
``PRECOMPUTE_PAUSE_SECONDS`` after one ended (the user who just got an image or a mask is likely to
click again, and the answer to ``image_ready`` is a prompt). An encode already under way, precompute
or not, runs to its end: the encoder cannot be interrupted.

A box that marks a small part of a large image is segmented again in a cut around it
(:meth:`EngineService.refine`, ``engine/crop_refine.py``): the worker encodes the cut, decodes the
prompt there and puts the image's own embedding back; a new prompt or image supersedes the request.

Hover previews (:meth:`EngineService.hover`: the mask a click would give under the resting cursor) are
user requests too, but never ahead of a click: a prompt or a new image supersedes every hover request
queued before it, and a hover failure is not reported (the click itself reports it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal

from efficientsam_studio.gui.engine_worker import (
    PRECOMPUTE_PAUSE_SECONDS,
    EngineConfig,
    EngineInfo,
    EngineWorker,
    ImageReader,
    PendingRequests,
    Predictor,
    PredictorLoader,
    RequestTracker,
    default_loader,
    default_reader,
)
from efficientsam_studio.gui.prediction import Prediction

__all__ = [
    "PRECOMPUTE_PAUSE_SECONDS",
    "EngineConfig",
    "EngineInfo",
    "EngineService",
    "EngineWorker",
    "PendingRequests",
    "Predictor",
    "RequestTracker",
    "default_loader",
    "default_reader",
]


class EngineService(QObject):
    """GUI-thread facade of :class:`EngineWorker`. Signals carry only current answers."""

    loaded = Signal(object)  # EngineInfo
    load_failed = Signal(str)
    encode_started = Signal(str)  # image key
    image_ready = Signal(str)
    prediction_ready = Signal(object)  # Prediction
    hover_ready = Signal(object)  # Prediction of the hovered pixel
    refined_ready = Signal(object)  # Prediction of a box segmented again in a cut, placed in the image
    failed = Signal(str)
    precompute_progress = Signal(int, int)

    _do_load = Signal(object)
    _do_set_image = Signal(int, str, object)
    _do_predict = Signal(int, str, object)
    _do_hover = Signal(int, str, object)
    _do_refine = Signal(int, str, object, object)
    _do_precompute = Signal(object)

    def __init__(
        self,
        loader: PredictorLoader = default_loader,
        reader: ImageReader = default_reader,
        parent: QObject | None = None,
        precompute_pause: float = PRECOMPUTE_PAUSE_SECONDS,
    ) -> None:
        super().__init__(parent)
        self.loader = loader  # also loads the batch dialog's own predictor
        self._tracker = RequestTracker()
        self._pending = PendingRequests()
        self._thread = QThread()
        self._thread.setObjectName("efsam-engine")
        self._worker = EngineWorker(self._tracker, loader, reader, self._pending, precompute_pause)
        self._worker.moveToThread(self._thread)
        self._thread.finished.connect(self._worker.deleteLater)
        self._do_load.connect(self._worker.load)
        self._do_set_image.connect(self._worker.set_image)
        self._do_predict.connect(self._worker.predict)
        self._do_hover.connect(self._worker.hover)
        self._do_refine.connect(self._worker.refine)
        self._do_precompute.connect(self._worker.precompute)
        self._worker.loaded.connect(self._on_loaded)
        self._worker.load_failed.connect(self._on_load_failed)
        self._worker.encode_started.connect(self._on_encode_started)
        self._worker.image_ready.connect(self._on_image_ready)
        self._worker.prediction_ready.connect(self._on_prediction)
        self._worker.hover_ready.connect(self._on_hover)
        self._worker.refined_ready.connect(self._on_refined)
        self._worker.failed.connect(self._on_failed)
        self._worker.precompute_progress.connect(self.precompute_progress)
        self._info: EngineInfo | None = None
        self.failure_kind = ""  # of the last failed load (model_loading.failure_kind), "" after a success
        self._loading = False
        self._ready_key: str | None = None
        self._thread.start()

    # ----- state -----
    @property
    def info(self) -> EngineInfo | None:
        """The loaded model, or None while no model is loaded."""
        return self._info

    @property
    def is_loading(self) -> bool:
        return self._loading

    def is_ready_for(self, key: str) -> bool:
        """True when image ``key`` is encoded and prompts are answered right away."""
        return self._info is not None and self._ready_key == key

    # ----- requests -----
    def load_model(self, config: EngineConfig) -> None:
        """Load another predictor; answers of the previous one still on their way are dropped."""
        self._loading = True
        self._info = None
        self._ready_key = None
        for kind in ("predict", "hover", "refine"):
            self._tracker.new(kind)
        self._do_load.emit(config)

    def set_image(self, key: str, image: np.ndarray) -> int:
        """Encode ``image`` (H, W, 3) uint8 RGB under ``key``; newer calls supersede older ones."""
        self._ready_key = None
        request_id = self._tracker.new("image")
        self._tracker.new("predict")  # prompts of the previous image are stale now
        self._tracker.new("hover")
        self._tracker.new("refine")
        self._pending.sent()
        self._do_set_image.emit(request_id, key, image)
        return request_id

    def predict(self, key: str, kwargs: dict) -> int:
        """Decode prompts (``Predictor.predict`` keyword arguments) on image ``key``."""
        request_id = self._tracker.new("predict")
        self._tracker.new("hover")  # hover requests queued before a prompt are not run before it
        self._tracker.new("refine")  # nor a cut of the prompt before
        self._pending.sent()
        self._do_predict.emit(request_id, key, kwargs)
        return request_id

    def hover(self, key: str, kwargs: dict) -> int:
        """Decode the prompt a click would make (``Predictor.predict`` keyword arguments) on image
        ``key`` for a preview, only if that image is encoded; the answer is :attr:`hover_ready`."""
        request_id = self._tracker.new("hover")
        self._pending.sent()
        self._do_hover.emit(request_id, key, kwargs)
        return request_id

    def refine(self, key: str, kwargs: dict, crop: tuple[int, int, int, int]) -> int:
        """Segment the prompt (``Predictor.predict`` keyword arguments) of image ``key`` again in the cut
        ``crop`` (x0, y0, x1, y1; see ``engine/crop_refine.py``); the answer is :attr:`refined_ready`."""
        request_id = self._tracker.new("refine")
        self._pending.sent()
        self._do_refine.emit(request_id, key, kwargs, crop)
        return request_id

    def cancel_hover(self) -> None:
        """Drop the answers of every hover request sent so far."""
        self._tracker.new("hover")

    def cancel_predictions(self) -> None:
        """Drop the answers of every prediction asked so far (for example after Esc)."""
        self._tracker.new("predict")
        self._tracker.new("refine")

    def precompute(self, items: Sequence[tuple[str, Path]]) -> None:
        """Encode these images (key, path) in the background when the worker is idle (module docstring)."""
        self._do_precompute.emit(list(items))

    def shutdown(self) -> None:
        """Stop the worker thread (waits for the current encode to end)."""
        if self._thread.isRunning():
            for kind in ("image", "predict", "hover", "refine"):
                self._tracker.new(kind)
            self._do_precompute.emit([])
            self._thread.quit()
            self._thread.wait()

    # ----- answers -----
    def _on_loaded(self, info: EngineInfo) -> None:
        self._loading = False
        self.failure_kind = ""
        self._info = info
        self.loaded.emit(info)

    def _on_load_failed(self, message: str, kind: str = "other") -> None:
        self._loading = False
        self.failure_kind = kind
        self.load_failed.emit(message)

    def _on_encode_started(self, request_id: int, key: str) -> None:
        if self._tracker.is_current("image", request_id):
            self.encode_started.emit(key)

    def _on_image_ready(self, request_id: int, key: str) -> None:
        if self._tracker.is_current("image", request_id):
            self._ready_key = key
            self.image_ready.emit(key)

    def _on_prediction(self, request_id: int, prediction: Prediction) -> None:
        if self._tracker.is_current("predict", request_id):
            self.prediction_ready.emit(prediction)

    def _on_hover(self, request_id: int, prediction: Prediction) -> None:
        if self._tracker.is_current("hover", request_id):
            self.hover_ready.emit(prediction)

    def _on_refined(self, request_id: int, prediction: Prediction) -> None:
        if self._tracker.is_current("refine", request_id):
            self.refined_ready.emit(prediction)

    def _on_failed(self, request_id: int, message: str) -> None:
        if any(self._tracker.is_current(kind, request_id) for kind in ("image", "predict", "refine")):
            self.failed.emit(message)
