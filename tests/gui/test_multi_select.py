"""Several instances selected in the Instances panel: delete, relabel and merge act on all of them, each
as one undo step; a single selection behaves as before."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.records import Instance
from tests.gui.conftest import FakePredictor


def window_with_five(make_window, image_folder):
    """A window whose current image has five rectangles of category "a"; category "b" is current."""
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    ws.categories.add("a")
    session, document = ws.session, ws.session.document
    first_category = session.current_category_id
    image = session.current_image
    for k in range(5):
        mask = np.zeros((image.height, image.width), bool)
        mask[5 + k * 10 : 12 + k * 10, 5 + k * 8 : 20 + k * 8] = True
        instance = Instance.from_rle(
            document.allocate_id("instance"), image.id, first_category, masks.encode(mask)
        )
        document.add_instance(instance)
    ws.categories.add("b")
    session.set_category(next(c.id for c in document.categories if c.name == "b"))
    return window


def row_of(ws, instance_id: int) -> int:
    panel = ws.instances.list
    return next(
        r for r in range(panel.count()) if panel.item(r).data(Qt.ItemDataRole.UserRole) == instance_id
    )


def click_row(qtbot, ws, instance_id: int, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    panel = ws.instances.list
    rect = panel.visualItemRect(panel.item(row_of(ws, instance_id)))
    qtbot.mouseClick(panel.viewport(), Qt.MouseButton.LeftButton, modifier, rect.center())


def select_three(qtbot, ws) -> list[int]:
    """Ctrl+click the 1st, 3rd and 5th instance; returns their ids."""
    ids = [inst.id for inst in ws.session.current_instances()]
    chosen = [ids[0], ids[2], ids[4]]
    click_row(qtbot, ws, chosen[0])
    for instance_id in chosen[1:]:
        click_row(qtbot, ws, instance_id, Qt.KeyboardModifier.ControlModifier)
    assert sorted(ws.instances.selected_rows()) == sorted(chosen)
    return chosen


def snapshot(session) -> list[tuple]:
    return [(i.id, i.category_id, i.source, str(i.rle)) for i in session.current_instances()]


def test_delete_removes_the_selected_in_one_step(qtbot, make_window, image_folder):
    window = window_with_five(make_window, image_folder)
    ws = window.workspace
    session = ws.session
    before, depth = snapshot(session), session.undo_stack.count()
    chosen = select_three(qtbot, ws)
    assert session.selected_instance_id == chosen[-1]  # the last clicked row is the current one
    window.action("delete").trigger()
    assert [i.id for i in session.current_instances()] == [r[0] for r in before if r[0] not in chosen]
    assert session.undo_stack.count() == depth + 1
    assert ws.instances.selected_rows() == [] and ws.instances.list.count() == 2
    window.action("undo").trigger()
    assert snapshot(session) == before


def test_relabel_gives_the_selected_the_current_category_in_one_step(qtbot, make_window, image_folder):
    window = window_with_five(make_window, image_folder)
    ws = window.workspace
    session = ws.session
    before, depth = snapshot(session), session.undo_stack.count()
    chosen = select_three(qtbot, ws)
    window.action("relabel").trigger()
    assert session.undo_stack.count() == depth + 1
    relabelled = {i.id for i in session.current_instances() if i.category_id == session.current_category_id}
    assert relabelled == set(chosen)
    assert sorted(ws.instances.selected_rows()) == sorted(chosen)  # kept across the in-place row updates
    assert all("b" in ws.instances.list.item(row_of(ws, i)).text() for i in chosen)
    ws.categories.add("c")  # a category change refills the list: the selection stays
    assert sorted(ws.instances.selected_rows()) == sorted(chosen)
    window.action("undo").trigger()  # the added category
    window.action("undo").trigger()  # the relabel
    assert snapshot(session) == before


def test_ctrl_m_merges_the_selected_into_one(qtbot, make_window, image_folder):
    window = window_with_five(make_window, image_folder)
    ws = window.workspace
    session = ws.session
    before, depth = snapshot(session), session.undo_stack.count()
    chosen = select_three(qtbot, ws)
    union = np.logical_or.reduce([session.document.instance(i).mask() for i in chosen])
    ws.instances.list.setFocus()
    qtbot.keyClick(ws.instances.list, Qt.Key.Key_M, Qt.KeyboardModifier.ControlModifier)
    assert session.undo_stack.count() == depth + 1
    survivors = [i.id for i in session.current_instances()]
    assert len(survivors) == 3 and sum(i in survivors for i in chosen) == 1
    (merged,) = [i for i in chosen if i in survivors]
    assert np.array_equal(session.document.instance(merged).mask(), union)
    assert session.selected_instance_id == merged
    window.action("undo").trigger()
    assert snapshot(session) == before


def test_ctrl_a_in_the_panel_selects_all(qtbot, make_window, image_folder):
    window = window_with_five(make_window, image_folder)
    ws = window.workspace
    click_row(qtbot, ws, ws.session.current_instances()[0].id)
    qtbot.keyClick(ws.instances.list, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert len(ws.instances.selected_rows()) == 5
    window.action("delete").trigger()
    assert ws.session.current_instances() == []


def test_merge_of_one_instance_is_refused(qtbot, make_window, image_folder):
    window = window_with_five(make_window, image_folder)
    ws = window.workspace
    session = ws.session
    before, depth = snapshot(session), session.undo_stack.count()
    click_row(qtbot, ws, session.current_instances()[1].id)
    window.action("merge").trigger()
    assert snapshot(session) == before and session.undo_stack.count() == depth
    assert "two or more" in window.statusBar().currentMessage()


def test_a_single_selection_acts_as_before(qtbot, make_window, image_folder):
    window = window_with_five(make_window, image_folder)
    ws = window.workspace
    session = ws.session
    ids = [inst.id for inst in session.current_instances()]
    chosen = select_three(qtbot, ws)
    ws.session.select_instance(ids[1])  # e.g. a Ctrl+click on the canvas: that one alone is selected
    assert ws.instances.selected_rows() == [ids[1]]
    window.action("relabel").trigger()
    assert [i.id for i in session.current_instances() if i.category_id == session.current_category_id] == [
        ids[1]
    ]
    window.action("delete").trigger()
    assert [i.id for i in session.current_instances()] == [i for i in ids if i != ids[1]]
    assert session.selected_instance_id is None
    assert set(chosen) <= {i.id for i in session.current_instances()}
