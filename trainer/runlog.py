"""Training logs: one JSON object per line in ``RUN_DIR/log.jsonl``, and TensorBoard when it is installed.

Only rank 0 writes. Every record holds ``step`` (optimiser steps so far), ``epoch`` and the logged values.
A run that starts (or resumes) at step ``s`` first drops the records of later steps, left by an earlier run
that went on past its last checkpoint, so a resumed run has exactly one record per optimiser step.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from trainer.run_folder import LOG_NAME, TENSORBOARD_NAME


class RunLog:
    """JSON-lines log with an optional TensorBoard mirror (``RUN_DIR/tensorboard``), appended to from
    ``start_step``: records of later steps already in ``log.jsonl`` are removed first, and TensorBoard
    events from step ``start_step + 1`` on are purged (its ``purge_step``)."""

    def __init__(
        self, out_dir: str | Path, enabled: bool = True, tensorboard: bool = True, start_step: int = 0
    ) -> None:
        self.enabled = enabled
        self.path = Path(out_dir) / LOG_NAME
        self._handle = None
        self._writer = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        truncate_log(self.path, start_step)
        self._handle = self.path.open("a", encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self._writer = None
            else:
                self._writer = SummaryWriter(str(Path(out_dir) / TENSORBOARD_NAME), purge_step=start_step + 1)

    def log(self, record: dict[str, Any]) -> None:
        """Write one record; numbers that are not finite are written as strings (JSON has no NaN)."""
        if not self.enabled or self._handle is None:
            return
        clean = {
            k: (v if not isinstance(v, float) or math.isfinite(v) else str(v)) for k, v in record.items()
        }
        self._handle.write(json.dumps(clean, sort_keys=True) + "\n")
        self._handle.flush()
        if self._writer is not None and "step" in record:
            for key, value in record.items():
                if key not in ("step", "epoch") and isinstance(value, (int, float)):
                    self._writer.add_scalar(f"train/{key}", value, record["step"])

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def truncate_log(path: str | Path, step: int) -> None:
    """Keep only the records of ``log.jsonl`` up to optimiser step ``step`` (and drop a torn last line);
    the file is rewritten atomically, and only when something is removed."""
    path = Path(path)
    if not path.is_file():
        return
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
            kept.append(line)
    if len(kept) == len(lines) and (not text or text.endswith("\n")):
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in kept))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``log.jsonl`` file, in order."""
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
