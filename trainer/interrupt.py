"""Holding Ctrl+C (SIGINT) back while something must finish whole: a checkpoint write, an optimiser step.

Inside :func:`hold_sigint`, the first Ctrl+C is held: the block goes on, and the interrupt is delivered
(as ``KeyboardInterrupt``, or to the handler that was installed before) when the block ends. The
``presses_to_abort``-th Ctrl+C aborts the block at once; whatever the block raises then (``torch.save``
turns an interrupted write into a ``RuntimeError`` of its zip writer) is replaced by ``KeyboardInterrupt``,
so callers see one kind of interruption and can clean up (an atomic save removes its temporary file).

Signal handlers can only be installed from the main thread; elsewhere, and where SIGINT is ignored (a
background job), the block runs unchanged.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator


def _deliver(previous) -> None:
    """Pass a held Ctrl+C on to the handler that was installed before the hold."""
    if callable(previous):
        previous(signal.SIGINT, None)
    else:
        raise KeyboardInterrupt


@contextlib.contextmanager
def hold_sigint(presses_to_abort: int = 2, notice: str | None = None) -> Iterator[None]:
    """Run the block with Ctrl+C held back (see the module docstring).

    ``presses_to_abort``: the Ctrl+C that aborts the block (1: the first one; 2: the second, so the first
    is held). ``notice``: printed on stderr when a Ctrl+C is held, e.g. what is being finished.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous in (signal.SIG_IGN, None):
        yield
        return
    presses = 0

    def handler(signum, frame) -> None:
        nonlocal presses
        presses += 1
        if presses >= presses_to_abort:
            raise KeyboardInterrupt
        if notice:
            print(notice, file=sys.stderr, flush=True)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    except BaseException as exc:
        if presses >= presses_to_abort and not isinstance(exc, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
    if presses:
        _deliver(previous)
