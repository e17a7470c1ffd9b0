"""Exclusive locks the operating system holds on an open file, for lock files shared by processes.

The lock belongs to the open file and ends when it is closed or when its process ends, however it
ends: a crashed holder leaves a lock file behind but never a held lock. POSIX: ``fcntl.flock``.
Windows: ``msvcrt.locking`` on one byte at ``offset``, past the content, so that others can still read
what the holder wrote there.
"""

from __future__ import annotations

import contextlib
import os


def try_lock(fd: int, offset: int = 0) -> bool:
    """Take the exclusive lock on the open file ``fd`` without waiting; False when another holds it."""
    try:
        if os.name == "nt":
            import msvcrt

            os.lseek(fd, offset, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # BlockingIOError on POSIX, PermissionError (EACCES) on Windows
        return False
    return True


def unlock(fd: int, offset: int = 0) -> None:
    """Give up the lock taken by :func:`try_lock` (closing ``fd`` gives it up too)."""
    with contextlib.suppress(OSError):
        if os.name == "nt":
            import msvcrt

            os.lseek(fd, offset, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_UN)


def still_linked(fd: int, path: os.PathLike[str] | str) -> bool:
    """Whether ``path`` still names the open file ``fd`` (its holder may have removed it, and another
    process made a new one, between our open and our lock)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False
