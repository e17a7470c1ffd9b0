"""The files of a run folder (``--out``), and starting a run over in one (``--overwrite``).

A run folder holds the checkpoint, the log, TensorBoard events and the stage's export: SAMI writes
``encoder.pt``, finetuning ``efficientsam.pt`` and ``efficientsam.json``. A run started over in the folder of
an earlier one first moves the files it writes itself (:func:`run_files`) into a new subfolder
``previous-<date>-<time>`` (:func:`set_aside`): nothing is deleted, and the other stage's export (the
``encoder.pt`` of a SAMI run that a finetuning run in the same folder starts from) and every other file
stay where they are. A file the new run reads (``--init``, ``--teacher``, data) that lies among the files it
would move aside is refused before any work (:func:`check_inputs`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from efficientsam_studio.engine.checkpoints import FINETUNE_EXPORT, SAMI_EXPORT
from trainer.config import TrainConfigError

__all__ = [
    "CHECKPOINT_NAME",
    "FINETUNE_EXPORT",
    "LOG_NAME",
    "PREVIOUS_PREFIX",
    "SAMI_EXPORT",
    "TENSORBOARD_NAME",
    "check_inputs",
    "run_files",
    "set_aside",
]

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "log.jsonl"
TENSORBOARD_NAME = "tensorboard"
PREVIOUS_PREFIX = "previous-"


def run_files(exports: Sequence[str]) -> tuple[str, ...]:
    """The names a run writes into its folder: checkpoint, log, TensorBoard folder and ``exports`` (the
    files its task's export writes)."""
    return (CHECKPOINT_NAME, LOG_NAME, TENSORBOARD_NAME, *exports)


def check_inputs(out_dir: str | Path, names: Sequence[str], inputs: Mapping[str, str | Path | None]) -> None:
    """TrainConfigError (one line) when an input of ``inputs`` (option -> path) is, or lies inside, one of
    the ``names`` of ``out_dir`` that starting the run over would move aside."""
    replaced = [(Path(out_dir) / name).resolve() for name in names]
    for option, given in inputs.items():
        if given is None:
            continue
        path = Path(given).expanduser().resolve()
        if any(path == target or target in path.parents for target in replaced):
            raise TrainConfigError(
                f"{option} {given} is a file of the earlier run in --out {out_dir}, which --overwrite moves "
                f"aside ({', '.join(names)}); copy it out of {out_dir} first, or give another --out"
            )


def set_aside(out_dir: str | Path, names: Sequence[str]) -> tuple[Path | None, list[str]]:
    """Move the ``names`` present in ``out_dir`` into a new ``out_dir/previous-<date>-<time>`` folder;
    returns that folder (None when there was nothing to move) and the names moved."""
    out = Path(out_dir)
    present = [name for name in names if (out / name).exists() or (out / name).is_symlink()]
    if not present:
        return None, []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = out / f"{PREVIOUS_PREFIX}{stamp}"
    number = 1
    while target.exists() or target.is_symlink():
        number += 1
        target = out / f"{PREVIOUS_PREFIX}{stamp}-{number}"
    target.mkdir()
    for name in present:
        os.replace(out / name, target / name)
    return target, present
