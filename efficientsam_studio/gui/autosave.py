"""Debounced autosave through the annotation core's atomic project save, off the GUI thread.

Every document change restarts a single-shot timer; when the user has paused for
``delay_seconds`` the project is saved (temporary file, fsync, rename, previous version kept).
A failed save leaves the document dirty and is reported by ``failed``; the next change retries.

Saving in the background (:meth:`Autosaver.save_in_background`, used by the timer and Ctrl+S): the
GUI thread freezes the document's records (:meth:`Project.snapshot`, cheap since records are
immutable) and a worker thread encodes and writes them. When it is done the GUI thread marks that
revision saved, so an edit made meanwhile leaves the document dirty. One save runs at a time: a save
asked for while one runs is done once it ends. :meth:`Autosaver.save_now` (closing, batch runs)
waits for a running save and then saves what is left before it returns; :meth:`Autosaver.stop`
waits for a running save too, so the project is never unlocked under a write.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal

from efficientsam_studio.annotations.project import PendingSave, Project, SaveSnapshot
from efficientsam_studio.errors import StudioError

SAVE_SWITCH_INTERVAL = 0.0005  # seconds; sys.setswitchinterval while a background save runs


class _SaveJob:
    """One save: the snapshot, the thread encoding and writing it, and its outcome."""

    def __init__(
        self,
        project: Project,
        snapshot: SaveSnapshot,
        announce: Callable[[], None] | None,
        done: Callable[[_SaveJob], None],
    ) -> None:
        self.project = project
        self.snapshot = snapshot
        self.announce = announce
        self.error: BaseException | None = None
        self._done = done
        self.thread = threading.Thread(target=self._run, name="efsam-save", daemon=False)

    def _run(self) -> None:
        try:
            pending: PendingSave = self.snapshot.encode()
            self.project.write_save(pending)
        except BaseException as exc:  # noqa: BLE001 (handed to the GUI thread, which reports or raises it)
            self.error = exc
        self._done(self)


class Autosaver(QObject):
    """Saves ``project`` ``delay_seconds`` after the last change (0 disables autosave)."""

    saved = Signal()
    failed = Signal(str)
    _finished = Signal(object)  # a _SaveJob, emitted from its worker thread

    def __init__(self, project: Project, delay_seconds: float, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project = project
        self._job: _SaveJob | None = None
        self._again = False  # a save was asked for while one ran
        self._again_announce: Callable[[], None] | None = None
        self._switch_interval = sys.getswitchinterval()
        self._finished.connect(self._collect)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.save_in_background)
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

    @property
    def saving(self) -> bool:
        """True while a background save runs."""
        return self._job is not None

    def save_in_background(self, announce: Callable[[], None] | None = None) -> bool:
        """Start saving the document's unsaved changes in a worker thread (after the running save, if
        any). ``announce`` is called on the GUI thread once they are on disk. False when the save
        could not start (reported by ``failed``)."""
        self._timer.stop()
        if self._job is not None:
            self._again = True
            self._again_announce = announce or self._again_announce
            return True
        if not self.project.document.dirty:
            if announce is not None:
                announce()
            return True
        try:
            snapshot = self.project.snapshot()
        except (StudioError, OSError) as exc:
            self._report(exc)
            return False
        self._job = _SaveJob(self.project, snapshot, announce, self._finished.emit)
        # the encode is pure Python: with the default 5 ms switch interval every call from Qt into Python
        # (painting the file list, a timer) waits up to 5 ms for the interpreter lock while it runs
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SAVE_SWITCH_INTERVAL))
        self._job.thread.start()
        return True

    def _collect(self, job: _SaveJob) -> None:
        """The GUI-thread end of a background save (called once per job: by the signal or a wait)."""
        if job is not self._job:
            return  # already collected by wait()
        job.thread.join()
        self._job = None
        sys.setswitchinterval(self._switch_interval)
        if job.error is None:
            self.project.document.mark_saved(job.snapshot.revision)
            self.saved.emit()
            if job.announce is not None:
                job.announce()
        elif isinstance(job.error, (StudioError, OSError)):
            self._report(job.error)
        else:
            raise job.error
        if self._again:
            announce, self._again, self._again_announce = self._again_announce, False, None
            self.save_in_background(announce)

    def wait(self) -> None:
        """Block until no background save runs, including one asked for while another ran."""
        while self._job is not None:
            self._collect(self._job)

    def save_now(self) -> bool:
        """Save if the document has unsaved changes; True when the file is up to date afterwards.

        Blocks: waits for a running background save, then writes what is left on this thread."""
        self._timer.stop()
        self.wait()
        if not self.project.document.dirty:
            return True
        try:
            pending = self.project.prepare_save()
            self.project.write_save(pending)
        except (StudioError, OSError) as exc:
            self._report(exc)
            return False
        self.project.document.mark_saved(pending.revision)
        self.saved.emit()
        return True

    def _report(self, exc: BaseException) -> None:
        self.failed.emit(f"Saving {self.project.path} failed: {exc}. Your edits are kept in memory.")

    def stop(self) -> None:
        """No more autosaves; waits for a running save (the project may be unlocked afterwards)."""
        self._timer.stop()
        self.wait()
        self._unsubscribe()
