"""Edits work on the instance's bbox and the stroke's extent, never on the whole image, and give the
masks and overlay that whole-image computation gives."""

from __future__ import annotations

import cv2
import numpy as np

from efficientsam_studio.annotations import masks
from efficientsam_studio.gui.canvas.overlays import build_label_map
from efficientsam_studio.gui.canvas.raster import Pyramid
from efficientsam_studio.gui.tools.brush_tool import rasterise_stroke_window
from tests.gui.conftest import FakePredictor, wait_shown
from tests.gui.test_editing import drag, draw_polygon


def whole_stroke(points, size, height, width):
    """The stroke drawn on a canvas of the whole image."""
    canvas = np.zeros((height, width), dtype=np.uint8)
    radius = max(int(round(size / 2)), 1)
    pts = np.round(np.asarray(points, dtype=np.float64)).astype(np.int32).reshape(-1, 2)
    if len(pts) == 1:
        cv2.circle(canvas, (int(pts[0, 0]), int(pts[0, 1])), radius, 1, thickness=-1)
    else:
        cv2.polylines(canvas, [pts], isClosed=False, color=1, thickness=2 * radius, lineType=cv2.LINE_8)
        for x, y in pts[[0, -1]]:
            cv2.circle(canvas, (int(x), int(y)), radius, 1, thickness=-1)
    return canvas.astype(bool)


def test_a_stroke_rasterised_in_its_window_equals_the_whole_image_stroke():
    rng = np.random.default_rng(0)
    for _ in range(1500):
        height, width = (int(v) for v in rng.integers(5, 80, 2))
        size = int(rng.integers(1, 40))
        points = [
            (rng.uniform(-30, width + 30), rng.uniform(-30, height + 30)) for _ in range(rng.integers(1, 6))
        ]
        crop, x, y = rasterise_stroke_window(points, size, height, width)
        placed = np.zeros((height, width), bool)
        placed[y : y + crop.shape[0], x : x + crop.shape[1]] = crop
        assert np.array_equal(placed, whole_stroke(points, size, height, width))


def test_updating_a_region_of_a_label_pyramid_equals_building_it_again(qtbot):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, (1300, 2500)).astype(np.uint8)
    colours = Pyramid.of_labels(np.zeros((1, 1), np.uint8), []).table
    pyramid = Pyramid.of_labels(labels, [])
    pyramid.table = colours
    for x0, y0, x1, y1 in [(0, 0, 7, 5), (1990, 1200, 2500, 1300), (1000, 3, 1031, 1299), (5, 5, 5, 9)]:
        labels[y0:y1, x0:x1] = rng.integers(0, 9, (y1 - y0, x1 - x0))
        pyramid.update_region(x0, y0, x1, y1)
    fresh = Pyramid.of_labels(labels.copy(), [])
    assert len(pyramid.levels) == len(fresh.levels) == 3
    for level, expected in zip(pyramid.levels, fresh.levels, strict=True):
        assert np.array_equal(level.array, expected.array)
        for (x, y, image), (ex, ey, other) in zip(level.tiles, expected.tiles, strict=True):
            assert (x, y) == (ex, ey) and image == other


def top_ids(layer) -> np.ndarray:
    """The instance id drawn at each pixel of the layer's label map (0: none)."""
    by_label = np.zeros(256, np.int64)
    for instance_id, label in layer._slots.items():
        by_label[label] = instance_id
    return by_label[layer._labels]


def expected_top_ids(session) -> np.ndarray:
    instances = session.current_instances()
    labels = build_label_map([inst.mask() for inst in instances], *instances[0].mask().shape)
    ids = np.array([0, *(inst.id for inst in instances)])
    return ids[labels]


def test_edits_decode_no_whole_image_and_keep_the_overlay_exact(
    qtbot, make_window, image_folder, monkeypatch
):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    wait_shown(qtbot, window)
    ws = window.workspace
    ws.categories.add("thing")
    calls = []
    whole_decode = masks.decode
    monkeypatch.setattr(masks, "decode", lambda rle: calls.append("decode") or whole_decode(rle))
    pycoco_decode = masks.coco_mask.decode
    monkeypatch.setattr(masks.coco_mask, "decode", lambda rle: calls.append("pycoco") or pycoco_decode(rle))

    draw_polygon(qtbot, window, [(10, 10), (50, 10), (50, 40), (10, 40)])  # the tool traces its outline
    draw_polygon(qtbot, window, [(0, 30), (95, 30), (95, 63), (0, 63)])  # touches the border, overlaps
    first = ws.session.current_instances()[0]
    ws.session.select_instance(first.id)
    drag(qtbot, window, [(50, 40), (55, 45), (60, 50)])  # move a vertex of the first polygon
    window.set_tool("brush")
    window.brush_size.setValue(6)
    drag(qtbot, window, [(80, 5), (94, 5), (95, 20)])
    window.set_tool("eraser")
    drag(qtbot, window, [(20, 5), (20, 30)])
    window.action("undo").trigger()
    window.action("undo").trigger()
    window.action("redo").trigger()
    ws.session.select_instance(None)
    window.set_tool("brush")
    drag(qtbot, window, [(2, 2), (3, 3)])  # a new instance
    window.set_tool("polygon")
    assert calls == []
    assert ws.layer.rebuilds == 1 and ws.layer.updates >= 8
    monkeypatch.undo()

    assert np.array_equal(top_ids(ws.layer), expected_top_ids(ws.session))
    for instance in ws.session.current_instances():  # the stored RLE is the encoding of its pixels
        assert instance.rle == masks.encode(instance.mask())
    ws.layer.rebuild()
    assert np.array_equal(top_ids(ws.layer), expected_top_ids(ws.session))


def test_the_brush_on_a_selected_instance_gives_the_whole_image_result(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    wait_shown(qtbot, window)
    ws = window.workspace
    ws.categories.add("thing")
    draw_polygon(qtbot, window, [(0, 0), (40, 0), (40, 30), (0, 30)])
    (instance,) = ws.session.current_instances()
    ws.session.select_instance(instance.id)
    image = ws.session.current_image
    window.set_tool("brush")
    window.brush_size.setValue(9)
    points = [(60.0, 50.0), (90.0, 60.0)]
    assert ws.brush.apply_stroke(points)
    painted = ws.session.selected_instance
    stroke = whole_stroke(points, 9, image.height, image.width)
    assert np.array_equal(painted.mask(), instance.mask() | stroke)
    window.set_tool("eraser")
    assert ws.eraser.apply_stroke([(0.0, 0.0), (20.0, 10.0)])
    erased = ws.session.selected_instance
    assert np.array_equal(
        erased.mask(), painted.mask() & ~whole_stroke([(0, 0), (20, 10)], 9, *erased.mask().shape)
    )
    window.action("undo").trigger()
    assert ws.session.selected_instance == painted


def test_a_new_stroke_outside_the_image_adds_nothing_and_says_why(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    wait_shown(qtbot, window)
    ws = window.workspace
    ws.categories.add("thing")
    window.set_tool("brush")
    window.brush_size.setValue(5)
    messages = []
    ws.brush.status.connect(messages.append)
    assert not ws.brush.apply_stroke([(-50.0, -50.0), (-30.0, -40.0)])
    assert ws.session.current_instances() == [] and messages == ["The stroke is outside the image."]
