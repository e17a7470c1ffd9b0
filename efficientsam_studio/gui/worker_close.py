"""A dialog's worker thread: starting it, ending it, and closing the dialog while it runs (cancel
first, close once the worker has stopped).

Shared by the batch, export and import dialogs, which keep ``running``, ``cancel()`` and a
``_close_when_done`` flag that their finish handler honours.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QThread
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


def worker_thread(parent: QObject, worker: QObject) -> QThread:
    """A thread owned by ``parent`` that runs ``worker.run`` once started (connect the worker's signals,
    then call ``start()``)."""
    thread = QThread(parent)
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    return thread


def end_worker_thread(thread: QThread) -> None:
    """Stop ``thread`` once its worker has returned, and let Qt delete it."""
    thread.quit()
    thread.wait()
    thread.deleteLater()
