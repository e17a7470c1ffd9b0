"""Opening from the window: Ctrl+O, refused opens, unreadable files, read-only folders, no project."""

from __future__ import annotations

import shutil

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialog, QLabel, QMessageBox

from efficientsam_studio.annotations.errors import LockUnwritableError, ProjectError
from efficientsam_studio.annotations.project import Project
from efficientsam_studio.annotations.storage import ProjectLock
from efficientsam_studio.gui import open_flow
from efficientsam_studio.gui.open_flow import OpenDialog
from efficientsam_studio.gui.settings import StudioSettings
from efficientsam_studio.gui.statusbar import READ_ONLY_BANNER
from tests.gui.conftest import FakePredictor, wait_shown


def second_folder(image_folder, tmp_path, name="more"):
    other = tmp_path / name
    other.mkdir()
    shutil.copy(image_folder / "coffee.png", other / "mug.png")
    return other


def test_a_refused_open_keeps_the_open_project(qtbot, make_window, image_folder, tmp_path, message_boxes):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    title = window.windowTitle()
    assert not window.open_path(tmp_path / "no-such-folder")
    assert message_boxes.titles("critical") == ["Cannot open"]
    other = second_folder(image_folder, tmp_path)
    with Project.create(other):  # another app holds that project
        assert not window.open_path(other)
    assert message_boxes.titles("critical")[-1] == "Project is open elsewhere"
    assert window.workspace is ws and not ws.project.read_only  # still open, still locked by us
    assert window.windowTitle() == title and window.centralWidget() is ws.canvas
    assert window.action("save").isEnabled()


def test_opening_another_folder_replaces_the_project(qtbot, make_window, image_folder, tmp_path):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    first = window.workspace.project
    other = second_folder(image_folder, tmp_path)
    assert window.open_path(other)
    wait_shown(qtbot, window)
    assert window.workspace.project.folder == other and first.read_only  # the first one was closed
    assert window.open_path(image_folder)  # and can be opened again


def test_unreadable_files_of_a_folder_are_named_not_dropped(qtbot, make_window, image_folder, message_boxes):
    (image_folder / "zero.png").write_bytes(b"")
    (image_folder / "noise.jpg").write_bytes(bytes(range(256)) * 8)
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    assert window.workspace.files.model.rowCount() == 3
    (title,) = message_boxes.titles("warning")
    text = next(text for kind, _, text in message_boxes.calls if kind == "warning")
    assert title == "Some images were left out"
    assert "2 image files could not be read" in text and "zero.png" in text and "noise.jpg" in text


def test_ctrl_o_opens_an_image_a_project_or_a_folder(qtbot, make_window, image_folder, tmp_path, monkeypatch):
    other = second_folder(image_folder, tmp_path)
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    chosen = []

    def pick(dialog):
        dialog.selectFile(str(chosen[-1]))
        dialog.accept()
        return dialog.result()

    monkeypatch.setattr(OpenDialog, "exec", pick)
    chosen.append(other / "mug.png")  # an image: its folder opens, at that image
    QTest.keyClick(window.workspace.canvas, Qt.Key.Key_O, Qt.KeyboardModifier.ControlModifier)
    assert window.workspace.project.folder == other
    assert window.workspace.session.current_image.path == "mug.png"
    chosen.append(next(image_folder.glob("*.efsam.json")))  # a project file
    window.action("open").trigger()
    assert window.workspace.project.folder == image_folder
    chosen.append(other)  # a folder
    window.action("open").trigger()
    assert window.workspace.project.folder == other


def test_the_open_dialog_takes_folders_and_files(qtbot, image_folder):
    dialog = OpenDialog(directory=str(image_folder))
    qtbot.addWidget(dialog)
    dialog.selectFile(str(image_folder / "chelsea.png"))
    dialog.accept()
    assert dialog.result() == QDialog.DialogCode.Accepted and dialog.chosen == str(
        image_folder / "chelsea.png"
    )
    folder_dialog = OpenDialog(directory=str(image_folder.parent))
    qtbot.addWidget(folder_dialog)
    folder_dialog.selectFile(str(image_folder))
    folder_dialog.accept()
    assert folder_dialog.result() == QDialog.DialogCode.Accepted and folder_dialog.chosen == str(image_folder)


def read_only_folder(monkeypatch):
    """Pretend every folder is on read-only media: no lock file can be written."""

    def refuse(lock):
        raise LockUnwritableError(
            f"cannot open project {lock.target} for writing: its lock file cannot be written"
        )

    monkeypatch.setattr(ProjectLock, "acquire", refuse)


def test_a_read_only_project_opens_for_viewing(qtbot, make_window, image_folder, message_boxes, monkeypatch):
    with Project.create(image_folder) as project:
        saved = project.path.read_bytes()
    first = sorted(p for p in image_folder.iterdir() if p.suffix == ".png")[0]
    (image_folder / "added.png").write_bytes(first.read_bytes())  # the scan adds it: the document changes
    read_only_folder(monkeypatch)
    message_boxes.answer = QMessageBox.StandardButton.Yes
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    assert message_boxes.titles("question") == ["Folder is read-only"]
    assert ws.project.read_only and "[read-only]" in window.windowTitle()
    assert window.status.read_only_label.isVisible()
    assert window.status.read_only_label.text() == READ_ONLY_BANNER
    assert not window.action("save").isEnabled() and window.action("export").isEnabled()
    assert not ws.categories.add("cat")  # edits are refused, with the reason
    assert "read-only" in window.status.currentMessage()
    assert project.path.read_bytes() == saved
    assert ws.project.document.dirty
    window.apply_settings(window.settings)  # settings do not turn autosave on for it
    assert ws.autosave.delay_seconds == 0
    message_boxes.answer = QMessageBox.StandardButton.Cancel  # a question would keep the project open
    assert window._close_workspace() and window.workspace is None
    assert message_boxes.titles("question") == ["Folder is read-only"]  # no "save the changes?"
    assert project.path.read_bytes() == saved


def test_in_a_read_only_folder_other_project_errors_are_not_offered_read_only(
    qtbot, make_window, image_folder, message_boxes, monkeypatch
):
    def newer(path, **kwargs):
        raise ProjectError("project file written by a newer version (schema 9)")

    monkeypatch.setattr(open_flow, "open_target", newer)
    window = make_window(loader=lambda cfg: FakePredictor())
    assert not window.open_path(image_folder)
    assert message_boxes.calls == [
        ("critical", "Cannot open", "project file written by a newer version (schema 9)")
    ]


def test_a_read_only_folder_without_project_says_what_to_do(
    qtbot, make_window, image_folder, message_boxes, monkeypatch
):
    read_only_folder(monkeypatch)
    window = make_window(loader=lambda cfg: FakePredictor())
    assert not window.open_path(image_folder)
    ((kind, title, text),) = message_boxes.calls
    assert (kind, title) == ("critical", "Folder is read-only") and "Copy the folder" in text


def test_without_a_project_the_window_says_how_to_start(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor())
    hint = window.centralWidget()
    assert isinstance(hint, QLabel) and "Ctrl+O" in hint.text()
    for key in ("undo", "redo", "save", "export", "next_image", "batch", "mark_done", "zoom_in"):
        assert not window.action(key).isEnabled(), key
    assert window.action("open").isEnabled() and window.action("settings").isEnabled()
    window.open_path(image_folder)
    wait_shown(qtbot, window)
    assert window.action("save").isEnabled() and not window.action("undo").isEnabled()


def test_a_long_status_message_can_be_read_whole(qtbot, make_window):
    window = make_window(loader=lambda cfg: FakePredictor())
    long = "No model: " + "the weights are missing; " * 20 + "the polygon, brush and eraser tools work."
    window.show_message(long)
    assert window.status.toolTip() == long


def test_a_missing_path_is_refused_before_any_question_about_the_open_project(
    qtbot, make_window, image_folder, tmp_path, message_boxes
):
    window = make_window(
        loader=lambda cfg: FakePredictor(), path=image_folder, settings=StudioSettings(autosave_seconds=0)
    )
    window.workspace.categories.add("cat")  # an unsaved change: closing the project would ask
    assert window.workspace.project.document.dirty
    assert not window.open_path(tmp_path / "no-such-folder")
    assert [kind for kind, _, _ in message_boxes.calls] == ["critical"]
    assert "does not exist" in message_boxes.calls[0][2]
