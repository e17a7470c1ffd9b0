"""Debounced autosave through the annotation core's atomic project save.

Every document change restarts a single-shot timer; when the user has paused for
``delay_seconds`` the project is saved (temporary file, fsync, rename, previous version kept).
A failed save leaves the document dirty and is reported by ``failed``; the next change retries.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from efficientsam_studio.annotations.project import Project
from efficientsam_studio.errors import StudioError


class Autosaver(QObject):
    """Saves ``project`` ``delay_seconds`` after the last change (0 disables autosave)."""

    saved = Signal()
    failed = Signal(str)

    def __init__(self, project: Project, delay_seconds: float, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project = project
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.save_now)
        self.set_delay(delay_seconds)
        self._unsubscribe = project.document.subscribe(lambda _change: self._schedule())

    def set_delay(self, seconds: float) -> None:
        self.delay_seconds = max(0.0, float(seconds))
        self._timer.setInterval(int(self.delay_seconds * 1000))
        if not self.delay_seconds:
            self._timer.stop()

    def _schedule(self) -> None:
        if self.delay_seconds:
            self._timer.start()

    @property
    def pending(self) -> bool:
        return self._timer.isActive()

    def save_now(self) -> bool:
        """Save if the document has unsaved changes; True when the file is up to date afterwards."""
        self._timer.stop()
        if not self.project.document.dirty:
            return True
        try:
            self.project.save()
        except (StudioError, OSError) as exc:
            self.failed.emit(f"Saving {self.project.path} failed: {exc}. Your edits are kept in memory.")
            return False
        self.saved.emit()
        return True

    def stop(self) -> None:
        self._timer.stop()
        self._unsubscribe()
