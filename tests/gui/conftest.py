"""Fixtures of the GUI tests: small real photos in a folder, a fake predictor, a window factory.

Modal dialogs never block: every QMessageBox static call is replaced by a recorder, and tests that
need a dialog's answer set it on the recorder.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtWidgets import QMessageBox

from efficientsam_studio.annotations.images import load_image

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"


class FakePredictor:
    """The Predictor protocol with geometric answers instead of a network.

    ``predict`` returns three candidates in a deliberately unsorted order (scores 0.6, 0.9, 0.3):
    a disc of radius 6 / 12 / 3 pixels around the mean positive point (minus discs around negative
    points), or the box itself when a box is given. ``encode_seconds`` makes ``set_image`` busy-wait
    (CPU work holding the GIL in short slices, like a real encoder) to measure GUI responsiveness.
    """

    def __init__(self, encode_seconds: float = 0.0) -> None:
        self.encode_seconds = encode_seconds
        self.model_name, self.backend, self.device = "fake", "test", "cpu"
        self.image: np.ndarray | None = None
        self.calls: list[dict] = []
        self.encoded = 0

    def set_image(self, image: np.ndarray) -> None:
        end = time.perf_counter() + self.encode_seconds
        while time.perf_counter() < end:
            np.dot(np.ones((64, 64)), np.ones((64, 64)))
        self.image = image
        self.encoded += 1

    def predict(self, point_coords=None, point_labels=None, box=None, multimask_output=True):
        assert self.image is not None
        self.calls.append({"point_coords": point_coords, "point_labels": point_labels, "box": box})
        h, w = self.image.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w]
        masks = []
        for radius in (6, 12, 3):
            mask = np.zeros((h, w), bool)
            if box is not None:
                x0, y0, x1, y1 = (int(round(v)) for v in box)
                mask[y0 : y1 + 1, x0 : x1 + 1] = True
            if point_coords is not None:
                for (x, y), label in zip(point_coords, point_labels, strict=True):
                    disc = (xx - x) ** 2 + (yy - y) ** 2 <= radius**2
                    mask = mask | disc if label == 1 else mask & ~disc
            masks.append(mask)
        scores = np.array([0.6, 0.9, 0.3], np.float32)
        return np.stack(masks), scores, np.zeros((3, 256, 256), np.float32)


class RecordingPredictor(FakePredictor):
    """A :class:`FakePredictor` that also records the size of every image it is given (``sizes``)."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[tuple[int, int]] = []

    def set_image(self, image: np.ndarray) -> None:
        self.sizes.append(image.shape[:2])
        super().set_image(image)


class GatedPredictor(RecordingPredictor):
    """``predict`` waits for ``gate`` on its first call (``entered`` is set then), so that requests queue
    up behind it."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.gate = threading.Event(), threading.Event()

    def predict(self, **kwargs):
        if not self.calls:
            self.entered.set()
            self.gate.wait(5)
        return super().predict(**kwargs)


def ready_window(qtbot, make_window, image_folder, predictor, **settings):
    """A window on ``image_folder`` whose engine uses ``predictor``, once its first image is encoded;
    ``settings``: :class:`StudioSettings` fields."""
    from efficientsam_studio.gui.settings import StudioSettings

    window = make_window(
        loader=lambda cfg: predictor,
        path=image_folder,
        settings=StudioSettings(autosave_seconds=0.2, **settings),
    )
    ws = window.workspace
    qtbot.waitUntil(lambda: window.engine.is_ready_for(ws.session.image_key(ws.session.current_image_id)))
    return window


def tiny_engine_window(qtbot, make_window, image_folder, checkpoint):
    """A window on ``image_folder`` with the real engine on the tiny random-weight model ``checkpoint``,
    once its first image is encoded."""
    from efficientsam_studio.gui.settings import StudioSettings

    settings = StudioSettings(
        model="tiny", checkpoint=str(checkpoint), backend="torch", device="cpu", autosave_seconds=0.2
    )
    window = make_window(settings=settings, path=image_folder)
    ws = window.workspace
    key = ws.session.image_key(ws.session.current_image_id)
    qtbot.waitUntil(lambda: window.engine.is_ready_for(key), timeout=30_000)
    return window


@contextlib.contextmanager
def running_service(qtbot, predictor, image_shape: tuple[int, int] = (40, 60)):
    """An ``EngineService`` with ``predictor`` loaded and image "a" (zeros of ``image_shape``) encoded."""
    from efficientsam_studio.gui.engine_service import EngineConfig, EngineService

    service = EngineService(loader=lambda cfg: predictor, precompute_pause=0)
    try:
        with qtbot.waitSignal(service.loaded, timeout=5000):
            service.load_model(EngineConfig(model="fake"))
        with qtbot.waitSignal(service.image_ready, timeout=5000):
            service.set_image("a", np.zeros((*image_shape, 3), np.uint8))
        yield service
    finally:
        service.shutdown()


@pytest.fixture(autouse=True)
def efsam_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "efsam_home"
    monkeypatch.setenv("EFSAM_HOME", str(home))
    return home


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Three small real photos (downscaled samples) in a folder."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("chelsea.png", "coffee.png", "astronaut.png"):
        rgb = load_image(SAMPLES / name)
        small = cv2.resize(rgb, (96, 64), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / name), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    return folder


class MessageBoxes:
    """Records QMessageBox calls; ``answer`` is what ``question`` returns."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.answer = QMessageBox.StandardButton.Discard

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for kind in ("critical", "warning", "information"):
            monkeypatch.setattr(QMessageBox, kind, self._recorder(kind))
        monkeypatch.setattr(QMessageBox, "question", self._question)

    def _recorder(self, kind: str):
        def record(parent, title, text, *args, **kwargs):
            self.calls.append((kind, title, text))
            return QMessageBox.StandardButton.Ok

        return staticmethod(record)

    def _question(self, parent, title, text, *args, **kwargs):
        self.calls.append(("question", title, text))
        return self.answer

    def titles(self, kind: str) -> list[str]:
        return [title for k, title, _ in self.calls if k == kind]


@pytest.fixture
def message_boxes(monkeypatch: pytest.MonkeyPatch) -> MessageBoxes:
    boxes = MessageBoxes()
    boxes.install(monkeypatch)
    return boxes


def wait_shown(qtbot, window) -> None:
    """Wait until the current image's pixels are on the canvas (they load in a worker thread)."""
    images = window.workspace.images
    qtbot.waitUntil(lambda: images.shown_id == window.workspace.session.current_image_id, timeout=10_000)


@pytest.fixture
def make_window(qtbot, message_boxes):
    """``make_window(loader=..., path=...)``: a shown MainWindow whose engine uses ``loader``."""
    from efficientsam_studio.gui.engine_service import EngineService
    from efficientsam_studio.gui.main_window import MainWindow
    from efficientsam_studio.gui.settings import StudioSettings

    windows = []

    def make(
        loader=None, path: Path | None = None, settings: StudioSettings | None = None, load: bool = True
    ):
        engine = EngineService(loader=loader) if loader is not None else EngineService()
        window = MainWindow(settings or StudioSettings(autosave_seconds=0.2), engine)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        if load:
            window.model.load()
            qtbot.waitUntil(lambda: not engine.is_loading, timeout=60_000)
        if path is not None:
            assert window.open_path(path)
            wait_shown(qtbot, window)
        return window

    yield make
    message_boxes.answer = QMessageBox.StandardButton.Discard
    for window in windows:
        window.close()
        window.engine.shutdown()
