"""The batch dialog runs the batch pipeline in a worker thread; results land as undoable AI instances."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from efficientsam_studio.annotations.document import ImageStatus
from efficientsam_studio.annotations.project import Project
from efficientsam_studio.errors import StudioError
from efficientsam_studio.gui.batch_dialog import BatchDialog
from efficientsam_studio.gui.session import Session
from tests.batch.conftest import SCENES, write_boxes_csv, write_scenes
from tests.batch.fake_predictor import ShapesPredictor


class SlowPredictor(ShapesPredictor):
    def set_image(self, image):
        time.sleep(0.5)
        super().set_image(image)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, qtbot):
    monkeypatch.setenv("EFSAM_HOME", str(tmp_path / "home"))
    project = Project.create(write_scenes(tmp_path / "images"), "labels")
    session = Session(project.document, project.folder)
    yield project, session
    session.close()
    project.close()


@pytest.fixture
def boxes_csv(tmp_path: Path) -> Path:
    return write_boxes_csv(tmp_path / "boxes.csv")


def _dialog(qtbot, workspace, factory=ShapesPredictor) -> BatchDialog:
    project, session = workspace
    dialog = BatchDialog(session, project, factory)
    qtbot.addWidget(dialog)
    return dialog


def _run(qtbot, dialog: BatchDialog) -> None:
    dialog.start_button.click()
    qtbot.waitUntil(lambda: not dialog.running, timeout=20000)


def test_boxes_run_lands_undoable_ai_instances_and_saves(qtbot, workspace, boxes_csv):
    project, session = workspace
    dialog = _dialog(qtbot, workspace)
    dialog.mode.setCurrentIndex(dialog.mode.findData("boxes"))
    dialog.prompt_file.setText(str(boxes_csv))
    _run(qtbot, dialog)
    doc = project.document
    assert dialog.summary.labelled == 3 and dialog.summary.instances_added == 5
    assert doc.instance_count == 5 and all(i.source == "ai" for i in doc.iter_instances())
    assert all(img.status == ImageStatus.NEEDS_REVIEW for img in doc.images)
    assert not doc.dirty  # saved at the end
    assert dialog.progress_bar.value() == 3 and "3 labelled" in dialog.report.toPlainText()
    assert session.undo_stack.count() == 3
    session.undo_stack.undo()  # one image's batch result is one undo step
    last = doc.image_by_path("img3.png")
    assert doc.instances_of(last.id) == [] and last.status == ImageStatus.UNLABELLED
    assert doc.instance_count == 3


def test_everything_run_uses_the_grid_parameters(qtbot, workspace):
    project, _ = workspace
    dialog = _dialog(qtbot, workspace)
    assert dialog.mode.currentData() == "everything" and dialog.grid_box.isVisibleTo(dialog)
    dialog.points_per_side.setValue(8)
    dialog.min_area.setValue(20)
    _run(qtbot, dialog)
    assert dialog.summary.labelled == 3 and project.document.instance_count == 5
    assert {c.name for c in project.document.categories} == {"object"}


def test_cancel_stops_the_run_and_keeps_finished_images(qtbot, workspace):
    project, _ = workspace
    dialog = _dialog(qtbot, workspace, SlowPredictor)
    dialog.points_per_side.setValue(4)
    dialog.start_button.click()
    qtbot.waitUntil(lambda: dialog.summary.labelled >= 1, timeout=20000)
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: not dialog.running, timeout=20000)
    assert dialog.summary.cancelled and dialog.summary.labelled < 3
    statuses = [img.status for img in project.document.images]
    assert statuses.count(ImageStatus.NEEDS_REVIEW) == dialog.summary.labelled
    assert not project.document.dirty
    assert dialog.start_button.isEnabled() and not dialog.cancel_button.isEnabled()


def test_closing_while_running_cancels_then_closes(qtbot, workspace):
    dialog = _dialog(qtbot, workspace, SlowPredictor)
    dialog.show()
    dialog.start_button.click()
    assert dialog.running
    dialog.close()
    assert dialog.isVisible()  # waits for the worker to stop
    qtbot.waitUntil(lambda: not dialog.running and not dialog.isVisible(), timeout=20000)
    assert dialog.summary.cancelled


def test_a_model_that_fails_to_load_is_reported(qtbot, workspace):
    def broken():
        raise StudioError("no weights installed for vit_t: run efsam-studio weights download vit_t")

    dialog = _dialog(qtbot, workspace, broken)
    _run(qtbot, dialog)
    assert "weights download" in dialog.report.toPlainText()
    assert workspace[0].document.instance_count == 0 and dialog.start_button.isEnabled()


def test_missing_or_bad_prompt_files_are_refused_before_starting(qtbot, workspace, tmp_path):
    dialog = _dialog(qtbot, workspace)
    dialog.mode.setCurrentIndex(dialog.mode.findData("points"))
    dialog.start_button.click()
    assert "choose a points file" in dialog.status.text() and not dialog.running
    bad = tmp_path / "p.csv"
    bad.write_text("image,x\n")
    dialog.prompt_file.setText(str(bad))
    dialog.start_button.click()
    assert "header lacks" in dialog.status.text() and not dialog.running


def test_images_labelled_already_are_skipped(qtbot, workspace, boxes_csv):
    project, _ = workspace
    dialog = _dialog(qtbot, workspace)
    dialog.mode.setCurrentIndex(dialog.mode.findData("boxes"))
    dialog.prompt_file.setText(str(boxes_csv))
    _run(qtbot, dialog)
    _run(qtbot, dialog)
    assert dialog.summary.labelled == 0 and len(dialog.summary.skipped) == 3
    dialog.overwrite.setChecked(True)
    _run(qtbot, dialog)
    assert dialog.summary.labelled == 3 and dialog.summary.instances_removed == 5
    assert project.document.instance_count == 5


@pytest.fixture
def scenes(tmp_path: Path) -> Path:
    return write_scenes(tmp_path / "scenes")


def _start_from_window(qtbot, window) -> BatchDialog:
    window.action("batch").trigger()
    dialog = window.batch_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.points_per_side.setValue(4)
    dialog.start_button.click()
    qtbot.waitUntil(lambda: dialog.summary.labelled >= 1, timeout=20000)
    return dialog


def test_closing_the_window_during_a_run_stops_it_saves_then_closes(
    qtbot, make_window, scenes, message_boxes
):
    window = make_window(loader=lambda cfg: SlowPredictor(), path=scenes)
    path = window.workspace.project.path
    dialog = _start_from_window(qtbot, window)
    message_boxes.answer = QMessageBox.StandardButton.No
    assert not window.close()
    assert message_boxes.calls[-1][1] == "Batch run in progress"
    assert dialog.running and window.workspace is not None and not dialog.summary.cancelled
    message_boxes.answer = QMessageBox.StandardButton.Yes
    summary = dialog.summary
    assert not window.close()  # the window waits for the run to stop
    assert window.workspace is not None
    qtbot.waitUntil(lambda: window.workspace is None and not window.isVisible(), timeout=20000)
    assert summary.cancelled and 1 <= summary.labelled < 3
    with Project.open(path) as project:
        statuses = [image.status for image in project.document.images]
    assert statuses.count(ImageStatus.NEEDS_REVIEW) == summary.labelled  # every finished image is saved


def test_a_termination_request_stops_a_run_without_asking(qtbot, make_window, scenes, message_boxes):
    window = make_window(loader=lambda cfg: SlowPredictor(), path=scenes)
    path = window.workspace.project.path
    dialog = _start_from_window(qtbot, window)
    summary = dialog.summary
    window.request_quit()
    assert not any(title == "Batch run in progress" for _, title, _ in message_boxes.calls)
    qtbot.waitUntil(lambda: window.workspace is None and not window.isVisible(), timeout=20000)
    with Project.open(path) as project:
        statuses = [image.status for image in project.document.images]
    assert summary.cancelled and statuses.count(ImageStatus.NEEDS_REVIEW) == summary.labelled


def test_the_summary_counts_the_prompts_skipped_outside_their_image(qtbot, workspace, tmp_path):
    name = next(iter(SCENES))
    path = tmp_path / "b.csv"
    path.write_text(f"image,x0,y0,x1,y1,label\n{name},10,10,60,50,cat\n{name},500,500,600,600,cat\n")
    dialog = _dialog(qtbot, workspace)
    dialog.mode.setCurrentIndex(dialog.mode.findData("boxes"))
    dialog.prompt_file.setText(str(path))
    _run(qtbot, dialog)
    assert dialog.summary.skipped_prompts == 1 and "skipped prompts: 1" in str(dialog.summary)


def test_the_dialog_asks_for_small_boxes_in_their_cut_in_boxes_mode_only(qtbot, workspace):
    dialog = _dialog(qtbot, workspace)
    dialog.refine_boxes.setChecked(True)
    dialog.mode.setCurrentIndex(dialog.mode.findData("boxes"))
    assert dialog.refine_boxes.isEnabled() and dialog.params().refine_small_boxes
    dialog.mode.setCurrentIndex(dialog.mode.findData("everything"))
    assert not dialog.refine_boxes.isEnabled() and not dialog.params().refine_small_boxes


def test_the_form_shows_its_hints_whole_and_a_readable_report(qtbot, workspace):
    dialog = _dialog(qtbot, workspace)
    dialog.mode.setCurrentIndex(dialog.mode.findData("boxes"))
    dialog.show()
    qtbot.waitExposed(dialog)
    for field in (dialog.prompt_file, dialog.images_json):
        room = field.width() - 2 * field.fontMetrics().averageCharWidth()
        assert field.fontMetrics().horizontalAdvance(field.placeholderText()) <= room
    assert dialog.report.height() >= 8 * dialog.report.fontMetrics().lineSpacing()


def test_replacing_hand_made_masks_needs_labelling_again(qtbot, workspace):
    dialog = _dialog(qtbot, workspace)
    assert not dialog.overwrite.isChecked() and not dialog.replace_manual.isEnabled()
    dialog.overwrite.click()
    assert dialog.replace_manual.isEnabled()
    dialog.replace_manual.click()
    dialog.overwrite.click()
    assert not dialog.replace_manual.isEnabled() and not dialog.params().replace_manual
