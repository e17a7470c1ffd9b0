"""What the window tells the user: the wait for a mask, the title after an autosave, the brush size,
the export destination."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt

from efficientsam_studio.gui.dialogs.export import ExportDialog
from tests.gui.conftest import FakePredictor


class SlowDecoder(FakePredictor):
    def predict(self, **kwargs):
        time.sleep(0.6)
        return super().predict(**kwargs)


def click(qtbot, window, x: float, y: float) -> None:
    canvas = window.workspace.canvas
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=canvas.mapFromScene(x, y))


def wait_prediction(qtbot, window) -> None:
    ai = window.workspace.ai
    qtbot.waitUntil(lambda: ai.prediction is not None and not ai.waiting, timeout=10_000)


def test_a_click_before_the_image_is_encoded_says_so_until_the_mask_arrives(qtbot, make_window, image_folder):
    predictor = FakePredictor(encode_seconds=1.5)
    window = make_window(loader=lambda cfg: predictor, path=image_folder)
    ws = window.workspace
    assert not window.engine.is_ready_for(ws.session.image_key(ws.session.current_image_id))
    click(qtbot, window, 40, 30)
    assert window.status.currentMessage().startswith("Encoding the image…")
    assert window.status.busy_label.isVisible() and window.status.busy_text == "Encoding the image…"
    wait_prediction(qtbot, window)
    assert window.status.currentMessage().startswith("Candidate 1/3")
    assert not window.status.busy_label.isVisible() and window.status.busy_text == ""


def test_a_click_on_an_encoded_image_says_the_mask_is_computed(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: SlowDecoder(), path=image_folder)
    ws = window.workspace
    key = ws.session.image_key(ws.session.current_image_id)
    qtbot.waitUntil(lambda: window.engine.is_ready_for(key), timeout=10_000)
    click(qtbot, window, 40, 30)
    assert window.status.currentMessage() == "Computing the mask…"
    assert window.status.busy_label.isVisible() and window.status.busy_label.text() == "Computing the mask…"
    wait_prediction(qtbot, window)
    assert window.status.currentMessage().startswith("Candidate 1/3")
    assert not window.status.busy_label.isVisible()


def test_the_title_loses_its_unsaved_mark_when_the_autosave_has_saved(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    ws.categories.add("cat")
    assert window.windowTitle().startswith(f"{ws.project.path.name} *")
    qtbot.waitUntil(lambda: not ws.project.document.dirty, timeout=5000)  # the debounced autosave ran
    assert window.windowTitle() == f"{ws.project.path.name} - EfficientSAM Studio"


def test_the_brush_status_follows_the_size_keys(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    window.set_tool("brush")
    assert "size 20 px" in window.status.currentMessage()
    window.action("brush_larger").trigger()
    assert window.brush_size.value() == 25 and "size 25 px" in window.status.currentMessage()
    window.action("brush_smaller").trigger()
    assert window.brush_size.value() == 20 and "size 20 px" in window.status.currentMessage()
    window.set_tool("eraser")
    window.action("brush_larger").trigger()
    message = window.status.currentMessage()
    assert message.startswith("Erase") and "size 25 px" in message


def test_the_export_destination_shows_the_whole_path(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    dialog = ExportDialog(window.workspace.project, window.settings, window)
    qtbot.addWidget(dialog)
    for index in range(dialog.format.count()):
        dialog.format.setCurrentIndex(index)
        dialog.show()
        qtbot.waitExposed(dialog)
        field = dialog.destination
        text = field.text()
        assert text.startswith(str(image_folder)) and field.toolTip() == text
        needed = field.fontMetrics().horizontalAdvance(text)
        assert field.width() >= min(needed, 800)  # a longer path scrolls, its tooltip shows it whole
    dialog.destination.setText("/a/short/name.json")
    assert dialog.destination.toolTip() == "/a/short/name.json"
