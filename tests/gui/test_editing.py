"""Manual tools (polygon, brush, eraser), panels, autosave and reopen, the close guard, export."""

from __future__ import annotations

import json

import numpy as np
from pycocotools.coco import COCO
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from efficientsam_studio.annotations.project import Project
from efficientsam_studio.gui.dialogs.export import available_formats, run_export
from tests.gui.conftest import FakePredictor, wait_shown


def drag(qtbot, window, points):
    canvas = window.workspace.canvas
    viewport = canvas.viewport()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=canvas.mapFromScene(*points[0]))
    for x, y in points[1:]:
        qtbot.mouseMove(viewport, canvas.mapFromScene(x, y))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=canvas.mapFromScene(*points[-1]))


def draw_polygon(qtbot, window, vertices):
    canvas = window.workspace.canvas
    window.set_tool("polygon")
    for x, y in vertices:
        qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=canvas.mapFromScene(x, y))
    window.action("accept").trigger()


def test_polygon_tool_draws_and_edits_vertices(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    ws.categories.add("box")
    draw_polygon(qtbot, window, [(10, 10), (50, 10), (50, 40), (10, 40)])
    (instance,) = ws.session.current_instances()
    assert instance.source == "manual" and abs(instance.area - 40 * 30) <= 80
    assert ws.session.selected_instance_id == instance.id and ws.polygon.handle_count >= 4
    drag(qtbot, window, [(50, 40), (55, 45), (60, 50)])  # pull the bottom-right corner outwards
    edited = ws.session.selected_instance
    assert edited.area > instance.area
    window.action("undo").trigger()
    assert ws.session.document.instance(instance.id).area == instance.area
    corner = ws.canvas.mapFromScene(50, 40)
    before = ws.polygon.handle_count
    qtbot.mouseClick(
        ws.canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, corner
    )
    assert ws.polygon.handle_count == before - 1  # Shift+click deleted the corner: a triangle is left
    assert ws.session.selected_instance.area < instance.area * 0.7


def test_brush_and_eraser_edit_the_selected_mask(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    ws.categories.add("thing")
    window.set_tool("brush")
    window.brush_size.setValue(6)
    drag(qtbot, window, [(10, 10), (30, 10), (50, 10)])  # no selection: a new instance
    (instance,) = ws.session.current_instances()
    assert instance.mask()[10, 30] and not instance.mask()[30, 30]
    drag(qtbot, window, [(30, 10), (30, 30), (30, 50)])  # adds to the selected instance
    grown = ws.session.selected_instance
    assert grown.mask()[30, 30] and grown.area > instance.area
    window.set_tool("eraser")
    drag(qtbot, window, [(20, 5), (20, 15)])
    erased = ws.session.selected_instance
    assert not erased.mask()[10, 20] and erased.area < grown.area
    window.action("undo").trigger()
    assert ws.session.selected_instance.mask()[10, 20]
    window.action("redo").trigger()
    assert not ws.session.selected_instance.mask()[10, 20]


def test_instances_panel_relabel_hide_reorder_delete(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    ws.categories.add("a")
    draw_polygon(qtbot, window, [(5, 5), (30, 5), (30, 30), (5, 30)])
    draw_polygon(qtbot, window, [(20, 20), (60, 20), (60, 50), (20, 50)])
    first, second = (inst.id for inst in ws.session.current_instances())
    ws.categories.add("b")
    window.action("relabel").trigger()  # the selected (second) instance becomes "b"
    assert ws.session.document.instance(second).category_id == ws.session.current_category_id
    ws.session.select_instance(first)
    assert ws.instances.move_selected(1)
    assert [i.id for i in ws.session.current_instances()] == [second, first]
    item = ws.instances.list.item(0)
    item.setCheckState(Qt.CheckState.Unchecked)
    assert first in ws.session.hidden
    window.action("delete").trigger()
    assert [i.id for i in ws.session.current_instances()] == [second]
    window.action("undo").trigger()
    assert len(ws.session.current_instances()) == 2


def test_category_number_keys_rename_recolour(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    for name in ("one", "two", "three"):
        ws.categories.add(name)
    ws.canvas.setFocus()
    qtbot.keyClick(ws.canvas, Qt.Key.Key_2)
    assert ws.session.current_category.name == "two"
    assert ws.categories.rename(ws.session.current_category_id, "deux")
    assert ws.categories.recolour(ws.session.current_category_id, "#123456")
    assert ws.session.current_category.colour == "#123456"
    assert ws.categories.list.currentItem().text() == "2. deux"


def test_autosave_then_reopen(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    ws.categories.add("cat")
    draw_polygon(qtbot, window, [(10, 10), (50, 10), (50, 40)])
    project_path = ws.project.path
    assert ws.project.document.dirty
    qtbot.waitUntil(lambda: not ws.project.document.dirty, timeout=5000)  # the debounced autosave ran
    window.close()
    with Project.open(project_path) as project:
        (instance,) = project.document.iter_instances()
        assert project.document.category(instance.category_id).name == "cat"
    reopened = make_window(loader=lambda cfg: FakePredictor(), path=project_path)
    assert len(reopened.workspace.session.current_instances()) == 1


def test_close_guard_asks_and_can_cancel(qtbot, make_window, image_folder, message_boxes):
    window = make_window(
        loader=lambda cfg: FakePredictor(),
        path=image_folder,
        settings=__import__("efficientsam_studio.gui.settings", fromlist=["x"]).StudioSettings(
            autosave_seconds=0
        ),
    )
    window.workspace.categories.add("cat")
    message_boxes.answer = QMessageBox.StandardButton.Cancel
    assert not window.close()
    assert window.workspace is not None and "Unsaved changes" in message_boxes.titles("question")
    message_boxes.answer = QMessageBox.StandardButton.Save
    path = window.workspace.project.path
    assert window.close()
    assert "cat" in path.read_text()


def test_second_instance_is_refused_clearly(qtbot, make_window, image_folder, message_boxes):
    make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    other = make_window(loader=lambda cfg: FakePredictor())
    assert not other.open_path(image_folder)
    kind, title, text = message_boxes.calls[-1]
    assert kind == "critical" and title == "Project is open elsewhere" and "already open" in text
    assert "delete the lock file" not in text


def test_export_coco_loads_in_pycocotools(qtbot, make_window, image_folder, tmp_path):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    ws.categories.add("cat")
    draw_polygon(qtbot, window, [(10, 10), (50, 10), (50, 40), (10, 40)])
    window.action("next_image").trigger()
    wait_shown(qtbot, window)
    window.set_tool("brush")
    drag(qtbot, window, [(20, 20), (40, 30)])
    assert {f.key for f in available_formats()} >= {"coco", "labelme"}
    out = tmp_path / "export" / "coco.json"
    report = run_export(ws.project, "coco", out)
    assert report.instances == 2
    coco = COCO(str(out))
    assert len(coco.getAnnIds()) == 2 and [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["cat"]
    for ann in coco.loadAnns(coco.getAnnIds()):
        assert coco.annToMask(ann).sum() > 0
    assert json.loads(out.read_text())["images"][0]["width"] == 96


def test_export_dialog_writes_every_available_format(qtbot, make_window, image_folder, message_boxes):
    from efficientsam_studio.gui.dialogs.export import ExportDialog

    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    ws.categories.add("cat")
    draw_polygon(qtbot, window, [(10, 10), (50, 10), (50, 40)])
    for index in range(len(available_formats())):
        dialog = ExportDialog(ws.project, window.settings, window)
        dialog.format.setCurrentIndex(index)
        assert dialog.export(), message_boxes.calls
        qtbot.waitUntil(lambda d=dialog: not d.running, timeout=10_000)  # it writes in a worker thread
        assert dialog.report is not None and dialog.report.instances == 1, message_boxes.calls
        assert message_boxes.calls[-1][1] == "Export done"


def test_large_image_paints_few_tiles_at_any_zoom(qtbot):
    from PySide6.QtGui import QColor

    from efficientsam_studio.gui.canvas.view import CanvasView

    canvas = CanvasView()
    qtbot.addWidget(canvas)
    canvas.resize(800, 600)
    canvas.show()
    big = np.zeros((6000, 8000, 3), np.uint8)
    big[::100] = 255
    canvas.set_image(big)
    item = canvas.image_item
    assert item.level_count() == 4  # 8000 -> 4000 -> 2000 -> 1000 wide
    canvas.fit()
    canvas.grab()
    scale, tiles = item.painted
    assert scale <= 0.25 and tiles <= 2  # zoomed out: a coarse level, not 48 full-size tiles
    canvas.actual_size()
    canvas.grab()
    scale, tiles = item.painted
    assert scale == 1.0 and tiles <= 4  # 1:1: only the full-size tiles in view
    mask = np.zeros((6000, 8000), bool)
    mask[1000:5000, 2000:7000] = True
    canvas.set_preview(mask, QColor(255, 0, 0, 120))
    assert canvas.preview_item.pos().x() == 2000 and canvas.preview_item.boundingRect().width() == 5000


def test_ctrl_click_selects_the_instance_under_the_cursor(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    ws.categories.add("a")
    draw_polygon(qtbot, window, [(5, 5), (30, 5), (30, 30), (5, 30)])
    draw_polygon(qtbot, window, [(20, 20), (60, 20), (60, 50), (20, 50)])
    first, second = (inst.id for inst in ws.session.current_instances())
    canvas = ws.canvas
    ctrl = Qt.KeyboardModifier.ControlModifier
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, ctrl, canvas.mapFromScene(10, 10))
    assert ws.session.selected_instance_id == first
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, ctrl, canvas.mapFromScene(25, 25))
    assert ws.session.selected_instance_id == second  # the one on top where they overlap
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, ctrl, canvas.mapFromScene(80, 60))
    assert ws.session.selected_instance_id is None
    assert len(ws.session.current_instances()) == 2  # selecting drew nothing


def test_failed_autosave_keeps_the_edits_and_says_so(qtbot, make_window, image_folder, monkeypatch):
    from efficientsam_studio.annotations.errors import SaveError

    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace

    def refuse(*_args):
        raise SaveError("disk full")

    monkeypatch.setattr(ws.project, "write_save", refuse)  # the disk write, in the save's worker thread
    ws.categories.add("cat")
    with qtbot.waitSignal(ws.autosave.failed, timeout=5000):
        pass
    assert ws.project.document.dirty and ws.session.current_category.name == "cat"
    assert "disk full" in window.status.currentMessage()
    monkeypatch.undo()
    assert window.save()


def test_damaged_project_offers_the_last_good_version(qtbot, make_window, image_folder, message_boxes):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    ws.categories.add("first")
    assert window.save()
    ws.categories.add("second")
    assert window.save()  # the file before this save is kept as the backup
    path = ws.project.path
    window.close()
    path.write_text('{"format": "efficientsam-studio-project", "schema_version": 1, "categ')
    message_boxes.answer = QMessageBox.StandardButton.Yes
    reopened = make_window(loader=lambda cfg: FakePredictor())
    assert reopened.open_path(path)
    assert "Damaged project file" in message_boxes.titles("question")
    names = [c.name for c in reopened.workspace.session.document.categories]
    assert names == ["first"]


def test_a_failed_recovery_is_shown_not_raised(qtbot, make_window, image_folder, message_boxes, monkeypatch):
    from efficientsam_studio.annotations.errors import CorruptProjectError
    from efficientsam_studio.gui import open_flow

    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    path = window.workspace.project.path
    assert window.save()
    window.close()

    def damaged(target, recover=False, read_only=False):
        if recover:  # the backup turned out damaged too (or another app took the project meanwhile)
            backup = path.with_suffix(".bak")
            raise CorruptProjectError("instances[0]: bad counts", path, damaged_backup=backup)
        raise CorruptProjectError("categories: truncated", path, backup_path=path.with_suffix(".bak"))

    monkeypatch.setattr(open_flow, "open_target", damaged)
    message_boxes.answer = QMessageBox.StandardButton.Yes
    reopened = make_window(loader=lambda cfg: FakePredictor())
    assert not reopened.open_path(path)
    assert "Damaged project file" in message_boxes.titles("question")
    assert "Cannot open project" in message_boxes.titles("critical")
    assert reopened.workspace is None
