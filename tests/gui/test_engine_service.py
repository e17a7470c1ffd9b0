"""The engine service alone: answers carry request ids, superseded requests are dropped."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QTimer

from efficientsam_studio.gui.engine_service import EngineConfig, EngineService
from tests.gui.conftest import FakePredictor


class SlowPredictor(FakePredictor):
    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def set_image(self, image):
        self.threads.add(threading.get_ident())
        super().set_image(image)

    def predict(self, **kwargs):
        self.threads.add(threading.get_ident())
        time.sleep(0.05)
        return super().predict(**kwargs)


def test_only_the_newest_prediction_is_delivered(qtbot):
    predictor = SlowPredictor()
    service = EngineService(loader=lambda cfg: predictor)
    try:
        with qtbot.waitSignal(service.loaded, timeout=5000):
            service.load_model(EngineConfig(model="fake"))
        image = np.zeros((40, 60, 3), np.uint8)
        with qtbot.waitSignal(service.image_ready, timeout=5000):
            service.set_image("a", image)
        received = []
        service.prediction_ready.connect(received.append)
        for x in range(10, 60, 5):
            service.predict("a", {"point_coords": np.array([[x, 20.0]]), "point_labels": np.array([1])})
        qtbot.waitUntil(lambda: bool(received) and bool(received[-1].masks[0][20, 55]), timeout=5000)
        qtbot.wait(200)
        assert len(received) == 1  # nine superseded answers were never shown
        assert len(predictor.calls) < 10  # and most were skipped before the decoder ran
        assert threading.get_ident() not in predictor.threads  # the model never ran on the GUI thread
    finally:
        service.shutdown()


def test_answers_for_a_previous_image_are_dropped(qtbot):
    predictor = SlowPredictor()
    service = EngineService(loader=lambda cfg: predictor)
    try:
        with qtbot.waitSignal(service.loaded, timeout=5000):
            service.load_model(EngineConfig(model="fake"))
        service.set_image("a", np.zeros((40, 60, 3), np.uint8))
        service.predict("a", {"point_coords": np.array([[10.0, 10.0]]), "point_labels": np.array([1])})
        ready = []
        service.image_ready.connect(ready.append)
        service.set_image("b", np.zeros((30, 30, 3), np.uint8))  # the user moved on
        received = []
        service.prediction_ready.connect(received.append)
        qtbot.waitUntil(lambda: ready == ["b"], timeout=5000)
        qtbot.wait(200)
        assert received == [] and service.is_ready_for("b") and not service.is_ready_for("a")
    finally:
        service.shutdown()


def test_a_failing_load_is_reported_not_raised(qtbot):
    def broken(cfg):
        raise OSError("disk on fire")

    service = EngineService(loader=broken)
    try:
        with qtbot.waitSignal(service.load_failed, timeout=5000) as blocker:
            service.load_model(EngineConfig())
        assert "disk on fire" in blocker.args[0] and service.info is None
    finally:
        service.shutdown()


class OnnxLikePredictor(FakePredictor):
    """A predictor that, like the ONNX backend, names its execution providers instead of a device."""

    def __init__(self) -> None:
        super().__init__()
        del self.device
        self.backend = "onnx"
        self.providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_the_loaded_model_reports_the_device_in_use_not_the_setting(qtbot):
    from efficientsam_studio.engine.cache import CachedPredictor, EmbeddingCache, MemoryCache

    cached = CachedPredictor(OnnxLikePredictor(), EmbeddingCache(MemoryCache(2**20)), model_key="k")
    for predictor, device in (
        (FakePredictor(), "cpu"),
        (OnnxLikePredictor(), "onnx CUDA+CPU"),
        (cached, "onnx CUDA+CPU"),
    ):
        service = EngineService(loader=lambda cfg, p=predictor: p)
        try:
            with qtbot.waitSignal(service.loaded, timeout=5000) as blocker:
                service.load_model(EngineConfig(model="fake", device="auto"))
            assert blocker.args[0].device == device
        finally:
            service.shutdown()


class CachingPredictor(FakePredictor):
    """A predictor with an embedding cache: ``cache_image`` is as slow as an encode. ``events`` lists the
    worker's model calls in order: "encode <name>", "predict", "cache <name>", where ``name(image)`` names
    an image (by default the letter whose code is its first pixel value, see :func:`_image`)."""

    def __init__(self, seconds: float, name=None) -> None:
        super().__init__(encode_seconds=seconds)
        self.events: list[str] = []
        self.name = name or (lambda image: chr(int(image[0, 0, 0])))

    def set_image(self, image):
        self.events.append(f"encode {self.name(image)}")
        super().set_image(image)

    def predict(self, **kwargs):
        self.events.append("predict")
        return super().predict(**kwargs)

    def cache_image(self, image):
        self.events.append(f"cache {self.name(image)}")
        end = time.perf_counter() + self.encode_seconds
        while time.perf_counter() < end:
            np.dot(np.ones((64, 64)), np.ones((64, 64)))


def _image(name: str) -> np.ndarray:
    return np.full((40, 60, 3), ord(name), np.uint8)


def _read(path: Path) -> np.ndarray:
    return _image(path.stem)


def _upcoming(*names: str) -> list[tuple[str, Path]]:
    return [(name, Path(f"{name}.png")) for name in names]


def _service(predictor: CachingPredictor, qtbot) -> EngineService:
    service = EngineService(loader=lambda cfg: predictor, reader=_read)
    with qtbot.waitSignal(service.loaded, timeout=5000):
        service.load_model(EngineConfig(model="fake"))
    return service


def test_a_prompt_right_after_the_image_is_encoded_goes_before_precompute(qtbot):
    predictor = CachingPredictor(seconds=0.4)
    service = _service(predictor, qtbot)
    try:
        received, progress = [], []
        service.prediction_ready.connect(received.append)
        service.precompute_progress.connect(lambda done, total: progress.append((done, total)))
        point = {"point_coords": np.array([[10.0, 10.0]]), "point_labels": np.array([1])}
        # the user clicks a moment after the image is ready (the AI tool sends its waiting prompt at once)
        service.image_ready.connect(lambda key: QTimer.singleShot(100, lambda: service.predict(key, point)))
        service.set_image("a", _image("a"))
        service.precompute(_upcoming("b", "c"))
        qtbot.waitUntil(lambda: bool(received), timeout=5000)
        assert predictor.events == ["encode a", "predict"]  # no precompute job went first
        qtbot.waitUntil(lambda: (2, 2) in progress, timeout=10_000)  # and precompute ran afterwards
        assert predictor.events == ["encode a", "predict", "cache b", "cache c"]
    finally:
        service.shutdown()


def test_the_next_image_is_encoded_before_the_precompute_queue(qtbot):
    predictor = CachingPredictor(seconds=0.4)
    service = _service(predictor, qtbot)
    try:
        ready = []
        service.image_ready.connect(ready.append)
        service.set_image("b", _image("b"))  # the user pressed D ...
        service.precompute(_upcoming("c", "d"))
        qtbot.waitUntil(lambda: ready == ["b"], timeout=5000)
        qtbot.wait(300)  # ... and D again a moment later
        service.set_image("c", _image("c"))
        service.precompute(_upcoming("d", "e"))
        qtbot.waitUntil(lambda: ready == ["b", "c"], timeout=5000)
        assert predictor.events == ["encode b", "encode c"]
    finally:
        service.shutdown()


def test_precompute_waits_while_a_user_request_is_pending(qtbot):
    from efficientsam_studio.gui.engine_service import EngineWorker, PendingRequests, RequestTracker

    predictor = CachingPredictor(seconds=0.0)
    pending = PendingRequests()
    worker = EngineWorker(RequestTracker(), lambda cfg: predictor, _read, pending, pause_seconds=0)
    worker.load(EngineConfig(model="fake"))
    pending.sent()  # a user request is on its way to the worker
    worker.precompute(_upcoming("b"))
    qtbot.wait(100)
    assert predictor.events == []
    pending.taken()
    worker.precompute(_upcoming("b"))
    qtbot.waitUntil(lambda: predictor.events == ["cache b"], timeout=2000)


def test_no_precompute_starts_while_the_next_image_loads(qtbot, make_window, image_folder):
    from efficientsam_studio.annotations.images import load_image

    names = {float(load_image(path).mean()): path.stem for path in image_folder.glob("*.png")}
    predictor = CachingPredictor(seconds=0.4, name=lambda image: names[float(image.mean())])
    window = make_window(loader=lambda cfg: predictor, path=image_folder)
    ws = window.workspace
    key = ws.session.image_key(ws.session.current_image_id)
    qtbot.waitUntil(lambda: window.engine.is_ready_for(key), timeout=5000)
    load = ws.images.loader.request
    ws.images.loader.request = lambda image_id, path: QTimer.singleShot(1500, lambda: load(image_id, path))
    window.action("next_image").trigger()  # a large photo: it takes longer to decode than the pause
    key = ws.session.image_key(ws.session.current_image_id)
    qtbot.waitUntil(lambda: window.engine.is_ready_for(key), timeout=10_000)
    assert predictor.events == ["encode astronaut", "encode chelsea"]
