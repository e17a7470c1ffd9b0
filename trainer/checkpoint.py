"""Atomic training checkpoints and the random-number-generator states they carry.

A checkpoint is a ``torch.save`` dict written to a temporary file in the same folder, fsynced and renamed
over the previous one, so a crash leaves either the old or the new file, never a torn one. A Ctrl+C during
the write is held until the file is complete (a second one abandons the write and keeps the old file; see
:mod:`trainer.interrupt`). Everything in it loads with ``torch.load(weights_only=True)``: tensors,
numbers, strings, lists, tuples and dicts.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from efficientsam_studio.engine.checkpoints import read_checkpoint
from efficientsam_studio.errors import CheckpointError
from trainer.interrupt import hold_sigint


def atomic_torch_save(obj: Any, path: str | Path, presses_to_abort: int = 2) -> Path:
    """Write ``obj`` with ``torch.save`` to ``path`` atomically (temp file + fsync + rename).

    Ctrl+C is held back while the file is written: the ``presses_to_abort``-th one abandons the write
    (the temporary file is removed, an earlier ``path`` stays as it was) and raises KeyboardInterrupt;
    an earlier one is raised once the file is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    notice = f"finishing {path} (Ctrl+C again abandons it and keeps the previous file)"
    with hold_sigint(presses_to_abort, notice if presses_to_abort > 1 else None):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                torch.save(obj, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`atomic_torch_save`; CheckpointError names the problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist; give the file a run wrote (RUN_DIR/checkpoint.pt)"
        )
    state = read_checkpoint(path, "checkpoint")
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict")
    return state


def capture_rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's (CPU and CUDA) global generators."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [
            kind,
            torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
