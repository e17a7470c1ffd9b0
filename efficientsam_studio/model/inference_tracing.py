"""Eager inference and ``torch.export`` tracing of the same methods (used by the inference decoder)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch

_F = TypeVar("_F", bound=Callable)


def is_exporting() -> bool:
    """``torch.compiler.is_exporting()`` where this torch has it, else False (older torch cannot export)."""
    check = getattr(torch.compiler, "is_exporting", None)
    return bool(check()) if check is not None else False


def inference(fn: _F) -> _F:
    """Runs ``fn`` under ``torch.inference_mode`` in eager mode; traced as is by ``torch.export``."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if is_exporting():
            return fn(*args, **kwargs)
        with torch.inference_mode():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
