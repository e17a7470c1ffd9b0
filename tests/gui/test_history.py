"""The undo history: steps of another image, image status set by hand-made instances, refused edits."""

from __future__ import annotations

import cv2
import numpy as np

from efficientsam_studio.annotations.document import ImageStatus
from tests.gui.conftest import FakePredictor, wait_shown
from tests.gui.test_editing import drag, draw_polygon
from tests.gui.test_workflow import click, wait_prediction


def go_to(qtbot, window, image_id: int) -> None:
    window.workspace.session.set_current_image(image_id)
    wait_shown(qtbot, window)


def test_undo_and_redo_of_another_images_step_show_that_image_first(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    session = window.workspace.session
    window.workspace.categories.add("cat")
    draw_polygon(qtbot, window, [(10, 10), (50, 10), (50, 40), (10, 40)])
    first = session.current_image_id
    window.action("next_image").trigger()
    wait_shown(qtbot, window)
    assert session.current_image_id != first
    window.action("undo").trigger()
    assert session.current_image_id == first and session.current_instances() == []
    window.action("next_image").trigger()
    wait_shown(qtbot, window)
    window.action("redo").trigger()
    assert session.current_image_id == first and len(session.current_instances()) == 1
    window.action("undo").trigger()
    second = session.document.images[1].id
    go_to(qtbot, window, second)
    window.action("undo").trigger()  # adding the category belongs to no image: no switch
    assert session.current_image_id == second and session.document.categories == []


def test_the_first_hand_made_instance_marks_an_unlabelled_image_in_progress(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    session = ws.session
    ws.categories.add("cat")
    first, second, third = (image.id for image in session.document.images)
    draw_polygon(qtbot, window, [(10, 10), (50, 10), (50, 40), (10, 40)])
    assert session.document.image(first).status == ImageStatus.IN_PROGRESS
    window.action("undo").trigger()  # one step: the instance and the status go together
    assert session.current_instances() == []
    assert session.document.image(first).status == ImageStatus.UNLABELLED
    window.action("redo").trigger()
    assert session.document.image(first).status == ImageStatus.IN_PROGRESS
    go_to(qtbot, window, second)
    window.set_tool("brush")
    drag(qtbot, window, [(10, 10), (30, 10)])
    assert session.document.image(second).status == ImageStatus.IN_PROGRESS
    go_to(qtbot, window, third)
    window.set_tool("ai")
    qtbot.waitUntil(lambda: window.engine.is_ready_for(session.image_key(third)), timeout=10_000)
    click(qtbot, window, 40, 30)
    wait_prediction(qtbot, window)
    window.action("mark_done").trigger()
    window.action("accept").trigger()  # an image marked done keeps its status
    assert len(session.current_instances()) == 1
    assert session.document.image(third).status == ImageStatus.DONE
    window.action("undo").trigger()
    window.action("undo").trigger()  # unlabelled again, the prompts back
    wait_prediction(qtbot, window)
    window.action("accept").trigger()
    assert session.document.image(third).status == ImageStatus.IN_PROGRESS


def test_a_refused_edit_shows_the_plain_reason_and_stays_out_of_the_history(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    ws.categories.add("cat")
    steps = ws.session.undo_stack.count()
    assert not ws.categories.rename(ws.session.current_category_id, "   ")
    assert window.status.currentMessage() == "a category needs a non-empty name"
    assert ws.session.undo_stack.count() == steps


def test_a_mask_for_a_file_that_changed_size_is_refused_clearly(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    session = ws.session
    ws.categories.add("cat")
    second = session.document.images[1]
    cv2.imwrite(str(image_folder / second.path), np.zeros((40, 60, 3), np.uint8))
    go_to(qtbot, window, second.id)
    assert "the file is now 60x40" in window.status.currentMessage()
    qtbot.waitUntil(lambda: window.engine.is_ready_for(session.image_key(second.id)), timeout=10_000)
    click(qtbot, window, 20, 20)
    wait_prediction(qtbot, window)
    steps = session.undo_stack.count()
    assert not ws.ai.accept()
    message = window.status.currentMessage()
    assert message.startswith("The mask is not added") and "60x40" in message and "96x64" in message
    assert "Error calling" not in message
    assert session.current_instances() == [] and session.undo_stack.count() == steps
