"""The file list (filters, unreadable files) and the categories panel (names, deleting a used category)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QToolButton

from tests.gui.conftest import FakePredictor, wait_shown
from tests.gui.test_editing import draw_polygon


def test_marking_the_shown_image_out_of_the_status_filter_keeps_it_shown(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    files, session = ws.files, ws.session
    files.status_filter.setCurrentIndex(files.status_filter.findData("unlabelled"))
    shown = session.current_image_id
    window.action("mark_done").trigger()
    assert files.proxy.rowCount() == 2  # its row left the filtered list
    assert session.current_image_id == shown and ws.images.shown_id == shown
    assert not files.view.currentIndex().isValid()
    files.view.setCurrentIndex(files.proxy.index(1, 0))  # choosing a row still opens that image
    assert session.current_image_id == files.proxy.index(1, 0).data(Qt.ItemDataRole.UserRole + 2)
    files.status_filter.setCurrentIndex(files.status_filter.findData("done"))
    assert session.current_image_id != shown and files.proxy.rowCount() == 1
    files.view.setCurrentIndex(files.proxy.index(0, 0))
    assert session.current_image_id == shown


def test_an_unreadable_image_is_marked_and_the_view_cleared(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    canvas = ws.canvas
    qtbot.mouseMove(canvas.viewport(), canvas.mapFromScene(20, 20))
    assert window.status.position_label.text() and window.status.zoom_label.text()
    second = ws.session.document.images[1]
    data = (image_folder / second.path).read_bytes()
    (image_folder / second.path).write_bytes(b"not an image")
    window.action("next_image").trigger()
    qtbot.waitUntil(lambda: "cannot load image" in window.status.currentMessage(), timeout=10_000)
    assert window.status.position_label.text() == "" and window.status.zoom_label.text() == ""
    qtbot.mouseMove(canvas.viewport(), canvas.viewport().rect().center())
    assert window.status.position_label.text() == ""
    index = ws.files.model.index(ws.files.model.row_of(second.id))
    tip = index.data(Qt.ItemDataRole.ToolTipRole)
    assert tip.startswith(f"{second.path}: unreadable (cannot load image") and "96x64" not in tip
    assert index.data(Qt.ItemDataRole.DecorationRole).cacheKey() == ws.files.model._broken.cacheKey()
    (image_folder / second.path).write_bytes(data)
    window.action("previous_image").trigger()
    wait_shown(qtbot, window)
    window.action("next_image").trigger()
    wait_shown(qtbot, window)
    assert index.data(Qt.ItemDataRole.ToolTipRole) == f"{second.path}: 96x64, Unlabelled"


def delete_button(window) -> QToolButton:
    buttons = window.workspace.categories.findChildren(QToolButton)
    return next(b for b in buttons if b.toolTip().startswith("Delete"))


def test_deleting_a_used_category_asks_first(qtbot, make_window, image_folder, message_boxes):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    document = ws.session.document
    ws.categories.add("dog")
    draw_polygon(qtbot, window, [(10, 10), (50, 10), (50, 40), (10, 40)])
    draw_polygon(qtbot, window, [(60, 10), (90, 10), (90, 40)])
    window.action("next_image").trigger()
    wait_shown(qtbot, window)
    draw_polygon(qtbot, window, [(10, 10), (50, 10), (50, 40), (10, 40)])
    message_boxes.answer = QMessageBox.StandardButton.No
    qtbot.mouseClick(delete_button(window), Qt.MouseButton.LeftButton)
    kind, title, text = message_boxes.calls[-1]
    assert kind == "question" and "'dog'" in text and "3 instances on 2 images" in text
    assert document.instance_count == 3 and [c.name for c in document.categories] == ["dog"]
    message_boxes.answer = QMessageBox.StandardButton.Yes
    qtbot.mouseClick(delete_button(window), Qt.MouseButton.LeftButton)
    assert document.instance_count == 0 and document.categories == []
    window.action("undo").trigger()
    assert document.instance_count == 3
    ws.categories.add("unused")
    asked = len(message_boxes.calls)
    qtbot.mouseClick(delete_button(window), Qt.MouseButton.LeftButton)
    assert len(message_boxes.calls) == asked and [c.name for c in document.categories] == ["dog"]


def test_category_names_are_compared_ignoring_case(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    assert ws.categories.add("dog") and ws.categories.add("cat")
    assert not ws.categories.add("Dog")
    assert window.status.currentMessage() == "a category named 'dog' already exists"
    cat = ws.session.document.category_by_name("cat")
    assert not ws.categories.rename(cat.id, "DOG")
    dog = ws.session.document.category_by_name("dog")
    assert ws.categories.rename(dog.id, "Dog")  # its own name in other letters is fine
    assert [c.name for c in ws.session.document.categories] == ["Dog", "cat"]
