"""The labelling loop with a fake predictor: open, click, preview, cycle, accept, undo, redo."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, Qt

from efficientsam_studio.gui.prompts import BoxPrompt, PointPrompt
from tests.gui.conftest import FakePredictor


def click(
    qtbot,
    window,
    x: float,
    y: float,
    button=Qt.MouseButton.LeftButton,
    modifier=Qt.KeyboardModifier.NoModifier,
):
    canvas = window.workspace.canvas
    pos = canvas.mapFromScene(x, y)
    qtbot.mouseClick(canvas.viewport(), button, modifier, pos)


def add_category(window, name: str = "cat") -> None:
    assert window.workspace.categories.add(name)


def wait_prediction(qtbot, window):
    ai = window.workspace.ai
    qtbot.waitUntil(lambda: ai.prediction is not None and not ai.waiting, timeout=10_000)
    return ai.prediction


def test_open_folder_lists_images_and_shows_the_first(make_window, image_folder):
    predictor = FakePredictor()
    window = make_window(loader=lambda cfg: predictor, path=image_folder)
    ws = window.workspace
    assert ws.files.model.rowCount() == 3
    assert ws.canvas.image_size == (96, 64)
    assert ws.session.current_image.path == "astronaut.png"  # natural order: astronaut, chelsea, coffee
    assert window.status.model_label.text().startswith("Model: fake")


def test_click_preview_cycle_accept(qtbot, make_window, image_folder):
    predictor = FakePredictor()
    window = make_window(loader=lambda cfg: predictor, path=image_folder)
    ws = window.workspace
    add_category(window)
    qtbot.waitUntil(lambda: window.engine.is_ready_for(ws.session.image_key(ws.session.current_image_id)))
    click(qtbot, window, 40, 30)
    prediction = wait_prediction(qtbot, window)
    assert list(prediction.scores) == sorted(prediction.scores, reverse=True)  # best first
    assert ws.ai.marker_count == 1
    assert "IoU 0.90" in window.status.currentMessage()
    best_area = prediction.masks[0].sum()
    window.action("cycle").trigger()
    assert ws.ai.candidate == 1 and "IoU 0.60" in window.status.currentMessage()
    window.action("cycle").trigger()
    window.action("cycle").trigger()
    assert ws.ai.candidate == 0
    window.action("accept").trigger()
    instances = ws.session.current_instances()
    assert len(instances) == 1
    assert instances[0].area == best_area and instances[0].source == "ai"
    assert abs(instances[0].score - 0.9) < 1e-6
    assert ws.ai.prompts.is_empty() and ws.ai.marker_count == 0
    assert ws.instances.list.count() == 1


def test_box_prompt(qtbot, make_window, image_folder):
    predictor = FakePredictor()
    window = make_window(loader=lambda cfg: predictor, path=image_folder)
    canvas = window.workspace.canvas
    qtbot.waitUntil(lambda: window.engine.info is not None)
    start, end = canvas.mapFromScene(10, 10), canvas.mapFromScene(50, 40)
    qtbot.mousePress(canvas.viewport(), Qt.MouseButton.LeftButton, pos=start)
    for t in np.linspace(0.2, 1.0, 5):
        qtbot.mouseMove(
            canvas.viewport(),
            QPoint(int(start.x() + t * (end.x() - start.x())), int(start.y() + t * (end.y() - start.y()))),
        )
    qtbot.mouseRelease(canvas.viewport(), Qt.MouseButton.LeftButton, pos=end)
    box = window.workspace.ai.prompts.box
    assert isinstance(box, BoxPrompt)
    assert abs(box.x0 - 10) < 1.5 and abs(box.y1 - 40) < 1.5
    wait_prediction(qtbot, window)
    assert predictor.calls[-1]["box"] is not None and predictor.calls[-1]["point_coords"] is None


def test_negative_point_by_right_click_and_shift_click(qtbot, make_window, image_folder):
    predictor = FakePredictor()
    window = make_window(loader=lambda cfg: predictor, path=image_folder)
    qtbot.waitUntil(lambda: window.engine.info is not None)
    click(qtbot, window, 40, 30)
    click(qtbot, window, 44, 30, Qt.MouseButton.RightButton)
    click(qtbot, window, 36, 30, modifier=Qt.KeyboardModifier.ShiftModifier)
    labels = [p.label for p in window.workspace.ai.prompts.points]
    assert labels == [1, 0, 0]
    prediction = wait_prediction(qtbot, window)
    assert list(predictor.calls[-1]["point_labels"]) == [1, 0, 0]
    assert not prediction.masks[0][30, 44]  # the negative point cut its neighbourhood out


def test_undo_redo_prompts_and_accept(qtbot, make_window, image_folder):
    predictor = FakePredictor()
    window = make_window(loader=lambda cfg: predictor, path=image_folder)
    ws = window.workspace
    add_category(window)
    qtbot.waitUntil(lambda: window.engine.info is not None)
    click(qtbot, window, 40, 30)
    click(qtbot, window, 20, 20)
    wait_prediction(qtbot, window)
    window.action("undo").trigger()
    assert ws.ai.prompts.points == [PointPrompt(ws.ai.prompts.points[0].x, ws.ai.prompts.points[0].y, 1)]
    window.action("redo").trigger()
    assert len(ws.ai.prompts.points) == 2
    wait_prediction(qtbot, window)
    window.action("accept").trigger()
    assert len(ws.session.current_instances()) == 1
    window.action("undo").trigger()  # undo accept: instance gone, prompts back
    assert ws.session.current_instances() == [] and len(ws.ai.prompts.points) == 2
    window.action("redo").trigger()
    assert len(ws.session.current_instances()) == 1 and ws.ai.prompts.is_empty()
    window.action("undo").trigger()
    window.action("remove_last").trigger()  # Backspace is an undo step too
    assert len(ws.ai.prompts.points) == 1
    window.action("cancel").trigger()  # Esc
    assert ws.ai.prompts.is_empty()
    window.action("undo").trigger()
    assert len(ws.ai.prompts.points) == 1


def test_point_limit_is_reported(qtbot, make_window, image_folder):
    predictor = FakePredictor()
    window = make_window(loader=lambda cfg: predictor, path=image_folder)
    qtbot.waitUntil(lambda: window.engine.info is not None)
    for i in range(7):
        click(qtbot, window, 10 + 5 * i, 30)
    wait_prediction(qtbot, window)
    assert "1 oldest point" in window.status.currentMessage()
    assert len(predictor.calls[-1]["point_coords"]) == 6
