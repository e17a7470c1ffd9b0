"""The main window's size, place, docks and toolbar across runs, kept in the app's settings file.

:func:`save_window_state` stores ``saveGeometry()`` and ``saveState()`` when the window closes (before
the project's docks go away); :func:`restore_window_state` puts them back at start. The docks are made
when a project opens, later than that, so :func:`restore_docks` places them as they were then. Qt's
``restoreGeometry`` moves a window saved on a screen that is no longer there onto one that is.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray
from PySide6.QtWidgets import QDockWidget, QMainWindow

from efficientsam_studio.gui.settings import _qsettings

GEOMETRY_KEY = "window/geometry"
STATE_KEY = "window/state"
DEFAULT_SIZE = (1400, 900)


def save_window_state(window: QMainWindow) -> None:
    """Store the window's geometry, and its docks and toolbar when a project shows its docks (a window
    closed without a project keeps the dock layout saved before)."""
    store = _qsettings()
    store.setValue(GEOMETRY_KEY, window.saveGeometry())
    if window.findChildren(QDockWidget):
        store.setValue(STATE_KEY, window.saveState())
    store.sync()


def _stored(key: str) -> QByteArray | None:
    value = _qsettings().value(key)
    return value if isinstance(value, QByteArray) and not value.isEmpty() else None


def restore_window_state(window: QMainWindow) -> None:
    """The size, place and toolbar of the last run, or the default size on a first run."""
    geometry = _stored(GEOMETRY_KEY)
    if geometry is None or not window.restoreGeometry(geometry):
        window.resize(*DEFAULT_SIZE)
    state = _stored(STATE_KEY)
    if state is not None:
        window.restoreState(state)


def restore_docks(window: QMainWindow) -> None:
    """Put the docks made after :func:`restore_window_state` where (and as shown or hidden as) they were."""
    state = _stored(STATE_KEY)
    if state is not None:
        window.restoreState(state)
