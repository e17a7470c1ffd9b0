"""An image with more instances than a uint8 label map holds: every one is drawn, picked and
highlighted, and bulk edits update the overlay and the instance list in place."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.commands import Merge, Relabel, RemoveInstances
from efficientsam_studio.annotations.document import Category
from efficientsam_studio.annotations.records import Instance
from efficientsam_studio.gui.canvas.overlays import SELECTED_ALPHA
from efficientsam_studio.gui.canvas.raster import Pyramid
from tests.gui.conftest import FakePredictor, wait_shown

COUNT = 330


def crowded_window(qtbot, make_window, image_folder):
    """A window showing a 96x64 image with COUNT small overlapping rectangles."""
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    wait_shown(qtbot, window)
    session = window.workspace.session
    document = session.document
    colours = ("#e6194b", "#3cb44b", "#4363d8")
    categories = []
    for index, colour in enumerate(colours):
        category = Category(document.allocate_id("category"), f"kind{index}", colour)
        document.add_category(category)
        categories.append(category)
    image = session.current_image
    rng = np.random.default_rng(3)
    for k in range(COUNT):
        mask = np.zeros((image.height, image.width), bool)
        x, y = (k % 22) * 4 + int(rng.integers(0, 3)), (k // 22) * 4 + int(rng.integers(0, 3))
        mask[y : y + int(rng.integers(4, 9)), x : x + int(rng.integers(4, 9))] = True
        instance = Instance.from_rle(
            document.allocate_id("instance"), image.id, categories[k % 3].id, masks.encode(mask)
        )
        document.add_instance(instance)
    return window, categories


def top_ids(layer) -> np.ndarray:
    height, width = layer._labels.shape
    return np.array([[layer.instance_at(x + 0.5, y + 0.5) or 0 for x in range(width)] for y in range(height)])


def expected_top_ids(session) -> np.ndarray:
    """The id of the topmost instance at each pixel, painted in z-order (0: none)."""
    image = session.current_image
    ids = np.zeros((image.height, image.width), np.int64)
    for inst in session.current_instances():
        ids[inst.mask()] = inst.id
    return ids


def tile_pixels(pyramid) -> list[np.ndarray]:
    """The ARGB pixels of the full-size level's tiles."""
    out = []
    for _, _, image in pyramid.levels[0].tiles:
        image = image.convertToFormat(image.Format.Format_ARGB32)
        out.append(
            np.array([[image.pixel(x, y) for x in range(image.width())] for y in range(image.height())])
        )
    return out


def assert_overlay_fresh(ws) -> None:
    """The overlay equals the document and a label map and pyramid built from scratch."""
    assert np.array_equal(top_ids(ws.layer), expected_top_ids(ws.session))
    shown = tile_pixels(ws.canvas.instances_item._pyramid)
    fresh = tile_pixels(Pyramid.of_labels(ws.layer._labels.copy(), ws.layer._full_lut()))
    assert all(np.array_equal(a, b) for a, b in zip(shown, fresh, strict=True))


def assert_rows(ws) -> None:
    panel, document = ws.instances, ws.session.document
    rows = [panel.list.item(r) for r in range(panel.list.count())]
    expected = list(reversed(ws.session.current_instances()))
    assert [int(item.data(Qt.ItemDataRole.UserRole)) for item in rows] == [inst.id for inst in expected]
    for item, inst in zip(rows, expected, strict=True):
        assert document.category(inst.category_id).name in item.text()


def test_every_instance_is_drawn_picked_and_highlighted_past_255(qtbot, make_window, image_folder):
    window, _ = crowded_window(qtbot, make_window, image_folder)
    ws = window.workspace
    session, document = ws.session, ws.session.document
    instances = session.current_instances()
    assert len(instances) == COUNT
    expected = expected_top_ids(session)
    assert np.array_equal(top_ids(ws.layer), expected)
    assert {int(i) for i in np.unique(expected)} - {0} <= set(ws.layer._slots)
    visible = {int(i) for i in np.unique(expected) if i}
    assert sum(inst.id in visible for inst in instances[300:]) > 20  # the newest ones are drawn
    pixels = tile_pixels(ws.canvas.instances_item._pyramid)[0]
    assert np.all(((pixels >> 24) & 0xFF)[expected != 0] > 0)  # every covered pixel has a colour
    rng = np.random.default_rng(0)
    image = session.current_image
    for _ in range(150):
        x, y = int(rng.integers(0, image.width)), int(rng.integers(0, image.height))
        top = document.instance_at(image.id, x + 0.5, y + 0.5)
        assert ws.layer.instance_at(x + 0.5, y + 0.5) == (None if top is None else top.id)

    top = instances[-1]  # label 330: a Ctrl+click on it selects it and highlights it
    ys, xs = np.nonzero(expected == top.id)
    x, y = int(xs[0]), int(ys[0])
    canvas = ws.canvas
    ctrl = Qt.KeyboardModifier.ControlModifier
    qtbot.mouseClick(
        canvas.viewport(), Qt.MouseButton.LeftButton, ctrl, canvas.mapFromScene(x + 0.5, y + 0.5)
    )
    assert session.selected_instance_id == top.id
    pixels = tile_pixels(canvas.instances_item._pyramid)[0]
    assert (int(pixels[y, x]) >> 24) & 0xFF == SELECTED_ALPHA
    assert ws.instances.list.currentItem().data(Qt.ItemDataRole.UserRole) == top.id
    session.set_hidden(top.id, True)
    pixels = tile_pixels(canvas.instances_item._pyramid)[0]
    assert (int(pixels[y, x]) >> 24) & 0xFF == 0


def test_bulk_edits_update_in_place_and_match_a_rebuild(qtbot, make_window, image_folder):
    window, categories = crowded_window(qtbot, make_window, image_folder)
    ws = window.workspace
    session, document = ws.session, ws.session.document
    ids = [inst.id for inst in session.current_instances()]
    rebuilds = ws.layer.rebuilds
    kept_row = ws.instances.list.item(0)  # the top instance's row
    assert session.push(Relabel(document, ids[:200], categories[0].id))
    assert_rows(ws)
    assert_overlay_fresh(ws)
    assert session.push(RemoveInstances(document, ids[100:220]))
    assert_rows(ws)
    assert_overlay_fresh(ws)
    session.undo()
    assert_rows(ws)
    assert_overlay_fresh(ws)
    session.redo()
    assert_overlay_fresh(ws)
    session.undo()
    session.undo()
    assert_rows(ws)
    assert_overlay_fresh(ws)
    assert session.push(Merge(document, ids[250:300]))
    assert_rows(ws)
    assert_overlay_fresh(ws)
    session.undo()
    assert_rows(ws)
    assert_overlay_fresh(ws)
    assert [inst.id for inst in session.current_instances()] == ids
    assert ws.layer.rebuilds == rebuilds  # every edit redrew only its rectangle
    assert ws.instances.list.item(0) is kept_row  # untouched rows were never refilled
    ws.layer.rebuild()
    assert_overlay_fresh(ws)
