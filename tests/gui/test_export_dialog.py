"""The export dialog writes in a worker thread: progress, Cancel, a snapshot of the document, errors,
and closing the main window during an export."""

from __future__ import annotations

import errno
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox

from efficientsam_studio.annotations.category_commands import AddCategory
from efficientsam_studio.annotations.commands import AddInstance, RemoveInstance
from efficientsam_studio.annotations.formats import coco, png_masks
from efficientsam_studio.annotations.formats.common import with_progress
from efficientsam_studio.annotations.project import Project
from efficientsam_studio.gui.dialogs.export import ExportDialog
from efficientsam_studio.gui.settings import StudioSettings
from tests.gui.conftest import FakePredictor


class Gate:
    """Slows an exporter down: after each image (once its progress is reported) the export waits
    until the test opens the gate; ``reached`` counts the images that have waited."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.reached = 0

    def install(self, monkeypatch: pytest.MonkeyPatch, *modules) -> None:
        def gated(images, progress):
            def step(done: int, total: int) -> None:
                progress(done, total)  # the worker's callback: progress signal, then the cancel check
                self.reached = done
                self.open.wait(10)

            return with_progress(images, step)

        for module in modules:
            monkeypatch.setattr(module, "with_progress", gated)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch):
    gate = Gate()
    gate.install(monkeypatch, png_masks, coco)
    yield gate
    gate.open.set()  # never leave a worker waiting


def label_every_image(document) -> None:
    """One category and one square instance on each image of ``document``."""
    category = AddCategory(document, "thing", None)
    category.do()
    for n, image in enumerate(document.images):
        mask = np.zeros((image.height, image.width), bool)
        mask[5 + n : 25 + n, 10:30] = True
        AddInstance.from_mask(document, image.id, category.category.id, mask).do()


@pytest.fixture
def project(image_folder: Path, message_boxes):
    project = Project.create(image_folder)
    label_every_image(project.document)
    yield project
    project.close()


def make_dialog(qtbot, project, fmt: str, out: Path) -> ExportDialog:
    qtbot.wait(1)  # qtbot's first wait sets up Qt types: not while the worker thread starts
    dialog = ExportDialog(project, StudioSettings(), None)
    qtbot.addWidget(dialog)
    dialog.format.setCurrentIndex(dialog.format.findData(fmt))
    dialog.destination.setText(str(out))
    return dialog


def wait_done(qtbot, dialog: ExportDialog) -> None:
    qtbot.waitUntil(lambda: not dialog.running, timeout=10_000)


def test_progress_reaches_the_dialog_while_the_export_runs(qtbot, project, gate, tmp_path):
    dialog = make_dialog(qtbot, project, "masks", tmp_path / "masks")
    dialog.show()
    assert dialog.export()
    qtbot.waitUntil(lambda: dialog.progress_bar.value() == 1)
    assert dialog.running and dialog.progress_bar.maximum() == 3
    assert "1 of 3 images" in dialog.status.text()
    assert not dialog.export_button.isEnabled() and not dialog.format.isEnabled()
    assert dialog.cancel_button.isEnabled()
    gate.open.set()
    wait_done(qtbot, dialog)
    assert dialog.progress_bar.value() == 3 and dialog.report.images == 3
    assert dialog.result() == dialog.DialogCode.Accepted


def test_the_event_loop_runs_during_an_export(qtbot, project, gate, tmp_path):
    dialog = make_dialog(qtbot, project, "masks", tmp_path / "masks")
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(gate.reached))
    timer.start(5)
    assert dialog.export()
    qtbot.waitUntil(lambda: len(ticks) >= 3 and dialog.running)
    assert gate.reached >= 1 and not dialog.report  # the timer fired while the worker held an image
    timer.stop()
    gate.open.set()
    wait_done(qtbot, dialog)


def test_cancel_stops_a_folder_export_and_says_how_many_were_written(
    qtbot, project, gate, tmp_path, message_boxes
):
    out = tmp_path / "masks"
    dialog = make_dialog(qtbot, project, "masks", out)
    dialog.show()
    assert dialog.export()
    qtbot.waitUntil(lambda: gate.reached == 1)
    dialog.cancel_button.click()  # the worker stops at the next image's progress
    gate.open.set()
    wait_done(qtbot, dialog)
    assert dialog.outcome.cancelled and dialog.report is None
    assert len(list((out / "semantic").iterdir())) == 2
    assert not (out / "instances.json").exists()
    assert (
        dialog.message
        == f"Cancelled: 2 of 3 images written to {out}; the export in that folder is incomplete."
    )
    assert dialog.status.text() == dialog.message
    assert dialog.isVisible() and dialog.export_button.isEnabled()  # the dialog stays for another try
    assert message_boxes.calls == []
    dialog.cancel_button.click()  # now Cancel closes
    assert not dialog.isVisible()


def test_a_second_cancel_during_the_export_closes_the_dialog_when_it_stops(qtbot, project, gate, tmp_path):
    dialog = make_dialog(qtbot, project, "masks", tmp_path / "masks")
    dialog.show()
    assert dialog.export()
    qtbot.waitUntil(lambda: gate.reached == 1)
    dialog.cancel_button.click()
    dialog.cancel_button.click()
    assert dialog.isVisible() and dialog.running  # the worker still holds an image
    gate.open.set()
    wait_done(qtbot, dialog)
    assert not dialog.isVisible() and dialog.outcome.cancelled


def test_a_cancelled_coco_export_keeps_the_previous_file(qtbot, project, gate, tmp_path):
    out = tmp_path / "coco.json"
    out.write_text('{"previous": true}')
    dialog = make_dialog(qtbot, project, "coco", out)
    dialog.show()
    assert dialog.export()
    qtbot.waitUntil(lambda: gate.reached == 1)
    dialog.cancel()
    gate.open.set()
    wait_done(qtbot, dialog)
    assert out.read_text() == '{"previous": true}'
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary file
    assert dialog.message == f"Cancelled: {out} was not written; the previous file is unchanged."


def test_a_cancelled_coco_export_writes_no_file(qtbot, project, gate, tmp_path):
    out = tmp_path / "new" / "coco.json"
    dialog = make_dialog(qtbot, project, "coco", out)
    assert dialog.export()
    qtbot.waitUntil(lambda: gate.reached == 1)
    dialog.cancel()
    gate.open.set()
    wait_done(qtbot, dialog)
    assert not out.exists() and "no file was written" in dialog.message


def test_edits_made_during_an_export_do_not_reach_it(qtbot, project, gate, tmp_path):
    document = project.document
    first, *_, last = document.images
    before = [instance.id for instance in document.iter_instances()]
    out = tmp_path / "coco.json"
    dialog = make_dialog(qtbot, project, "coco", out)
    assert dialog.export()
    qtbot.waitUntil(lambda: gate.reached == 1)
    RemoveInstance(document, document.instances_of(last.id)[0].id).do()
    mask = np.zeros((first.height, first.width), bool)
    mask[40:60, 40:60] = True
    AddInstance.from_mask(document, first.id, document.categories[0].id, mask).do()
    gate.open.set()
    wait_done(qtbot, dialog)
    written = json.loads(out.read_text())
    assert sorted(a["id"] for a in written["annotations"]) == sorted(before)
    assert dialog.report.instances == 3


def test_an_unwritable_destination_is_refused_before_starting(qtbot, project, tmp_path, message_boxes):
    blocker = tmp_path / "a_file"
    blocker.write_text("mine")
    dialog = make_dialog(qtbot, project, "masks", blocker / "masks")
    assert not dialog.export() and not dialog.running
    kind, title, text = message_boxes.calls[-1]
    assert (kind, title) == ("critical", "Export failed") and "is a file, not a folder" in text
    assert blocker.read_text() == "mine"


def test_the_project_file_is_never_an_export_destination(qtbot, project, message_boxes):
    dialog = make_dialog(qtbot, project, "coco", project.path)
    saved = project.path.read_bytes()
    assert not dialog.export()
    assert "would replace the project file" in message_boxes.calls[-1][2]
    assert project.path.read_bytes() == saved


def test_an_error_during_the_export_is_shown_and_the_dialog_stays(
    qtbot, project, tmp_path, monkeypatch, message_boxes
):
    def full_disk(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(png_masks, "_write_png", full_disk)
    dialog = make_dialog(qtbot, project, "masks", tmp_path / "masks")
    dialog.show()
    assert dialog.export()
    wait_done(qtbot, dialog)
    kind, title, text = message_boxes.calls[-1]
    assert (kind, title) == ("critical", "Export failed") and "No space left on device" in text
    assert dialog.isVisible() and dialog.export_button.isEnabled()


def test_closing_the_window_during_an_export_stops_it_and_closes(
    qtbot, make_window, image_folder, gate, tmp_path, message_boxes
):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    label_every_image(window.workspace.project.document)
    window.action("export").trigger()
    dialog = window.export_dialog
    dialog.format.setCurrentIndex(dialog.format.findData("masks"))
    dialog.destination.setText(str(tmp_path / "masks"))
    assert dialog.export()
    qtbot.waitUntil(lambda: gate.reached == 1)
    window.action("next_image").trigger()  # browsing goes on while the export runs (not modal)
    assert window.workspace.session.current_image_id == window.workspace.project.document.images[1].id
    message_boxes.answer = QMessageBox.StandardButton.No
    window.close()
    assert window.isVisible() and dialog.running  # kept open, the export goes on
    message_boxes.answer = QMessageBox.StandardButton.Yes
    threading.Timer(0.2, gate.open.set).start()  # the worker is waiting on its current image
    window.close()  # stops the export (waiting for its image), then closes as usual
    assert not window.isVisible() and window.export_dialog is None
    assert "Export in progress" in message_boxes.titles("question")
    assert dialog.outcome.cancelled and dialog.outcome.done == 2


def test_the_export_dialog_is_not_modal_and_opens_once(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    window.action("export").trigger()
    dialog = window.export_dialog
    assert dialog.isVisible() and not dialog.isModal()
    window.action("export").trigger()
    assert window.export_dialog is dialog
    dialog.reject()
    qtbot.waitUntil(lambda: window.export_dialog is None)


def _start_masks_export(window, tmp_path):
    label_every_image(window.workspace.project.document)
    window.action("export").trigger()
    dialog = window.export_dialog
    dialog.format.setCurrentIndex(dialog.format.findData("masks"))
    dialog.destination.setText(str(tmp_path / "masks"))
    assert dialog.export()
    return dialog


def test_opening_another_folder_during_an_export_is_refused(
    qtbot, make_window, image_folder, gate, tmp_path, message_boxes
):
    other = tmp_path / "other"
    other.mkdir()
    for image in image_folder.iterdir():
        (other / image.name).write_bytes(image.read_bytes())
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    dialog = _start_masks_export(window, tmp_path)
    qtbot.waitUntil(lambda: gate.reached == 1)
    assert not window.open_path(other)
    assert window.workspace is ws and dialog.running
    assert "export" in window.status.currentMessage()
    gate.open.set()
    qtbot.waitUntil(lambda: not dialog.running)
    assert dialog.outcome.report is not None  # it finished, not cancelled


def test_a_close_cancelled_at_the_unsaved_question_leaves_the_export_running(
    qtbot, make_window, image_folder, gate, tmp_path, monkeypatch
):
    window = make_window(
        loader=lambda cfg: FakePredictor(), path=image_folder, settings=StudioSettings(autosave_seconds=0)
    )
    dialog = _start_masks_export(window, tmp_path)
    qtbot.waitUntil(lambda: gate.reached == 1)
    answers = [QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.Cancel]
    asked = []

    def question(parent, title, *args, **kwargs):
        asked.append(title)
        return answers.pop(0) if answers else QMessageBox.StandardButton.Discard  # Discard: at teardown

    monkeypatch.setattr(QMessageBox, "question", question)
    window.close()
    assert asked == ["Export in progress", "Unsaved changes"]
    assert window.isVisible() and dialog.running and window.workspace is not None
    gate.open.set()
    qtbot.waitUntil(lambda: not dialog.running)
    assert dialog.outcome.report is not None
