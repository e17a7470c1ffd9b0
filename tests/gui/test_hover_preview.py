"""The AI tool's hover preview: the mask under the resting cursor, taken by a click without a new decode."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint

from efficientsam_studio.gui.engine_service import EngineConfig, EngineService
from efficientsam_studio.gui.prompts import PointPrompt
from efficientsam_studio.gui.settings import StudioSettings, load_settings, save_settings
from tests.gui.conftest import (
    FakePredictor,
    GatedPredictor,
    ready_window,
    running_service,
    tiny_engine_window,
)
from tests.gui.test_workflow import click


def hover(qtbot, window, x: float, y: float) -> QPoint:
    canvas = window.workspace.canvas
    pos = canvas.mapFromScene(x, y)
    # Qt sends no move event to where the cursor already is (a previous test may have left it there)
    qtbot.mouseMove(canvas.viewport(), pos + QPoint(1, 0))
    qtbot.mouseMove(canvas.viewport(), pos)
    return pos


def preview_width(window) -> float:
    return window.workspace.canvas.preview_item.boundingRect().width()


def test_resting_cursor_shows_the_mask_and_a_click_there_takes_it_without_decoding(
    qtbot, make_window, image_folder
):
    predictor = FakePredictor()
    window = ready_window(qtbot, make_window, image_folder, predictor)
    ai = window.workspace.ai
    hover(qtbot, window, 40, 30)
    qtbot.waitUntil(lambda: ai.hover.prediction is not None, timeout=5000)
    assert len(predictor.calls) == 1
    assert list(predictor.calls[0]["point_coords"][0]) == pytest.approx([40, 30], abs=1.0)
    assert list(predictor.calls[0]["point_labels"]) == [1]
    assert preview_width(window) > 0  # shown before any click
    assert ai.prompts.is_empty() and "click to take it" in window.status.currentMessage()
    hovered = ai.hover.prediction

    click(qtbot, window, 40, 30)
    assert ai.prediction is hovered and not ai.waiting  # the answer was there already
    assert ai.marker_count == 1 and len(predictor.calls) == 1
    qtbot.wait(100)
    assert len(predictor.calls) == 1  # and the engine was not asked again


def test_a_click_elsewhere_asks_the_engine(qtbot, make_window, image_folder):
    predictor = FakePredictor()
    window = ready_window(qtbot, make_window, image_folder, predictor)
    ai = window.workspace.ai
    hover(qtbot, window, 40, 30)
    qtbot.waitUntil(lambda: ai.hover.prediction is not None, timeout=5000)
    click(qtbot, window, 20, 20)
    qtbot.waitUntil(lambda: ai.prediction is not None and not ai.waiting, timeout=5000)
    assert len(predictor.calls) == 2
    assert ai.prediction.masks[0][20, 20] and not ai.prediction.masks[0][30, 40]
    assert ai.hover.prediction is None  # a prompt ends the hover preview


def test_only_the_pixel_where_the_cursor_rests_is_decoded(qtbot, make_window, image_folder):
    predictor = FakePredictor()
    window = ready_window(qtbot, make_window, image_folder, predictor)
    ai = window.workspace.ai
    for x in range(10, 60, 5):  # a sweep faster than the dwell time
        hover(qtbot, window, x, 30)
    qtbot.waitUntil(lambda: ai.hover.prediction is not None, timeout=5000)
    qtbot.wait(100)
    assert len(predictor.calls) == 1
    assert abs(predictor.calls[0]["point_coords"][0][0] - 55) < 1.5


def test_leaving_the_image_clears_the_preview_and_prompts_stop_it(qtbot, make_window, image_folder):
    predictor = FakePredictor()
    window = ready_window(qtbot, make_window, image_folder, predictor)
    ai = window.workspace.ai
    hover(qtbot, window, 40, 30)
    qtbot.waitUntil(lambda: preview_width(window) > 0, timeout=5000)
    hover(qtbot, window, -20, 30)  # off the image, still on the canvas
    assert ai.hover.prediction is None and preview_width(window) == 0

    click(qtbot, window, 20, 20)
    qtbot.waitUntil(lambda: ai.prediction is not None and not ai.waiting, timeout=5000)
    calls = len(predictor.calls)
    hover(qtbot, window, 50, 40)
    qtbot.wait(150)
    assert len(predictor.calls) == calls  # with prompts on the image the cursor decodes nothing
    assert ai.prediction.masks[0][20, 20]


def test_switched_off_in_the_settings(qtbot, make_window, image_folder):
    predictor = FakePredictor()
    window = ready_window(qtbot, make_window, image_folder, predictor, hover_preview=False)
    hover(qtbot, window, 40, 30)
    qtbot.wait(150)
    assert predictor.calls == [] and preview_width(window) == 0


def test_the_setting_is_kept_as_a_boolean(efsam_home):
    save_settings(StudioSettings(hover_preview=False))
    assert load_settings().hover_preview is False
    save_settings(StudioSettings(hover_preview=True))
    assert load_settings().hover_preview is True


def test_a_prompt_goes_before_hover_requests_queued_earlier(qtbot):
    predictor = GatedPredictor()
    with running_service(qtbot, predictor) as service:
        hovers, predictions = [], []
        service.hover_ready.connect(hovers.append)
        service.prediction_ready.connect(predictions.append)
        point = {"point_labels": np.array([1]), "box": None}
        service.hover("a", {**point, "point_coords": np.array([[10.0, 10.0]])})  # blocks the worker
        assert predictor.entered.wait(5)
        service.hover("a", {**point, "point_coords": np.array([[20.0, 10.0]])})
        service.predict("a", {**point, "point_coords": np.array([[30.0, 10.0]])})
        predictor.gate.set()
        qtbot.waitUntil(lambda: len(predictions) == 1, timeout=5000)
        qtbot.wait(100)
        decoded = [float(call["point_coords"][0][0]) for call in predictor.calls]
        assert decoded == [10.0, 30.0]  # the second hover never ran
        assert hovers == []  # and the first one's answer, superseded by the prompt, was not delivered


def test_hover_never_starts_an_encode(qtbot):
    predictor = FakePredictor()
    service = EngineService(loader=lambda cfg: predictor, precompute_pause=0)
    try:
        with qtbot.waitSignal(service.loaded, timeout=5000):
            service.load_model(EngineConfig(model="fake"))
        service.hover(
            "a", {"point_coords": np.array([[10.0, 10.0]]), "point_labels": np.array([1]), "box": None}
        )
        qtbot.wait(150)
        assert predictor.encoded == 0 and predictor.calls == []
    finally:
        service.shutdown()


def test_hover_preview_answers_are_dropped_on_another_image(qtbot, make_window, image_folder):
    predictor = FakePredictor()
    window = ready_window(qtbot, make_window, image_folder, predictor)
    ai = window.workspace.ai
    hover(qtbot, window, 40, 30)
    qtbot.waitUntil(lambda: ai.hover.prediction is not None, timeout=5000)
    window.action("next_image").trigger()
    assert ai.hover.prediction is None and preview_width(window) == 0


def test_the_real_engine_gives_the_hover_preview_the_masks_of_a_click(
    qtbot, make_window, image_folder, tiny_checkpoint
):
    window = tiny_engine_window(qtbot, make_window, image_folder, tiny_checkpoint)
    ai = window.workspace.ai
    hover(qtbot, window, 48, 32)
    qtbot.waitUntil(lambda: ai.hover.prediction is not None, timeout=30_000)
    hovered = ai.hover.prediction
    ai.hover.enabled = False
    hover(qtbot, window, 48, 32)  # the same pixel, now clicked without a preview
    ai.hover.clear()
    click(qtbot, window, 48, 32)
    qtbot.waitUntil(lambda: ai.prediction is not None and not ai.waiting, timeout=30_000)
    assert ai.prediction is not hovered
    np.testing.assert_array_equal(ai.prediction.scores, hovered.scores)
    np.testing.assert_array_equal(ai.prediction.masks, hovered.masks)


def test_a_model_reload_drops_the_hover_answer(qtbot, make_window, image_folder):
    predictor = FakePredictor()
    window = ready_window(qtbot, make_window, image_folder, predictor)
    ai = window.workspace.ai
    hover(qtbot, window, 40, 30)
    qtbot.waitUntil(lambda: ai.hover.prediction is not None, timeout=5000)
    with qtbot.waitSignal(window.engine.loaded, timeout=10_000):
        window.model.load()  # as after another model is chosen in the settings
    assert ai.hover.prediction is None and preview_width(window) == 0


def test_a_click_anywhere_in_the_previewed_pixel_takes_the_preview(qtbot, make_window, image_folder):
    predictor = FakePredictor()
    window = ready_window(qtbot, make_window, image_folder, predictor)
    ws, ai = window.workspace, window.workspace.ai
    key = ws.session.image_key(ws.session.current_image_id)
    ai.hover.request(key, 40.2, 30.7)  # as after a zoom: the same pixel, another sub-pixel position
    qtbot.waitUntil(lambda: ai.hover.prediction is not None, timeout=5000)
    hovered = ai.hover.prediction
    ai.add_prompt(PointPrompt(40.9, 30.1, 1))
    assert ai.prediction is hovered and len(predictor.calls) == 1
    ai.cancel()
    ai.hover.request(key, 40.2, 30.7)
    qtbot.waitUntil(lambda: ai.hover.prediction is not None, timeout=5000)
    ai.add_prompt(PointPrompt(41.0, 30.1, 1))  # the next pixel: decoded
    qtbot.waitUntil(lambda: len(predictor.calls) == 3 and ai.prediction is not None, timeout=5000)


def test_a_cursor_resting_while_the_image_encodes_gets_its_preview_when_it_is_ready(
    qtbot, make_window, image_folder
):
    predictor = FakePredictor(encode_seconds=0.6)
    window = make_window(loader=lambda cfg: predictor, path=image_folder)
    ws, ai = window.workspace, window.workspace.ai
    assert not window.engine.is_ready_for(ws.session.image_key(ws.session.current_image_id))
    hover(qtbot, window, 40, 30)  # the cursor then rests; no other move comes
    qtbot.waitUntil(lambda: ai.hover.prediction is not None, timeout=10_000)
    assert len(predictor.calls) == 1


def test_the_resting_cursor_gets_its_preview_back_after_esc(qtbot, make_window, image_folder):
    predictor = FakePredictor()
    window = ready_window(qtbot, make_window, image_folder, predictor)
    ai = window.workspace.ai
    hover(qtbot, window, 40, 30)
    qtbot.waitUntil(lambda: ai.hover.prediction is not None, timeout=5000)
    click(qtbot, window, 40, 30)
    assert ai.hover.prediction is None and ai.prediction is not None
    ai.cancel()  # Esc
    qtbot.waitUntil(lambda: ai.hover.prediction is not None and preview_width(window) > 0, timeout=5000)
