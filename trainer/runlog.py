"""Training logs: one JSON object per line in ``RUN_DIR/log.jsonl``, and TensorBoard when it is installed.

Only rank 0 writes. Every record holds ``step`` (optimiser steps so far), ``epoch`` and the logged values.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


class RunLog:
    """Append-only JSON-lines log with an optional TensorBoard mirror (``RUN_DIR/tensorboard``)."""

    def __init__(self, out_dir: str | Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(out_dir) / "log.jsonl"
        self._handle = None
        self._writer = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a", encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self._writer = None
            else:
                self._writer = SummaryWriter(str(Path(out_dir) / "tensorboard"))

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


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``log.jsonl`` file, in order."""
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
