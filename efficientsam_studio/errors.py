"""Errors that carry a message meant for the user (what went wrong, where, what to do).

Every package raises a subclass of :class:`StudioError` for bad input; the CLI prints the message
without a traceback and the GUI shows it in a dialog. :func:`os_error_reason` and
:func:`describe_os_error` put a failed file operation (an ``OSError``) into the same kind of words.
"""

from __future__ import annotations

import errno


class StudioError(Exception):
    """Base class of user-facing errors."""


class ImageLoadError(StudioError):
    """An image file could not be read (missing, not an image, truncated, too large)."""


class CheckpointError(StudioError):
    """A checkpoint file is missing, truncated, corrupt or of the wrong architecture."""


_REMEDIES = {
    errno.ENOSPC: "free some space or choose another location",
    getattr(errno, "EDQUOT", errno.ENOSPC): "free some space or choose another location",
    errno.EROFS: "choose another location",
}


def os_error_reason(exc: OSError) -> str:
    """The cause of ``exc`` in words (its ``strerror``: ``"Permission denied"``), with what to do where the
    error number alone tells it: ``"the disk is full (free some space or choose another location)"``."""
    if exc.errno == errno.ENOSPC:
        reason = "the disk is full"
    else:
        reason = exc.strerror or str(exc) or type(exc).__name__
    remedy = _REMEDIES.get(exc.errno)
    return f"{reason} ({remedy})" if remedy else reason


def describe_os_error(exc: OSError) -> str:
    """One line naming the file of ``exc`` (both files of a failed rename) and :func:`os_error_reason`."""
    if exc.filename is None:
        return os_error_reason(exc)
    where = str(exc.filename)
    if exc.filename2 is not None:
        where += f" -> {exc.filename2}"
    return f"{where}: {os_error_reason(exc)}"
