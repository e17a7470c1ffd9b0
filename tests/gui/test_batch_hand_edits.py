"""An AI mask the user corrects in the app (polygon vertex moved, relabelled) becomes hand-made, so that
a batch run with overwrite keeps it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import Qt

from efficientsam_studio.annotations.commands import AddInstance
from efficientsam_studio.batch import BatchParams, BoxPrompt, PromptSet, run_batch
from efficientsam_studio.gui.settings import StudioSettings
from tests.batch.fake_predictor import ShapesPredictor
from tests.gui.conftest import FakePredictor


def _window_with_ai_mask(make_window, tmp_path: Path):
    folder = tmp_path / "scene"
    folder.mkdir()
    cv2.imwrite(str(folder / "scene.png"), np.full((120, 160, 3), 90, np.uint8))
    window = make_window(
        loader=lambda cfg: FakePredictor(), path=folder, settings=StudioSettings(autosave_seconds=0)
    )
    ws = window.workspace
    ws.categories.add("thing")
    ws.categories.add("other")
    mask = np.zeros((120, 160), bool)
    mask[20:60, 20:80] = True
    session = ws.session
    add = AddInstance.from_mask(
        session.document, session.current_image.id, session.current_category.id, mask, score=0.9, source="ai"
    )
    assert session.push(add)
    session.select_instance(add.instance.id)
    return window, add.instance.id


def test_moving_a_vertex_of_an_ai_mask_makes_it_hand_made(qtbot, make_window, tmp_path):
    window, instance_id = _window_with_ai_mask(make_window, tmp_path)
    ws = window.workspace
    window.set_tool("polygon")
    canvas, viewport = ws.canvas, ws.canvas.viewport()
    corner = canvas.mapFromScene(79.75, 59.75)  # the bottom-right vertex of the traced outline
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=corner)
    qtbot.mouseMove(viewport, canvas.mapFromScene(90, 70))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=canvas.mapFromScene(100, 80))
    assert ws.session.undo_stack.undoText() == "Move vertex"
    edited = ws.session.document.instance(instance_id)
    assert edited.source == "manual" and edited.area > 40 * 60
    ws.session.undo_stack.undo()
    assert ws.session.document.instance(instance_id).source == "ai"
    ws.session.undo_stack.redo()

    document, image = ws.session.document, ws.session.current_image
    prompts = PromptSet("boxes", source=Path("boxes.csv"))
    prompts.add("scene.png", BoxPrompt((20.0, 20.0, 80.0, 60.0), "thing", 0.9))
    summary = run_batch(  # overwrite replaces AI masks, and keeps the corrected one
        ws.project,
        mode="boxes",
        params=BatchParams(overwrite=True),
        predictor=ShapesPredictor(),
        prompts=prompts,
    )
    assert summary.labelled == 1 and summary.manual_removed == 0
    assert [i.source for i in document.instances_of(image.id)] == ["manual", "ai"]


def test_relabelling_an_ai_mask_in_the_instances_panel_makes_it_hand_made(qtbot, make_window, tmp_path):
    window, instance_id = _window_with_ai_mask(make_window, tmp_path)
    ws = window.workspace
    document = ws.session.document
    current = document.instance(instance_id).category_id
    other = next(c for c in document.categories if c.id != current)
    ws.session.set_category(other.id)
    assert ws.instances.relabel_selected()
    relabelled = ws.session.document.instance(instance_id)
    assert relabelled.category_id == other.id and relabelled.source == "manual" and relabelled.score == 0.9
