"""Reading a project shows the wait cursor, and the cursor comes back however the opening ends."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from efficientsam_studio.errors import StudioError
from efficientsam_studio.gui import open_flow


def _cursor():
    cursor = QApplication.overrideCursor()
    return None if cursor is None else cursor.shape()


@pytest.mark.parametrize("fails", [False, True])
def test_wait_cursor_while_the_project_is_read(qtbot, monkeypatch, fails):
    parent = QWidget()
    qtbot.addWidget(parent)
    seen = []

    def read(path, **options):
        seen.append(_cursor())
        if fails:
            raise StudioError("damaged beyond use")
        return "project", None

    monkeypatch.setattr(open_flow, "open_target", read)
    shown = []
    monkeypatch.setattr(QMessageBox, "critical", lambda *args: shown.append(_cursor()))
    result = open_flow.open_with_dialogs(parent, "somewhere")
    assert seen == [Qt.CursorShape.WaitCursor]
    assert _cursor() is None
    assert (result is None and shown == [None]) if fails else (result == ("project", None) and shown == [])
