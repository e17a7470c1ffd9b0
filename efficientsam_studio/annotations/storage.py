"""Crash-safe file writing and the project lock file.

:func:`atomic_write` never leaves a half-written file under the final name: the data goes to a temporary
file in the same folder, is flushed and ``fsync``-ed, and then renamed over the target with
``os.replace``; the folder is ``fsync``-ed so the rename itself survives a power cut. The previous
version is kept as ``<file>.bak`` (a hard link to the old file, or a copy where links are unsupported).

:class:`ProjectLock` is a ``<file>.lock`` that records the holder's pid, host name and start time (JSON),
held open under the operating system's exclusive lock (:mod:`efficientsam_studio.os_lock`) while the
project is open. A lock file whose OS lock is held is in use, whatever it says. One whose OS lock is
free is judged by its content: a lock left by a process that died on this host is taken over, and so
is a lock file that is not such a record once it is a few seconds old; a lock of another host, or of
a process of this host that runs, is respected. A takeover happens under the OS lock, so two
processes can never both take over the same stale lock.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import socket
import time
from pathlib import Path

from efficientsam_studio import os_lock
from efficientsam_studio.annotations.errors import (
    LockUnwritableError,
    ProjectLockedError,
    SaveError,
)
from efficientsam_studio.errors import os_error_reason

# an unreadable lock file younger than this may be one that another process is still writing
_FRESH_LOCK_SECONDS = 5.0
# where the OS lock of a lock file sits (Windows locks bytes: this one lies past the JSON)
_OS_LOCK_OFFSET = 1 << 20


def backup_path(path: Path) -> Path:
    """Where the previous version of ``path`` is kept: ``<file>.bak``."""
    return path.with_name(path.name + ".bak")


def lock_path(path: Path) -> Path:
    """The lock file of ``path``: ``<file>.lock``."""
    return path.with_name(path.name + ".lock")


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable; best effort (some file systems cannot fsync a folder)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _keep_backup(path: Path) -> None:
    backup = backup_path(path)
    staged = backup.with_name(backup.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        staged.unlink()
    try:
        try:
            os.link(path, staged)
        except OSError:
            shutil.copy2(path, staged)
        os.replace(staged, backup)
    except OSError:
        with contextlib.suppress(OSError):
            staged.unlink()
        raise


def atomic_write(path: Path, data: bytes, *, keep_backup: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see the module doc); keep the old file as ``<file>.bak``.

    On any failure (disk full, permission, a crash simulated by a raising ``os.replace``) the file under
    ``path`` is the previous version, the temporary file is removed and :class:`SaveError` is raised; its
    message names the file and the cause (the error number's meaning and what to do about it).
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    existed = path.exists()
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o644)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if keep_backup and existed:
            _keep_backup(path)
        os.replace(temporary, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        kept = "; the previous version of the file is unchanged" if existed else ""
        raise SaveError(f"could not write {path}: {os_error_reason(exc)}{kept}") from exc


def output_problem(path: Path, *, folder: bool) -> str | None:
    """Why ``path`` cannot be written as an output file (``folder``: as an output folder), or None.

    Writes nothing. Reported: a file where a folder is needed or a folder where a file is; a file on the
    way (``notes.txt/out``); a nearest existing folder in which files cannot be created (``os.access``,
    which a privileged process passes: the write itself then reports what remains).
    """
    path = Path(path)
    if path.exists():
        if folder and not path.is_dir():
            return f"{path} is a file, not a folder"
        if not folder and path.is_dir():
            return f"{path} is a folder, not a file"
    base = path if folder else path.parent
    while not base.exists() and base.parent != base:
        base = base.parent
    if base.exists() and not base.is_dir():
        return f"{base} is a file, not a folder"
    if not os.access(base, os.W_OK | os.X_OK):
        return f"cannot create files in {base} (it is read-only, or you lack permission to write there)"
    return None


def _windows_pid_alive(pid: int) -> bool:
    """Whether a process runs on Windows (``os.kill(pid, 0)`` would send it Ctrl+C there)."""
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.get_last_error() == 5  # access denied: it exists
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host is running (a lock whose holder died is stale)."""
    if pid <= 0:
        return False
    if os.name == "nt":
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _lock_pid(info: dict | None) -> int | None:
    """The holder's pid of a lock file's content, or None when it is not a lock as :class:`ProjectLock`
    writes one (a positive integer ``pid`` and a string ``hostname``)."""
    if info is None:
        return None
    pid, hostname = info.get("pid"), info.get("hostname")
    if (
        not isinstance(pid, int)
        or isinstance(pid, bool)
        or not 0 < pid < 2**31
        or not isinstance(hostname, str)
    ):
        return None
    return pid


class ProjectLock:
    """An exclusive lock on one project file, held by this process until :meth:`release`."""

    def __init__(self, target: Path) -> None:
        self.target = Path(target)
        self.path = lock_path(self.target)
        self.held = False
        self._fd: int | None = None

    def acquire(self) -> None:
        """Create or take over the lock file, or raise :class:`ProjectLockedError` naming the holder.

        A lock file that cannot be created or written (a read-only folder, a full disk) raises
        :class:`ProjectError` naming the lock file and the cause; no partial lock file is left.
        """
        for _ in range(5):
            try:
                fd, created = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
            except FileExistsError:
                try:
                    fd, created = os.open(self.path, os.O_RDWR), False
                except FileNotFoundError:
                    continue  # its holder released it as we looked
                except OSError as exc:
                    raise self._unwritable_error(exc) from exc
            except OSError as exc:
                raise self._unwritable_error(exc) from exc
            if not self._os_lock(fd, patient=created):
                os.close(fd)
                raise self._locked_error()
            if not os_lock.still_linked(fd, self.path):
                os.close(fd)  # released and removed between our open and our lock: look again
                continue
            if not created and not self._is_stale():
                os_lock.unlock(fd, _OS_LOCK_OFFSET)
                os.close(fd)
                raise self._locked_error()
            self._write_holder(fd, created)
            self._fd = fd
            self.held = True
            return
        raise self._locked_error()

    @staticmethod
    def _os_lock(fd: int, patient: bool) -> bool:
        """The OS lock of ``fd``; ``patient`` (a file this process just created): another process that
        opened it at once may hold the lock for the moment it takes to see that, so try a little longer."""
        for _ in range(20 if patient else 1):
            if os_lock.try_lock(fd, _OS_LOCK_OFFSET):
                return True
            time.sleep(0.005)
        return False

    def _write_holder(self, fd: int, created: bool) -> None:
        info = {
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "since": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        try:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            _write_all(fd, json.dumps(info).encode())
            os.fsync(fd)
        except OSError as exc:
            if created:
                with contextlib.suppress(OSError):
                    self.path.unlink()
            os_lock.unlock(fd, _OS_LOCK_OFFSET)
            os.close(fd)
            raise self._unwritable_error(exc) from exc

    def _unwritable_error(self, exc: OSError) -> LockUnwritableError:
        return LockUnwritableError(
            f"cannot open project {self.target} for writing: its lock file {self.path} cannot be written: "
            f"{os_error_reason(exc)}"
        )

    def holder(self) -> dict | None:
        """The lock file's content, or None when it is missing or unreadable."""
        try:
            info = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def _is_stale(self) -> bool:
        """Whether the lock file's content says its holder is gone (its OS lock is free).

        A lock of a process of this host that no longer runs is stale. A lock of another host is never
        taken over (its process cannot be checked). A lock file that cannot be read as a lock (not
        JSON, or no integer ``pid`` and string ``hostname``) is stale once it is a few seconds old: a
        live holder writes its lock right after creating it, so only a crashed or foreign writer leaves
        such a file behind.
        """
        info = self.holder()
        pid = _lock_pid(info)
        if pid is None:
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return True
            if age < _FRESH_LOCK_SECONDS:
                return False
        elif info["hostname"] != socket.gethostname() or _pid_alive(pid):
            return False
        return True

    def _locked_error(self) -> ProjectLockedError:
        info = self.holder() or {}
        if info.get("pid") == os.getpid() and info.get("hostname") == socket.gethostname():
            return ProjectLockedError(
                f"project {self.target} is already open in this program (in another window): switch to "
                "it, or close the project there first.",
                self.path,
                info,
            )
        if _lock_pid(info) is not None:
            who = f"process {info['pid']} on {info['hostname']}"
        else:
            who = "another process"
        since = f" since {info['since']}" if info.get("since") else ""
        return ProjectLockedError(
            f"project {self.target} is open in {who}{since}. Close it there first. If that program is "
            f"no longer running (it crashed on another computer), delete the lock file {self.path}.",
            self.path,
            info,
        )

    def release(self) -> None:
        """Remove the lock file and give up its OS lock, if this object holds it. The file goes first
        (on POSIX), so whoever opens it meanwhile finds it removed once it has the lock, and looks again."""
        if not self.held:
            return
        fd, self._fd = self._fd, None
        self.held = False
        if os.name == "nt" and fd is not None:  # an open file cannot be removed there
            os_lock.unlock(fd, _OS_LOCK_OFFSET)
            os.close(fd)
            fd = None
        with contextlib.suppress(OSError):
            self.path.unlink()
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> ProjectLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
