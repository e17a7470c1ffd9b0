"""Closing a dialog whose worker thread is running: cancel first, close once the worker has stopped.

Shared by the batch and export dialogs, which both keep ``running``, ``cancel()`` and a
``_close_when_done`` flag that their finish handler honours.
"""

from __future__ import annotations

from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QDialog


def defer_close_while_running(dialog: QDialog, event: QCloseEvent) -> bool:
    """If ``dialog``'s worker runs, cancel it, mark the dialog to close when it stops, ignore ``event``
    and return True; otherwise return False (the caller closes as usual)."""
    if not dialog.running:
        return False
    dialog._close_when_done = True
    dialog.cancel()
    event.ignore()
    return True
