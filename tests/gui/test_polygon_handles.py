"""Vertex handles on a mask of many parts (a noisy model answer): capped, and edits keep the other parts."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import Qt

from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.commands import AddInstance
from efficientsam_studio.gui.settings import StudioSettings
from tests.gui.conftest import FakePredictor


def noisy_mask(height: int = 300, width: int = 400) -> np.ndarray:
    """A 100 x 80 block, and to its right thresholded noise: hundreds of ragged parts and holes whose
    simplified outlines (tolerance 1 px) differ from their pixels by thousands of pixels."""
    mask = np.zeros((height, width), bool)
    mask[20:100, 20:120] = True
    noise = cv2.GaussianBlur(np.random.default_rng(0).random((280, 230)).astype(np.float32), (0, 0), 1.0)
    mask[10:290, 160:390] = noise > np.median(noise)
    return mask


def open_with_instance(make_window, tmp_path: Path, mask: np.ndarray, tolerance: float = 1.0):
    folder = tmp_path / "large"
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "scene.png"), np.full((*mask.shape, 3), 90, np.uint8))
    settings = StudioSettings(autosave_seconds=0, polygon_tolerance=tolerance)
    window = make_window(loader=lambda cfg: FakePredictor(), path=folder, settings=settings)
    ws = window.workspace
    ws.categories.add("thing")
    image, category = ws.session.current_image, ws.session.current_category
    add = AddInstance.from_mask(ws.session.document, image.id, category.id, mask, source="ai")
    assert ws.session.push(add)
    ws.session.select_instance(add.instance.id)
    return window


def test_a_mask_of_many_parts_gets_a_usable_number_of_handles(qtbot, make_window, tmp_path):
    mask = noisy_mask()
    window = open_with_instance(make_window, tmp_path, mask)
    ws = window.workspace
    window.set_tool("polygon")
    block = masks.mask_to_polygons(mask[:, :140], "all_with_holes", 1.0)[0]  # traced as the tool traces
    assert 0 < ws.polygon.handle_count <= 2000
    assert ws.polygon.handle_count >= len(block.points)  # the largest outline is editable
    assert "largest" in window.status.currentMessage()


def test_moving_a_vertex_changes_only_that_outline(qtbot, make_window, tmp_path):
    mask = noisy_mask()
    window = open_with_instance(make_window, tmp_path, mask)
    ws = window.workspace
    window.set_tool("polygon")
    canvas = ws.canvas
    viewport = canvas.viewport()
    corner = canvas.mapFromScene(119.75, 99.75)  # the block's bottom-right vertex
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=corner)
    qtbot.mouseMove(viewport, canvas.mapFromScene(130, 110))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=canvas.mapFromScene(140, 120))
    edited = ws.session.selected_instance.mask()
    assert edited[:, 140:].sum() == mask[:, 140:].sum() and np.array_equal(edited[:, 150:], mask[:, 150:])
    assert edited[:, :140].sum() > mask[:, :140].sum()  # the block grew towards the dragged corner
    assert edited[20:40, 20:60].all()  # and its far side is untouched
    assert ws.session.undo_stack.undoText() == "Move vertex"


def test_handles_follow_the_simplification_setting(qtbot, make_window, tmp_path):
    disc = np.zeros((300, 400), bool)
    cv2.circle(disc.view(np.uint8), (200, 150), 100, 1, -1)
    counts = []
    for tolerance in (0.0, 2.0):
        window = open_with_instance(make_window, tmp_path / str(tolerance), disc, tolerance)
        window.set_tool("polygon")
        counts.append(window.workspace.polygon.handle_count)
        expected = masks.mask_to_polygons(disc, "all_with_holes", tolerance)
        assert counts[-1] == sum(len(ring.points) for ring in expected)
    assert counts[1] < counts[0] / 4


def test_the_largest_outline_stays_editable_above_the_handle_budget():
    import numpy as np

    from efficientsam_studio.annotations import masks
    from efficientsam_studio.gui.tools.polygon_tool import MAX_HANDLES, rings_with_handles

    angles = np.linspace(0, 2 * np.pi, 3 * MAX_HANDLES // 2, endpoint=False)
    big = masks.Ring(np.stack([500 + 450 * np.cos(angles), 500 + 450 * np.sin(angles)], axis=1))
    small = masks.Ring(np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]]))
    assert rings_with_handles([big]) == [0]  # the only outline, over budget: still editable
    assert rings_with_handles([small, big]) == [0]  # something fits: the budget holds
    huge = masks.Ring(np.repeat(big.points, 4, axis=0))
    assert rings_with_handles([huge]) == []  # beyond four budgets: too many handles to be usable
