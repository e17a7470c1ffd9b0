"""A box on a small part of the image is segmented again in a cut around it; the finer masks are placed
back in the image and the engine's current image is the whole one again afterwards."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from efficientsam_studio.engine.crop_refine import prompt_in_crop, refine_crop
from efficientsam_studio.gui.engine_service import EngineConfig
from efficientsam_studio.gui.prompts import BoxPrompt, PointPrompt
from efficientsam_studio.paths import cache_dir
from tests.gui.conftest import (
    GatedPredictor,
    RecordingPredictor,
    ready_window,
    running_service,
    tiny_engine_window,
)
from tests.gui.test_workflow import click


# ------------------------------------------------------------------------------------------ the cut
def test_the_cut_is_the_box_with_a_margin_clipped_to_the_image():
    assert refine_crop((100, 200, 180, 240), (1000, 2000)) == (80, 190, 201, 251)
    assert refine_crop((0, 0, 40, 40), (1000, 2000)) == (0, 0, 51, 51)  # clipped at the corner
    # a positive point outside the box stays in the cut
    assert refine_crop((100, 200, 180, 240), (1000, 2000), points=[(300, 220)]) == (50, 190, 351, 251)


@pytest.mark.parametrize("box", [(0, 0, 1500, 100), (0, 0, 100, 800), (0, 0, 1999, 999)])
def test_no_cut_when_it_is_not_twice_smaller_on_both_sides(box):
    assert refine_crop(box, (1000, 2000)) is None


def test_the_prompt_moves_into_the_cut_and_points_outside_it_are_left_out():
    kwargs = {
        "box": np.array([100, 200, 180, 240], np.float32),
        "point_coords": np.array([[120, 210], [900, 900]], np.float32),
        "point_labels": np.array([1, 0]),
    }
    moved = prompt_in_crop(kwargs, (80, 190, 201, 251))
    np.testing.assert_array_equal(moved["box"], [20, 10, 100, 50])
    np.testing.assert_array_equal(moved["point_coords"], [[40, 20]])
    np.testing.assert_array_equal(moved["point_labels"], [1])
    assert prompt_in_crop({**kwargs, "point_coords": kwargs["point_coords"][1:], "point_labels": [0]},
                          (80, 190, 201, 251))["point_coords"] is None  # fmt: skip


# ------------------------------------------------------------------------------------------ the app
def drag_box(qtbot, window, x0, y0, x1, y1) -> None:
    canvas = window.workspace.canvas
    start, end = canvas.mapFromScene(x0, y0), canvas.mapFromScene(x1, y1)
    qtbot.mousePress(canvas.viewport(), Qt.MouseButton.LeftButton, pos=start)
    for t in np.linspace(0.2, 1.0, 5):
        step = QPoint(int(start.x() + t * (end.x() - start.x())), int(start.y() + t * (end.y() - start.y())))
        qtbot.mouseMove(canvas.viewport(), step)
    qtbot.mouseRelease(canvas.viewport(), Qt.MouseButton.LeftButton, pos=end)


def test_a_small_box_is_segmented_again_in_a_cut_and_placed_back(qtbot, make_window, image_folder):
    predictor = RecordingPredictor()
    window = ready_window(qtbot, make_window, image_folder, predictor)
    ai = window.workspace.ai
    ai.add_prompt(BoxPrompt(10, 10, 28, 24))
    qtbot.waitUntil(lambda: ai.prediction is not None and ai.prediction.crop is not None, timeout=5000)
    assert not ai.refining
    refined = ai.prediction
    x0, y0, x1, y1 = refined.crop
    assert predictor.sizes[-2:] == [(y1 - y0, x1 - x0), (64, 96)]  # the cut, then the whole image again
    box = predictor.calls[-1]["box"]
    np.testing.assert_allclose(box, [10 - x0, 10 - y0, 28 - x0, 24 - y0])  # decoded in the cut's pixels
    expected = np.zeros((64, 96), bool)
    expected[10:25, 10:29] = True  # the fake model's mask of the box, in the whole image
    assert refined.masks.shape == (3, 64, 96)
    np.testing.assert_array_equal(refined.mask(0), expected)
    # a point added in the box: decoded on the whole image, then again in the same cut
    click(qtbot, window, 20, 17)
    qtbot.waitUntil(lambda: len(predictor.calls) == 4 and ai.prediction is not None and not ai.refining)
    assert list(predictor.calls[2]["point_coords"][-1]) == pytest.approx([20, 17], abs=1.0)
    assert list(predictor.calls[3]["point_coords"][-1]) == pytest.approx([20 - x0, 17 - y0], abs=1.0)
    assert predictor.image.shape[:2] == (64, 96) and ai.prediction.crop == refined.crop
    # a positive point far from the box makes the cut too large to gain anything: no second pass
    click(qtbot, window, 40, 50)
    qtbot.waitUntil(lambda: len(predictor.calls) == 5 and ai.prediction is not None and not ai.waiting)
    qtbot.wait(150)
    assert len(predictor.calls) == 5 and ai.prediction.crop is None


def test_a_large_box_is_not_cut(qtbot, make_window, image_folder):
    predictor = RecordingPredictor()
    window = ready_window(qtbot, make_window, image_folder, predictor)
    ai = window.workspace.ai
    drag_box(qtbot, window, 5, 5, 80, 55)
    qtbot.waitUntil(lambda: ai.prediction is not None and not ai.waiting, timeout=5000)
    qtbot.wait(150)
    assert len(predictor.calls) == 1 and ai.prediction.crop is None and not ai.refining


def test_switched_off_in_the_settings(qtbot, make_window, image_folder):
    predictor = RecordingPredictor()
    window = ready_window(qtbot, make_window, image_folder, predictor, refine_boxes=False)
    ai = window.workspace.ai
    ai.add_prompt(BoxPrompt(10, 10, 28, 24))
    qtbot.waitUntil(lambda: ai.prediction is not None and not ai.waiting, timeout=5000)
    qtbot.wait(150)
    assert len(predictor.calls) == 1 and ai.prediction.crop is None


def test_a_new_prompt_drops_the_cut_asked_before_it(qtbot):
    predictor = GatedPredictor()
    with running_service(qtbot, predictor, (200, 300)) as service:
        refined, predictions = [], []
        service.refined_ready.connect(refined.append)
        service.prediction_ready.connect(predictions.append)
        point = {"point_coords": np.array([[10.0, 10.0]]), "point_labels": np.array([1]), "box": None}
        service.predict("a", point)  # blocks the worker
        assert predictor.entered.wait(5)
        service.refine("a", {**point, "box": np.array([5.0, 5.0, 20.0, 20.0])}, (0, 0, 40, 40))
        service.predict("a", {**point, "point_coords": np.array([[50.0, 50.0]])})
        predictor.gate.set()
        qtbot.waitUntil(lambda: len(predictions) == 1, timeout=5000)
        qtbot.wait(100)
        assert refined == [] and predictor.sizes == [(200, 300)]  # the cut was never encoded


def test_the_real_engine_refines_and_keeps_the_whole_image(qtbot, make_window, image_folder, tiny_checkpoint):
    window = tiny_engine_window(qtbot, make_window, image_folder, tiny_checkpoint)
    ai = window.workspace.ai
    ai.add_prompt(PointPrompt(48, 32, 1))
    qtbot.waitUntil(lambda: ai.prediction is not None and not ai.waiting, timeout=30_000)
    before = ai.prediction.scores.copy()
    ai.cancel()
    stored = sorted((cache_dir() / "embeddings").rglob("*"))
    ai.add_prompt(BoxPrompt(10, 10, 28, 24))
    qtbot.waitUntil(lambda: ai.prediction is not None and ai.prediction.crop is not None, timeout=30_000)
    assert ai.prediction.masks.shape == (3, 64, 96)
    assert sorted((cache_dir() / "embeddings").rglob("*")) == stored  # cuts do not fill the cache
    ai.cancel()
    ai.add_prompt(PointPrompt(48, 32, 1))  # the whole image's embedding is back: the same answer
    qtbot.waitUntil(lambda: ai.prediction is not None and not ai.waiting, timeout=30_000)
    np.testing.assert_array_equal(ai.prediction.scores, before)


def test_the_candidate_chosen_with_tab_stays_chosen_when_the_finer_masks_come(
    qtbot, make_window, image_folder
):
    predictor = GatedRefinePredictor()
    window = ready_window(qtbot, make_window, image_folder, predictor)
    ai = window.workspace.ai
    ai.add_prompt(BoxPrompt(10, 10, 28, 24))
    qtbot.waitUntil(lambda: ai.prediction is not None and ai.refining, timeout=5000)
    assert window.action("cycle").trigger() is None and ai.candidate == 1
    predictor.gate.set()
    qtbot.waitUntil(lambda: not ai.refining and ai.prediction.crop is not None, timeout=5000)
    assert ai.candidate == 1


class GatedRefinePredictor(RecordingPredictor):
    """The second ``predict`` (the cut's) waits for ``gate``."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def predict(self, **kwargs):
        if len(self.calls) == 1:
            self.gate.wait(5)
        return super().predict(**kwargs)


def test_a_model_reload_drops_the_finer_masks_of_the_old_model(qtbot):
    predictor = GatedPredictor()
    with running_service(qtbot, predictor, (200, 300)) as service:
        refined = []
        service.refined_ready.connect(refined.append)
        box = {"point_coords": None, "point_labels": None, "box": np.array([5.0, 5.0, 20.0, 20.0])}
        service.refine("a", box, (0, 0, 40, 40))  # the cut's decode waits for the gate
        assert predictor.entered.wait(5)
        service.load_model(EngineConfig(model="other"))
        predictor.gate.set()
        with qtbot.waitSignal(service.loaded, timeout=5000):
            pass
        qtbot.wait(100)
        assert refined == []  # the unloaded model's answer never reached the app
