"""The engine worker: loads the predictor, encodes images and decodes prompts in its own thread.

:class:`EngineWorker` is driven by :class:`~efficientsam_studio.gui.engine_service.EngineService`
through queued signals only (see that module for the rules: requests superseded by newer ones, user
requests before background precompute, hover previews never before a click, cuts of small boxes).
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal, Slot

from efficientsam_studio.engine.prompts import Prompt
from efficientsam_studio.errors import StudioError
from efficientsam_studio.gui.prediction import Prediction


class Predictor(Protocol):
    """The engine's predictor protocol (see ``efficientsam_studio.engine.load_predictor``).

    Predictors that also have ``predict_batch`` (every engine backend) are asked for low-resolution
    logits, and only the best candidate is upsampled before the answer goes out (see ``prediction.py``).
    """

    def set_image(self, image: np.ndarray) -> None: ...

    def predict(self, point_coords=None, point_labels=None, box=None, multimask_output: bool = True): ...


@dataclass(frozen=True)
class EngineConfig:
    """What to load: model name, checkpoint path (or None for the installed weights), backend, device."""

    model: str = "vit_t"
    checkpoint: str | None = None
    backend: str = "auto"
    device: str = "auto"
    cache_mb: int = 1024
    model_from_file: bool = False  # a checkpoint of another architecture loads as that model


@dataclass(frozen=True)
class EngineInfo:
    """What was loaded, for the status bar."""

    model: str
    backend: str
    device: str


PRECOMPUTE_PAUSE_SECONDS = 1.0  # a precompute job starts no sooner after a user request (module docstring)

PredictorLoader = Callable[[EngineConfig], Any]
ImageReader = Callable[[Path], np.ndarray]


def default_loader(config: EngineConfig) -> Any:
    """Load a predictor through the engine (imported here, in the worker thread, never at GUI start)."""
    from efficientsam_studio.gui.model_loading import load_for_app

    predictor = load_for_app(config)  # CUDA missing: the CPU; see model_loading
    try:
        from efficientsam_studio.engine.cache import CachedPredictor, EmbeddingCache
    except ImportError:
        return predictor
    return CachedPredictor(predictor, EmbeddingCache.default(memory_bytes=config.cache_mb * 2**20))


def default_reader(path: Path) -> np.ndarray:
    from efficientsam_studio.annotations.images import load_image

    return load_image(path)


class RequestTracker:
    """The newest request id of each kind, shared by the GUI facade and the worker (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0
        self._latest: dict[str, int] = {}

    def new(self, kind: str) -> int:
        with self._lock:
            self._next += 1
            self._latest[kind] = self._next
            return self._next

    def is_current(self, kind: str, request_id: int) -> bool:
        with self._lock:
            return self._latest.get(kind) == request_id


class PendingRequests:
    """How many user requests the GUI has sent that the worker has not taken up yet (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def sent(self) -> None:
        with self._lock:
            self._count += 1

    def taken(self) -> None:
        with self._lock:
            self._count = max(0, self._count - 1)

    def __bool__(self) -> bool:
        with self._lock:
            return self._count > 0


def _describe(exc: BaseException) -> str:
    if isinstance(exc, StudioError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class EngineWorker(QObject):
    """Runs in the worker thread. Its slots are called through queued signals only.

    ``pending`` counts the user requests (``set_image``, ``predict``) sent to it and not yet taken up;
    precompute jobs wait while it is non-zero and for ``pause_seconds`` after each user request.
    """

    loaded = Signal(object)  # EngineInfo
    load_failed = Signal(str, str)  # message, kind (model_loading.failure_kind)
    encode_started = Signal(int, str)  # request id, image key
    image_ready = Signal(int, str)
    prediction_ready = Signal(int, object)  # request id, Prediction
    hover_ready = Signal(int, object)  # request id, Prediction
    refined_ready = Signal(int, object)  # request id, Prediction placed in the whole image
    failed = Signal(int, str)  # request id, message
    precompute_progress = Signal(int, int)  # done, total

    def __init__(
        self,
        tracker: RequestTracker,
        loader: PredictorLoader,
        reader: ImageReader,
        pending: PendingRequests | None = None,
        pause_seconds: float = PRECOMPUTE_PAUSE_SECONDS,
    ) -> None:
        super().__init__()
        self._tracker = tracker
        self._loader = loader
        self._reader = reader
        self._pending = pending if pending is not None else PendingRequests()
        self._pause_ms = max(0, int(pause_seconds * 1000))
        self._predictor: Any = None
        self._image_key: str | None = None
        self._image: np.ndarray | None = None  # the current image's pixels, for cuts of it
        self._cut: tuple[str, tuple, np.ndarray] | None = None  # image key, crop, embedding of the last cut
        self._queue: list[tuple[str, Path]] = []
        self._queue_total = 0
        self._queue_done = 0
        self._next_job = QTimer(self)  # moves to the worker thread with its parent
        self._next_job.setSingleShot(True)
        self._next_job.timeout.connect(self._precompute_next)

    @Slot(object)
    def load(self, config: EngineConfig) -> None:
        self._predictor = None
        self._image_key = None
        self._image = None
        self._cut = None
        try:
            predictor = self._loader(config)
        except Exception as exc:  # reported to the user; the GUI stays usable without a model
            from efficientsam_studio.gui.model_loading import failure_kind

            self.load_failed.emit(_describe(exc), failure_kind(exc, config))
            return
        from efficientsam_studio.engine.loader import predictor_device

        self._predictor = predictor
        self.loaded.emit(
            EngineInfo(
                model=str(getattr(predictor, "model_name", config.model)),
                backend=str(getattr(predictor, "backend", config.backend)),
                device=predictor_device(predictor),  # what "auto" resolved to
            )
        )

    @Slot(int, str, object)
    def set_image(self, request_id: int, key: str, image: np.ndarray) -> None:
        self._pending.taken()
        try:
            self._set_image(request_id, key, image)
        finally:
            self._schedule_precompute(self._pause_ms)

    def _set_image(self, request_id: int, key: str, image: np.ndarray) -> None:
        if not self._tracker.is_current("image", request_id):
            return  # the user has moved on to another image already
        if self._predictor is None:
            self.failed.emit(request_id, "No model is loaded.")
            return
        if self._image_key == key:
            self.image_ready.emit(request_id, key)
            return
        self.encode_started.emit(request_id, key)
        try:
            self._predictor.set_image(image)
            prepare = getattr(self._predictor, "prepare_decoding", None)
            if prepare is not None:  # the decoder's per-image work, before the first click needs it
                prepare()
        except Exception as exc:
            self._image_key = None
            self.failed.emit(request_id, _describe(exc))
            return
        self._image_key = key
        self._image = image
        self.image_ready.emit(request_id, key)

    @Slot(int, str, object)
    def predict(self, request_id: int, key: str, kwargs: dict) -> None:
        self._pending.taken()
        try:
            self._predict(request_id, key, kwargs)
        finally:
            self._schedule_precompute(self._pause_ms)

    def _predict(self, request_id: int, key: str, kwargs: dict) -> None:
        if not self._tracker.is_current("predict", request_id):
            return  # a newer prompt is queued behind this one
        if self._predictor is None or self._image_key != key:
            self.failed.emit(request_id, "The image is not encoded yet.")
            return
        try:
            prediction = self._decode(key, kwargs)
        except Exception as exc:
            traceback.print_exc()
            self.failed.emit(request_id, _describe(exc))
            return
        self.prediction_ready.emit(request_id, prediction)
        # the other candidates after the queued requests (Tab shows them at once, or makes them itself)
        QTimer.singleShot(0, lambda: self._fill(request_id, prediction))

    @Slot(int, str, object)
    def hover(self, request_id: int, key: str, kwargs: dict) -> None:
        self._pending.taken()
        try:
            if not self._tracker.is_current("hover", request_id):
                return  # the cursor moved on, or a click came first
            if self._predictor is None or self._image_key != key:
                return  # a hover preview never starts an encode
            try:
                prediction = self._decode(key, kwargs)
            except Exception:
                return  # the same prompt, clicked, reports the failure
            self.hover_ready.emit(request_id, prediction)
        finally:
            self._schedule_precompute(self._pause_ms)

    @Slot(int, str, object, object)
    def refine(self, request_id: int, key: str, kwargs: dict, crop: tuple) -> None:
        self._pending.taken()
        try:
            self._refine(request_id, key, kwargs, crop)
        finally:
            self._schedule_precompute(self._pause_ms)

    def _refine(self, request_id: int, key: str, kwargs: dict, crop: tuple) -> None:
        if not self._tracker.is_current("refine", request_id):
            return  # a newer prompt or image came first
        image, predictor = self._image, self._predictor
        if predictor is None or self._image_key != key or image is None:
            return
        from efficientsam_studio.engine.crop_refine import WholeImageLost, cut_current, prompt_in_crop

        try:
            with cut_current(predictor, image, crop, lambda cut: self._cut_embedding(key, crop, cut)):
                prediction = self._decode(key, prompt_in_crop(kwargs, crop))
        except WholeImageLost as exc:
            self._image_key = None  # the next prompt reports that the image is not encoded
            self.failed.emit(request_id, _describe(exc))
            return
        except Exception as exc:
            self.failed.emit(request_id, _describe(exc))
            return
        self.refined_ready.emit(request_id, prediction.in_image(crop, image.shape[:2]))

    def _cut_embedding(self, key: str, crop: tuple, cut: np.ndarray) -> np.ndarray:
        """The embedding of the cut ``crop`` of image ``key``: the last cut's is kept, so points added to
        the same box decode without encoding it again."""
        if self._cut is not None and self._cut[:2] == (key, tuple(crop)):
            return self._cut[2]
        from efficientsam_studio.engine.cache import embedding_to_numpy

        embedding = embedding_to_numpy(self._predictor.encode_image(cut))
        self._cut = (key, tuple(crop), embedding)
        return embedding

    def _decode(self, key: str, kwargs: dict) -> Prediction:
        """One prompt's candidates, with the best one's full-size mask made."""
        predictor = self._predictor
        if hasattr(predictor, "predict_batch"):  # every engine predictor: low-res logits, no upsampling
            batch = predictor.predict_batch(prompts=[Prompt(**kwargs)], return_masks=False)
            prediction = Prediction.from_logits(
                key, batch.low_res_logits[0], batch.scores[0], predictor.original_size
            )
            prediction.mask(0)
            return prediction
        masks, scores, _ = predictor.predict(multimask_output=True, **kwargs)
        return Prediction.from_masks(key, masks, scores)

    def _fill(self, request_id: int, prediction: Prediction) -> None:
        if self._tracker.is_current("predict", request_id):
            prediction.fill()

    @Slot(object)
    def precompute(self, items: list[tuple[str, Path]]) -> None:
        """Replace the background queue with ``items`` (image key, path), nearest first; the first job
        starts after the pause that follows a user request."""
        self._queue = list(items)
        self._queue_total = len(items)
        self._queue_done = 0
        if self._queue:
            self._schedule_precompute(self._pause_ms)
        else:
            self._next_job.stop()

    def _schedule_precompute(self, delay_ms: int) -> None:
        """Run the next precompute job after ``delay_ms`` (a later call restarts the wait)."""
        if self._queue:
            self._next_job.start(delay_ms)

    def _precompute_next(self) -> None:
        # One image per turn of the worker's event loop. While a user request is on its way the job
        # waits: that request's slot schedules the next job when it ends.
        if not self._queue or self._predictor is None or self._pending:
            return
        warm = getattr(self._predictor, "cache_image", None)
        if warm is None:
            self._queue = []  # without an embedding cache there is nowhere to keep the result
            return
        key, path = self._queue.pop(0)
        try:
            warm(self._reader(path))
        except Exception:
            pass  # a bad file is reported when the user opens it; precompute is best effort
        self._queue_done += 1
        self.precompute_progress.emit(self._queue_done, self._queue_total)
        self._schedule_precompute(0)
