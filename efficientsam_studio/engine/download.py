"""Fetching one file over HTTP(S) into place: resume, retries, cancellation, checksum, atomic rename.

:func:`fetch_file` downloads ``url`` to ``dest`` through ``dest.part``:

- a ``.part`` file left by an interrupted run is resumed with an HTTP ``Range`` request; a server that
  ignores the range (answers ``200`` with the whole file) or answers a different range is restarted
  cleanly from byte 0;
- connection errors, timeouts, cut-off bodies and ``5xx``/``429`` answers are retried with exponential
  backoff (``backoff * 2**k`` seconds); an attempt that grows the partial file resets the count, so a
  flaky link that keeps making progress is not given up on; other HTTP errors (``404``) fail at once;
- ``cancel`` (a :class:`threading.Event` or a callable returning ``True``) is checked between chunks and
  during backoff; cancelling raises :class:`DownloadCancelled` and keeps the ``.part`` file for a resume;
- the finished file's size and checksum are verified (``sha256``, or a git blob id: the SHA-1 of
  ``b"blob <size>\\0" + content``); a mismatch removes the file and raises :class:`DownloadError`
  (after one fresh download when the mismatching file had been resumed from an older ``.part``);
- ``check`` (optional) is called on the verified file before it takes the place of ``dest``; when it
  refuses the file, the file is removed and ``dest`` is left as it was;
- the verified file is flushed to disk and renamed over ``dest`` atomically.

One download of a file runs at a time: :class:`DownloadLock` holds ``<dest>.lock`` (``fcntl.flock`` on
POSIX, ``msvcrt.locking`` on Windows; the operating system drops the lock of a process that dies) from the
first request to the rename. A second download of the same file, from another process or another window
of the app, is refused at once with :class:`DownloadInProgress` saying so, rather than waiting: a command
that waits shows no progress and looks hung, and a second progress dialog for the same file helps no one.
The first download goes on undisturbed.

Only the standard library is used (``urllib``).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from efficientsam_studio import __version__, os_lock
from efficientsam_studio.errors import StudioError, os_error_reason

__all__ = [
    "Checksum",
    "DownloadCancelled",
    "DownloadError",
    "DownloadInProgress",
    "DownloadLock",
    "ProgressCallback",
    "RetryCallback",
    "fetch_file",
    "file_checksum",
    "verify_file",
]

ProgressCallback = Callable[[int, "int | None"], None]
"""``progress(done_bytes, total_bytes)``; ``total_bytes`` is ``None`` while unknown."""

RetryCallback = Callable[[int, int, float, str], None]
"""``on_retry(attempt, attempts, delay_s, reason)``: an attempt failed and attempt number ``attempt`` of
at most ``attempts`` starts in ``delay_s`` seconds; ``reason`` says what went wrong."""

_CHUNK_BYTES = 1 << 20
_USER_AGENT = f"efficientsam-studio/{__version__}"
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(StudioError):
    """A download failed for good: server error, wrong checksum or size, or the file cannot be written."""


class DownloadCancelled(DownloadError):
    """The download was cancelled by the caller; the partial file is kept for a later resume."""


class DownloadInProgress(DownloadError):
    """Another download of the same file is running (in another process, or another thread)."""


def lock_path(dest: Path) -> Path:
    """The lock file of the download of ``dest``: ``<dest>.lock``, next to ``<dest>.part``."""
    return dest.with_name(dest.name + ".lock")


class DownloadLock:
    """The exclusive lock on the download of one file ``dest``, as a context manager.

    The lock is ``<dest>.lock`` held with ``fcntl.flock`` (``msvcrt.locking`` on Windows); it holds this
    process's pid for whoever looks. Entering raises :class:`DownloadInProgress` when another download
    of ``dest`` holds it, and :class:`DownloadError` when the lock file cannot be created. Leaving
    releases the lock and removes the file.
    """

    def __init__(self, dest: Path) -> None:
        self.dest = Path(dest)
        self.path = lock_path(self.dest)
        self._fd: int | None = None

    def __enter__(self) -> DownloadLock:
        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise DownloadError(
                    f"cannot create the lock file {self.path}: {os_error_reason(exc)}"
                ) from None
            if not os_lock.try_lock(fd):
                os.close(fd)
                raise DownloadInProgress(
                    f"a download of {self.dest.name} into {self.dest.parent} is already running (in another "
                    "efsam-studio command or window); let it finish, or stop it, then try again"
                )
            if os.name == "nt" or os_lock.still_linked(fd, self.path):
                self._fd = fd
                with contextlib.suppress(OSError):  # the pid is for people; the lock works without it
                    os.ftruncate(fd, 0)
                    os.write(fd, str(os.getpid()).encode())
                return self
            os.close(fd)  # the holder before us removed this file as we opened it: take a fresh one
        raise DownloadInProgress(f"the lock file {self.path} keeps changing; try again")

    def __exit__(self, *exc_info: object) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if os.name == "nt":  # an open file cannot be removed there: unlock and close it first
            os_lock.unlock(fd)
            os.close(fd)
            with contextlib.suppress(OSError):
                self.path.unlink()
        else:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(fd)


def _kept_note(part: Path) -> str:
    """What remains of an unfinished download in ``part``, for an error message ("" when nothing)."""
    kept = part.stat().st_size if part.exists() else 0
    if not kept:
        return ""
    return f"; the {kept:,} bytes received so far are kept in {part} and the next run resumes from there"


@dataclass(frozen=True)
class Checksum:
    """An expected digest: ``kind`` is ``"sha256"`` or ``"git-blob-sha1"`` (a git blob id), ``value`` hex."""

    kind: Literal["sha256", "git-blob-sha1"]
    value: str

    def __str__(self) -> str:
        return f"{self.kind} {self.value}"


def file_checksum(path: Path, kind: str) -> str:
    """Hex digest of ``path``: ``sha256`` of the content, or ``git-blob-sha1`` (what ``git hash-object``
    prints: SHA-1 of ``b"blob <size>\\0"`` followed by the content)."""
    if kind == "sha256":
        digest = hashlib.sha256()
    elif kind == "git-blob-sha1":
        digest = hashlib.sha1()
        digest.update(b"blob %d\0" % Path(path).stat().st_size)
    else:
        raise ValueError(f"unknown checksum kind {kind!r}")
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, size: int | None, checksum: Checksum | None) -> str | None:
    """The reason ``path`` does not match the expected ``size``/``checksum``, or ``None`` when it does."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"it has {actual_size:,} bytes instead of {size:,}"
    if checksum is not None:
        actual = file_checksum(path, checksum.kind)
        if actual != checksum.value.lower():
            return f"its {checksum.kind} is {actual}, expected {checksum.value}"
    return None


def _cancelled(cancel: object) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())  # type: ignore[operator]


def _wait(seconds: float, cancel: object) -> None:
    """Sleep ``seconds``, waking early (and raising) when cancelled."""
    deadline = time.monotonic() + seconds
    while True:
        if _cancelled(cancel):
            raise DownloadCancelled("download cancelled")
        left = deadline - time.monotonic()
        if left <= 0:
            return
        if isinstance(cancel, threading.Event):
            cancel.wait(min(left, 0.5))
        else:
            time.sleep(min(left, 0.1))


class _Retry(Exception):
    """One attempt failed in a way worth retrying."""


def _range_start(response: http.client.HTTPResponse) -> int | None:
    match = re.match(r"bytes\s+(\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _attempt(
    url: str,
    part: Path,
    timeout: float,
    progress: ProgressCallback | None,
    cancel: object,
    size: int | None,
) -> int:
    """One HTTP request appending to (or restarting) ``part``; returns the bytes received."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if response.status == 206 and _range_start(response) != have:
                part.unlink(missing_ok=True)  # a range other than the one asked for: start over
                raise _Retry(f"the server sent bytes from {_range_start(response)} instead of {have}")
            if have and response.status != 206:
                have = 0  # the server ignored the range and sends the whole file: start over
            length = response.headers.get("Content-Length")
            expected_end = have + int(length) if length and length.isdigit() else size
            if size is not None and expected_end != size:
                part.unlink(missing_ok=True)
                raise DownloadError(
                    f"{url}: the server offers a file of {expected_end:,} bytes, but the published one has "
                    f"{size:,}; nothing was kept. Check the address (or EFSAM_WEIGHTS_URL) and try again"
                )
            try:
                handle = open(part, "ab" if have else "wb")  # noqa: SIM115 (closed below)
            except OSError as exc:
                raise DownloadError(f"cannot write {part}: {os_error_reason(exc)}") from None
            with _closed_quietly(handle):
                if progress:
                    progress(have, expected_end)
                while True:
                    if _cancelled(cancel):
                        raise DownloadCancelled(f"download of {url} cancelled; {part} is kept for a resume")
                    block = response.read(_CHUNK_BYTES)
                    if not block:
                        break
                    try:
                        handle.write(block)
                        handle.flush()
                    except OSError as exc:
                        raise _write_failed(part, exc) from None
                    received += len(block)
                    if progress:
                        progress(have + received, expected_end)
            if expected_end is not None and have + received < expected_end:
                raise _Retry(f"the connection closed after {have + received:,} of {expected_end:,} bytes")
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have and size is not None and have == size:
            return received  # the partial file is already complete
        if exc.code == 416:
            part.unlink(missing_ok=True)
            raise _Retry("the server refused to resume the partial file (HTTP 416)") from None
        if exc.code in _RETRY_STATUS:
            raise _Retry(f"HTTP {exc.code} {exc.reason}") from None
        raise DownloadError(f"{url}: the server answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise _Retry(f"{type(exc).__name__}: {reason}") from None
    except OSError as exc:  # socket errors raised while reading the body
        raise _Retry(f"{type(exc).__name__}: {exc}") from None
    return received


@contextlib.contextmanager
def _closed_quietly(handle):
    """Close ``handle`` on leaving, ignoring a failure to flush what a full disk did not take."""
    try:
        yield handle
    finally:
        with contextlib.suppress(OSError):
            handle.close()


def _write_failed(part: Path, exc: OSError) -> DownloadError:
    """The error for a chunk that could not be written to ``part`` (a full disk, most often)."""
    return DownloadError(f"cannot write {part}: {os_error_reason(exc)}{_kept_note(part)}")


def fetch_file(
    url: str,
    dest: Path,
    *,
    size: int | None = None,
    checksum: Checksum | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | Callable[[], bool] | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 30.0,
    check: Callable[[Path], None] | None = None,
    lock: bool = True,
    on_retry: RetryCallback | None = None,
) -> Path:
    """Download ``url`` to ``dest`` (see the module doc); returns ``dest``.

    Args:
        size: expected size in bytes, or ``None`` when not published.
        checksum: expected digest, or ``None`` when not published.
        progress: called with ``(bytes_done, bytes_total_or_None)`` after every chunk.
        cancel: checked between chunks; when set, :class:`DownloadCancelled` is raised.
        retries: attempts after the first that may fail without any progress before giving up.
        backoff: first retry delay in seconds, doubled each time (``0`` retries at once).
        timeout: seconds to wait for the server on connect and on each read.
        check: called with the complete, verified file (still under its partial name) before it
            replaces ``dest``; raises :class:`DownloadError` to refuse it, and the file is removed.
        lock: hold :class:`DownloadLock` on ``dest`` while downloading; ``False`` when the caller holds it.
        on_retry: told before each retry (see :data:`RetryCallback`), e.g. to say that the connection
            dropped while the download waits to try again.

    Raises:
        DownloadError: persistent network or server errors, HTTP errors like 404, a size or checksum
            mismatch (the downloaded file is removed), or a file that cannot be written.
        DownloadCancelled: ``cancel`` fired.
        DownloadInProgress: another download of ``dest`` is running.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the folder {dest.parent}: {os_error_reason(exc)}") from None
    with DownloadLock(dest) if lock else contextlib.nullcontext():
        return _fetch_locked(
            url, dest, size, checksum, progress, cancel, retries, backoff, timeout, check, on_retry
        )


def _fetch_locked(
    url: str,
    dest: Path,
    size: int | None,
    checksum: Checksum | None,
    progress: ProgressCallback | None,
    cancel: threading.Event | Callable[[], bool] | None,
    retries: int,
    backoff: float,
    timeout: float,
    check: Callable[[Path], None] | None,
    on_retry: RetryCallback | None = None,
) -> Path:
    """:func:`fetch_file` once the download lock of ``dest`` is held."""
    part = dest.with_name(dest.name + ".part")
    resumed = part.exists() and part.stat().st_size > 0
    while True:
        _transfer(url, part, size, progress, cancel, retries, backoff, timeout, on_retry)
        problem = verify_file(part, size, checksum)
        if problem is None:
            break
        part.unlink(missing_ok=True)
        if resumed:  # the partial file may be from another version of the file: try once from scratch
            resumed = False
            continue
        raise DownloadError(
            f"{url}: the downloaded file is not the published one: {problem}. It was removed; run the "
            "command again, and if this repeats, the server or a proxy is serving a different file"
        )
    if check is not None:
        try:
            check(part)
        except DownloadError:
            part.unlink(missing_ok=True)
            raise
    _commit(part, dest)
    return dest


def _transfer(
    url: str,
    part: Path,
    size: int | None,
    progress: ProgressCallback | None,
    cancel: threading.Event | Callable[[], bool] | None,
    retries: int,
    backoff: float,
    timeout: float,
    on_retry: RetryCallback | None = None,
) -> None:
    """Fill ``part`` with the whole body of ``url``, retrying as the module doc describes."""
    failures = 0
    largest = part.stat().st_size if part.exists() else 0
    while True:
        if _cancelled(cancel):
            raise DownloadCancelled(f"download of {url} cancelled; {part} is kept for a resume")
        if part.exists() and size is not None and part.stat().st_size > size:
            part.unlink()
        try:
            _attempt(url, part, timeout, progress, cancel, size)
            return
        except _Retry as exc:
            received = part.stat().st_size if part.exists() else 0
            # Only growth past the largest partial file so far counts as progress; a server that drops
            # the connection and ignores ranges would otherwise restart forever.
            failures = 1 if received > largest else failures + 1
            largest = max(largest, received)
            if failures > retries:
                raise DownloadError(
                    f"{url}: download failed after {failures} failed attempt{'s' if failures > 1 else ''} in "
                    f"a row ({exc}); check the network connection and run the command again"
                    f"{_kept_note(part)}"
                ) from None
            delay = backoff * 2 ** (failures - 1)
            if on_retry is not None:
                on_retry(failures + 1, retries + 1, delay, str(exc))
            _wait(delay, cancel)


def _commit(part: Path, dest: Path) -> None:
    """Flush ``part`` to disk and rename it over ``dest`` atomically."""
    try:
        with open(part, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(part, dest)
        if hasattr(os, "O_DIRECTORY"):
            fd = os.open(dest.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as exc:
        raise DownloadError(f"cannot move the download into {dest}: {os_error_reason(exc)}") from None
