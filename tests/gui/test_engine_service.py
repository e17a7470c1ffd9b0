"""The engine service alone: answers carry request ids, superseded requests are dropped."""

from __future__ import annotations

import threading
import time

import numpy as np

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
