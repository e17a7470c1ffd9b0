"""The batch dialog: elapsed time and an estimate while running, a prompt cancel inside an image of small
boxes, the images accounted for when the model cannot be loaded, and reviewed work kept."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from efficientsam_studio.annotations.commands import SetImageStatus
from efficientsam_studio.annotations.document import ImageStatus
from efficientsam_studio.annotations.project import Project
from efficientsam_studio.errors import StudioError
from efficientsam_studio.gui.batch_dialog import BatchDialog
from efficientsam_studio.gui.session import Session
from tests.batch.conftest import write_boxes_csv, write_scenes
from tests.batch.fake_predictor import ShapesPredictor


class SlowEncode(ShapesPredictor):
    delay = 0.3

    def set_image(self, image):
        time.sleep(self.delay)
        super().set_image(image)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, qtbot):
    monkeypatch.setenv("EFSAM_HOME", str(tmp_path / "home"))
    project = Project.create(write_scenes(tmp_path / "images"), "labels")
    session = Session(project.document, project.folder)
    yield project, session
    session.close()
    project.close()


def _dialog(qtbot, workspace, factory) -> BatchDialog:
    project, session = workspace
    dialog = BatchDialog(session, project, factory)
    qtbot.addWidget(dialog)
    return dialog


def _boxes(dialog: BatchDialog, path: Path) -> None:
    dialog.mode.setCurrentIndex(dialog.mode.findData("boxes"))
    dialog.prompt_file.setText(str(path))


def test_a_model_that_cannot_be_loaded_leaves_every_image_not_labelled_and_says_why(qtbot, workspace):
    def broken():
        raise StudioError("no weights installed for vit_t")

    dialog = _dialog(qtbot, workspace, broken)
    dialog.start_button.click()
    qtbot.waitUntil(lambda: not dialog.running, timeout=20000)
    assert dialog.summary.not_labelled == 3
    report = dialog.report.toPlainText()
    assert "0 failed, 3 not labelled: the model could not be loaded" in report
    assert "no weights installed" in report and dialog.status.text() == "Model not loaded"


def test_the_status_shows_the_time_elapsed_and_an_estimate_of_the_time_left(qtbot, workspace):
    SlowEncode.delay = 0.3
    dialog = _dialog(qtbot, workspace, SlowEncode)
    dialog.points_per_side.setValue(4)
    dialog.start_button.click()
    qtbot.waitUntil(lambda: " left (" in dialog.status.text(), timeout=20000)
    text = dialog.status.text()
    assert "elapsed, about" in text and "images/min" in text
    qtbot.waitUntil(lambda: not dialog.running, timeout=20000)
    assert dialog.status.text() == "Finished"


def test_times_read_as_a_clock():
    from efficientsam_studio.gui.batch_dialog import _clock_text

    assert [_clock_text(s) for s in (7.2, 750, 3723)] == ["0:07", "12:30", "1:02:03"]


def test_cancel_stops_inside_an_image_of_small_boxes(qtbot, workspace, tmp_path):
    project, _ = workspace
    rows = ["image,x0,y0,x1,y1,label"]
    rows += [
        f"img1.png,{2 + (k % 10) * 15},{2 + (k // 10) * 15},{10 + (k % 10) * 15},{10 + (k // 10) * 15},cat"
        for k in range(40)
    ]
    csv = tmp_path / "small.csv"
    csv.write_text("\n".join(rows) + "\n")
    predictor = SlowEncode()  # 40 cuts of 0.3 s: 12 s for the image
    dialog = _dialog(qtbot, workspace, lambda: predictor)
    _boxes(dialog, csv)
    dialog.refine_boxes.setChecked(True)
    dialog.start_button.click()
    qtbot.waitUntil(lambda: predictor.encodes >= 2, timeout=20000)  # the image, then its first cut
    asked = time.perf_counter()
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: not dialog.running, timeout=30000)
    assert time.perf_counter() - asked < 5.0 and predictor.encodes < 20
    record = project.document.image_by_path("img1.png")
    assert project.document.instances_of(record.id) == [] and record.status == ImageStatus.UNLABELLED
    assert dialog.summary.cancelled and "1 not labelled: cancelled" in dialog.report.toPlainText()


def test_overwrite_keeps_images_marked_done_unless_hand_made_work_is_replaced(qtbot, workspace, tmp_path):
    project, session = workspace
    csv = write_boxes_csv(tmp_path / "boxes.csv")
    dialog = _dialog(qtbot, workspace, ShapesPredictor)
    _boxes(dialog, csv)
    dialog.start_button.click()
    qtbot.waitUntil(lambda: not dialog.running, timeout=20000)
    doc = project.document
    done = doc.image_by_path("img1.png")
    kept = [i.id for i in doc.instances_of(done.id)]
    session.push(SetImageStatus(doc, done.id, ImageStatus.DONE))
    dialog.overwrite.setChecked(True)
    dialog.start_button.click()
    qtbot.waitUntil(lambda: not dialog.running, timeout=20000)
    assert dialog.summary.labelled == 2 and [i.id for i in doc.instances_of(done.id)] == kept
    assert "img1.png: marked done (reviewed)" in dialog.report.toPlainText()
    dialog.replace_manual.setChecked(True)
    dialog.start_button.click()
    qtbot.waitUntil(lambda: not dialog.running, timeout=20000)
    assert dialog.summary.labelled == 3 and dialog.summary.reviewed_relabelled == 1
    assert doc.image(done.id).status == ImageStatus.NEEDS_REVIEW
