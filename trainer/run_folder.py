"""The files of a run folder (``--out``), and starting a run over in one (``--overwrite``).

A run folder holds the checkpoint, the log, TensorBoard events and the stage's export: SAMI writes
``encoder.pt``, finetuning ``efficientsam.pt`` and ``efficientsam.json``. A new run started over in the
folder of an earlier one (of either stage) first removes all of them, so that nothing of the earlier run
is left beside the new one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "log.jsonl"
TENSORBOARD_NAME = "tensorboard"
SAMI_EXPORT = "encoder.pt"
FINETUNE_EXPORT = "efficientsam.pt"

#: everything a run of any stage writes into its folder
RUN_FILES = (
    CHECKPOINT_NAME,
    LOG_NAME,
    TENSORBOARD_NAME,
    SAMI_EXPORT,
    FINETUNE_EXPORT,
    Path(FINETUNE_EXPORT).with_suffix(".json").name,
)


def start_over(out_dir: str | Path) -> list[Path]:
    """Remove the files of :data:`RUN_FILES` from ``out_dir``; returns what was removed."""
    removed = []
    for name in RUN_FILES:
        path = Path(out_dir) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(path)
    return removed
