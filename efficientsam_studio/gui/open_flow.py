"""Opening a project from the window: the file dialog, and the questions and refusals around opening.

:func:`ask_open_path` shows one dialog that takes a folder, an image or a project file.
:func:`open_with_dialogs` opens the target and answers every refusal in a dialog: another instance
holds the project, the file is damaged (continue from its backup?), or the folder cannot be written
(view the project read-only?). :func:`skipped_files_text` words the files a folder scan left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QDialog, QFileDialog, QMessageBox, QWidget

from efficientsam_studio.annotations.errors import (
    CorruptProjectError,
    LockUnwritableError,
    ProjectLockedError,
)
from efficientsam_studio.annotations.images import IMAGE_EXTENSIONS
from efficientsam_studio.annotations.project import PROJECT_SUFFIX, Project, ScanReport
from efficientsam_studio.errors import StudioError
from efficientsam_studio.gui.opening import open_target, project_file_for

Opened = tuple[Project, str | None]  # the project and the image to show first

MAX_LISTED = 12  # skipped files named in the message; the rest are counted


class OpenDialog(QFileDialog):
    """A file dialog that returns a folder, an image or a ``*.efsam.json`` project file.

    It browses folders with images and project files shown: Open with a folder chosen (or nothing
    chosen: the folder shown) opens that folder, with a file chosen opens that file."""

    def __init__(self, parent: QWidget | None = None, directory: str = "") -> None:
        super().__init__(parent, "Open a folder, an image or a project", directory)
        self.setOption(QFileDialog.Option.DontUseNativeDialog, True)
        self.setFileMode(QFileDialog.FileMode.Directory)
        self.setOption(QFileDialog.Option.ShowDirsOnly, False)
        patterns = " ".join(f"*{ext}" for ext in sorted(IMAGE_EXTENSIONS))
        self.setNameFilters(
            [f"Images and projects (*{PROJECT_SUFFIX} {patterns})", f"Projects (*{PROJECT_SUFFIX})"]
        )
        self.setLabelText(QFileDialog.DialogLabel.Accept, "Open")
        self.chosen = ""

    def accept(self) -> None:
        selected = self.selectedFiles()
        path = Path(selected[0]) if selected else Path(self.directory().absolutePath())
        if path.is_file():  # the folder mode of QFileDialog only takes folders: take the file here
            self.chosen = str(path)
            QDialog.accept(self)
            return
        self.chosen = str(path)
        super().accept()


def ask_open_path(parent: QWidget) -> str:
    """Ask for a folder, an image or a project file; "" when the user cancels."""
    dialog = OpenDialog(parent)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return ""
    return dialog.chosen or (dialog.selectedFiles() or [""])[0]


@contextmanager
def _busy() -> Iterator[None]:
    """The wait cursor while a project is read (a large one takes a few seconds)."""
    QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
    try:
        yield
    finally:
        QApplication.restoreOverrideCursor()


def _open(path: str | Path, **options: bool) -> Opened:
    with _busy():
        return open_target(path, **options)


def open_with_dialogs(parent: QWidget, path: str | Path) -> Opened | None:
    """Open ``path`` as :func:`open_target` does, answering refusals in dialogs; None when nothing opened."""
    try:
        return _open(path)
    except ProjectLockedError as exc:
        QMessageBox.critical(parent, "Project is open elsewhere", str(exc))
    except CorruptProjectError as exc:
        return _offer_backup(parent, path, exc)
    except LockUnwritableError as exc:  # a read-only folder: the project can still be viewed
        return _offer_read_only(parent, path, exc)
    except StudioError as exc:
        QMessageBox.critical(parent, "Cannot open", str(exc))
    return None


def _offer_backup(parent: QWidget, path: str | Path, exc: CorruptProjectError) -> Opened | None:
    if exc.backup_path is None:
        QMessageBox.critical(parent, "Cannot open project", str(exc))
        return None
    question = f"{exc}\n\nContinue from the last good version?"
    if QMessageBox.question(parent, "Damaged project file", question) != QMessageBox.StandardButton.Yes:
        return None
    try:
        return _open(path, recover=True)
    except StudioError as again:  # the backup is damaged too, or the project was locked meanwhile
        QMessageBox.critical(parent, "Cannot open project", str(again))
        return None


def _offer_read_only(parent: QWidget, path: str | Path, exc: LockUnwritableError) -> Opened | None:
    """The folder cannot be written: offer to view an existing project read-only, else say what to do."""
    if project_file_for(path) is None:
        QMessageBox.critical(
            parent,
            "Folder is read-only",
            f"{exc}\n\nThe project file (*{PROJECT_SUFFIX}) is kept next to the images, and this folder "
            "cannot be written. Copy the folder to a place you can write to (or make it writable) and "
            "open the copy.",
        )
        return None
    question = (
        f"{exc}\n\nOpen the project read-only? You can view and export its labels, but edits cannot be "
        "saved. To edit, copy the folder to a place you can write to and open the copy."
    )
    if QMessageBox.question(parent, "Folder is read-only", question) != QMessageBox.StandardButton.Yes:
        return None
    try:
        return _open(path, read_only=True)
    except StudioError as again:
        QMessageBox.critical(parent, "Cannot open project", str(again))
        return None


def skipped_files_text(report: ScanReport | None) -> str:
    """What the user is told about image files a scan could not read ("" when there are none)."""
    if report is None or not report.unreadable:
        return ""
    count = len(report.unreadable)
    lines = [f"{path}: {_reason(path, reason)}" for path, reason in report.unreadable[:MAX_LISTED]]
    if count > MAX_LISTED:
        lines.append(f"… and {count - MAX_LISTED} more")
    noun = "file" if count == 1 else "files"
    return (
        f"{count} image {noun} could not be read and {'is' if count == 1 else 'are'} not in the project:\n\n"
        + "\n".join(lines)
        + "\n\nFix or replace them and open the folder again: they are added then."
    )


def _reason(path: str, message: str) -> str:
    """The loader's message without the "cannot load image <path>:" prefix already said by the line."""
    head, _, rest = message.partition(": ")
    return rest if rest and head.startswith("cannot load image") else message
