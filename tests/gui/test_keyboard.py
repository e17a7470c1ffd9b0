"""The keyboard: focus after opening, the brush size box, D/A with the Files filters, redo selection."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from efficientsam_studio.annotations.commands import SetImageStatus
from efficientsam_studio.annotations.document import ImageStatus
from tests.gui.conftest import FakePredictor
from tests.gui.test_editing import draw_polygon


def focused():
    return QApplication.focusWidget()


def activated(qtbot, window):
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window and focused() is not None)


def test_single_key_shortcuts_work_as_soon_as_a_project_opens(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    for name in ("one", "two", "three"):
        ws.categories.add(name)
    ws.session.set_category_by_number(1)
    activated(qtbot, window)
    assert focused() is ws.canvas
    size = window.brush_size.value()
    QTest.keyClick(focused(), Qt.Key.Key_2)
    assert ws.session.current_category.name == "two" and window.brush_size.value() == size
    first = ws.session.current_image_id
    QTest.keyClick(focused(), Qt.Key.Key_D)
    assert ws.session.current_image_id != first
    QTest.keyClick(focused(), Qt.Key.Key_P)
    assert window.tool is ws.polygon


def test_the_brush_size_box_gives_the_keys_back_after_a_change(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    ws.categories.add("one")
    ws.categories.add("two")
    ws.session.set_category_by_number(1)
    activated(qtbot, window)
    box = window.brush_size
    assert box.focusPolicy() == Qt.FocusPolicy.ClickFocus  # Tab and startup never land in it
    size = box.value()
    up_arrow = QPoint(box.width() - 4, 4)
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=up_arrow)
    assert box.value() == size + 1
    assert focused() is ws.canvas
    QTest.keyClick(focused(), Qt.Key.Key_2)
    assert ws.session.current_category.name == "two" and box.value() == size + 1
    # typing a size: the box keeps the keys until Enter, then the canvas has them again
    box.setFocus()
    box.selectAll()
    QTest.keyClicks(box, "42")
    QTest.keyClick(box, Qt.Key.Key_Return)
    assert box.value() == 42 and window.settings.brush_size == 42
    assert focused() is ws.canvas
    QTest.keyClick(focused(), Qt.Key.Key_1)
    assert ws.session.current_category.name == "one" and box.value() == 42


def test_next_and_previous_image_walk_the_filtered_file_list(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    images = ws.session.document.images  # astronaut, chelsea, coffee
    for image in (images[0], images[2]):
        ws.session.push(SetImageStatus(ws.session.document, image.id, ImageStatus.NEEDS_REVIEW))
    combo = ws.files.status_filter
    combo.setCurrentIndex(combo.findData(ImageStatus.NEEDS_REVIEW.value))
    ws.session.set_current_image(images[0].id)
    activated(qtbot, window)
    QTest.keyClick(focused(), Qt.Key.Key_D)
    assert ws.session.current_image_id == images[2].id  # chelsea is filtered out: skipped
    QTest.keyClick(focused(), Qt.Key.Key_D)
    assert ws.session.current_image_id == images[2].id  # the last one in the list: stays
    assert "No next image" in window.status.currentMessage()
    QTest.keyClick(focused(), Qt.Key.Key_A)
    assert ws.session.current_image_id == images[0].id
    combo.setCurrentIndex(combo.findData(""))  # "All" again: every image
    QTest.keyClick(focused(), Qt.Key.Key_D)
    assert ws.session.current_image_id == images[1].id


def test_redo_of_an_add_selects_the_instance_again(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    ws.categories.add("box")
    draw_polygon(qtbot, window, [(10, 10), (50, 10), (50, 40), (10, 40)])
    (instance,) = ws.session.current_instances()
    assert ws.session.selected_instance_id == instance.id
    window.action("undo").trigger()
    assert ws.session.selected_instance_id is None and not ws.session.current_instances()
    window.action("redo").trigger()
    assert ws.session.selected_instance_id == instance.id
    assert ws.polygon.handle_count >= 4  # its vertices can be dragged again
