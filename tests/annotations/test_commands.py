"""Every command is an exact inverse: do/undo/redo round trips restore the document exactly."""

from __future__ import annotations

import numpy as np
import pytest

from efficientsam_studio.annotations import commands as C
from efficientsam_studio.annotations.document import Document, ImageStatus
from efficientsam_studio.annotations.errors import DocumentError, EmptyMaskError

from .conftest import disk, snapshot


def round_trip(doc: Document, command: C.Command) -> tuple:
    """Apply, undo, redo through an UndoStack; check the states; return the state after do."""
    before = snapshot(doc)
    stack = C.UndoStack()
    stack.push(command)
    after = snapshot(doc)
    assert after != before
    stack.undo()
    assert snapshot(doc) == before
    stack.redo()
    assert snapshot(doc) == after
    stack.undo()
    assert snapshot(doc) == before
    stack.redo()
    return after


def test_add_instance_round_trip_and_id_never_reused(doc):
    command = C.AddInstance.from_mask(doc, 1, 1, disk(50, 40, 4), score=0.7, source="ai")
    round_trip(doc, command)
    assert doc.instances_of(1)[-1].id == command.instance.id
    doc.remove_instance(command.instance.id)
    assert doc.allocate_id("instance") > command.instance.id


def test_add_empty_instance_is_refused(doc):
    with pytest.raises(EmptyMaskError, match="empty"):
        C.AddInstance.from_mask(doc, 1, 1, np.zeros((48, 64), bool))


def test_add_instance_with_wrong_size_is_refused(doc):
    with pytest.raises(DocumentError, match="size"):
        C.AddInstance.from_mask(doc, 1, 1, np.ones((10, 10), bool)).do()


def test_remove_instances_restores_z_positions(doc):
    ids = [inst.id for inst in doc.instances_of(1)]
    round_trip(doc, C.RemoveInstances(doc, [ids[2], ids[0], 4]))
    assert [i.id for i in doc.instances_of(1)] == [ids[1]] and doc.instances_of(2) == []
    stack = C.UndoStack()
    stack.push(C.RemoveInstance(doc, ids[1]))
    assert doc.instances_of(1) == []
    stack.undo()
    assert [i.id for i in doc.instances_of(1)] == [ids[1]]


def test_update_instance_mask_and_attributes(doc):
    first = doc.instances_of(1)[0]
    command = C.UpdateInstance(doc, first.id, mask=disk(20, 20, 10), attributes={"occluded": True},
                               score=None)
    round_trip(doc, command)
    updated = doc.instance(first.id)
    assert updated.area > first.area and updated.attributes == {"occluded": True} and updated.score is None
    with pytest.raises(EmptyMaskError):
        C.UpdateInstance(doc, first.id, mask=np.zeros((48, 64), bool))


def test_relabel(doc):
    ids = [inst.id for inst in doc.instances_of(1)]
    round_trip(doc, C.Relabel(doc, ids, 2))
    assert {doc.instance(i).category_id for i in ids} == {2}


def test_merge_unites_masks_and_removes_the_others(doc):
    a, b, c = doc.instances_of(1)
    union = a.mask() | b.mask() | c.mask()
    command = C.Merge(doc, [b.id, a.id, c.id])
    round_trip(doc, command)
    assert [i.id for i in doc.instances_of(1)] == [b.id]
    merged = doc.instance(b.id)
    assert np.array_equal(merged.mask(), union) and merged.score is None and merged.source == "manual"
    with pytest.raises(DocumentError, match="same image"):
        C.Merge(doc, [b.id, 4])


def test_subtract_cuts_the_others_out(doc):
    a, b, _ = doc.instances_of(1)
    C.UpdateInstance(doc, b.id, mask=disk(20, 20, 12)).do()  # b now covers a
    with pytest.raises(EmptyMaskError, match="empty"):
        C.Subtract(doc, a.id, [b.id])
    round_trip(doc, C.Subtract(doc, b.id, [a.id]))
    assert not (doc.instance(b.id).mask() & a.mask()).any()
    assert np.array_equal(doc.instance(b.id).mask(), disk(20, 20, 12) & ~a.mask())


def test_reorder_to_front_and_back(doc):
    a, b, c = (i.id for i in doc.instances_of(1))
    round_trip(doc, C.Reorder.to_front(doc, a))
    assert [i.id for i in doc.instances_of(1)] == [b, c, a]
    round_trip(doc, C.Reorder.to_back(doc, a))
    assert [i.id for i in doc.instances_of(1)] == [a, b, c]
    with pytest.raises(DocumentError, match="exactly"):
        C.Reorder(doc, 1, [a, b])


def test_category_add_rename_recolour(doc):
    add = C.AddCategory(doc, "car")
    round_trip(doc, add)
    round_trip(doc, C.RenameCategory(doc, add.category.id, "vehicle"))
    round_trip(doc, C.RecolourCategory(doc, add.category.id, "#123456"))
    assert doc.category(add.category.id).name == "vehicle"
    with pytest.raises(DocumentError, match="already exists"):
        C.RenameCategory(doc, add.category.id, "dog")
    with pytest.raises(DocumentError, match="rrggbb"):
        C.RecolourCategory(doc, add.category.id, "red").do()


def test_remove_category_restores_its_instances_on_undo(doc):
    before = [i.id for i in doc.instances_of(1)]
    round_trip(doc, C.RemoveCategory(doc, 1))
    assert doc.instances_of_category(1) == [] and doc.category_by_name("cell") is None
    assert [i.id for i in doc.instances_of(1)] == [before[1]]


def test_set_image_status(doc):
    round_trip(doc, C.SetImageStatus(doc, [1, 2], ImageStatus.DONE))
    assert {img.status for img in doc.images} == {ImageStatus.DONE}
    with pytest.raises(ValueError):
        C.SetImageStatus(doc, 1, "finished")


def test_compound_and_stack_texts_and_clean_state(doc):
    stack = C.UndoStack()
    stack.set_clean()
    group = C.CompoundCommand("Add 2 masks", [C.AddInstance.from_mask(doc, 2, 1, disk(30, 30, 3)),
                                              C.AddInstance.from_mask(doc, 2, 2, disk(40, 30, 3))])
    before = snapshot(doc)
    stack.push(group)
    assert stack.undo_text == "Add 2 masks" and not stack.is_clean and len(doc.instances_of(2)) == 3
    stack.undo()
    assert snapshot(doc) == before and stack.is_clean and stack.redo_text == "Add 2 masks"
    with pytest.raises(DocumentError):
        stack.undo()


def test_changes_are_notified_and_make_the_document_dirty(doc):
    seen = []
    unsubscribe = doc.subscribe(seen.append)
    assert not doc.dirty
    C.UndoStack().push(C.RemoveInstance(doc, 1))
    assert doc.dirty and [c.kind for c in seen] == ["instance_removed"] and seen[0].image_id == 1
    unsubscribe()
    C.UndoStack().push(C.RemoveInstance(doc, 2))
    assert len(seen) == 1


def test_instance_at_finds_the_topmost_under_a_pixel(doc):
    a, b, c = doc.instances_of(1)
    assert doc.instance_at(1, 20, 20).id == a.id  # centre of the disk
    hole = np.argwhere(disk(40, 24, 4) & ~c.mask())[0]
    assert not b.mask()[hole[0], hole[1]]
    assert doc.instance_at(1, hole[1], hole[0]) is None  # in the ring's hole
    assert doc.instance_at(1, 63, 0) is None
    overlap = np.argwhere(b.mask() & c.mask())
    row, col = overlap[0]
    assert doc.instance_at(1, col, row).id == c.id  # c is above b
    C.UndoStack().push(C.Reorder.to_front(doc, b.id))
    assert doc.instance_at(1, col, row).id == b.id


def test_a_failing_listener_does_not_half_apply_a_command(doc, caplog):
    def broken(change):
        raise RuntimeError("view bug")

    doc.subscribe(broken)
    before = snapshot(doc)
    stack = C.UndoStack()
    stack.push(C.RemoveInstances(doc, [1, 2, 3]))
    assert doc.instances_of(1) == [] and "view bug" in caplog.text
    stack.undo()
    assert snapshot(doc) == before
