"""Settings of the shared training loop (:class:`TrainConfig`) and what a run reached (:class:`FitResult`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from efficientsam_studio.errors import StudioError

PRECISIONS = ("auto", "bf16", "fp16", "fp32")

RESUME_AND_OVERWRITE = (
    "--resume and --overwrite contradict each other: --resume continues the run in --out, --overwrite "
    "starts it over (moving the earlier run's files into a previous-* folder); give one of them"
)
"""The refusal of ``--resume`` with ``--overwrite`` (``efsam-studio train`` checks it before any work)."""


class TrainConfigError(StudioError):
    """Training settings that cannot work together (batch, accumulation, dataset size, resume)."""


@dataclass
class TrainConfig:
    """Settings of the loop; the task holds the model and data settings.

    Learning rate: ``lr`` when given, else ``blr * effective_batch / 256``. ``warmup_epochs`` may be
    fractional (a warmup of ``epochs`` or more is warned about: the run would never reach its peak lr).
    ``resume``: a checkpoint path, or ``"auto"`` for ``out_dir/checkpoint.pt`` when it exists (when it
    does not, a notice says so and the run starts at step 0); the checkpoint's run must have the same
    settings, except a larger ``epochs`` (see :mod:`trainer.resume`). On resume, ``log.jsonl`` (and the
    TensorBoard events) keep only the records up to the checkpoint's step, so every optimiser step has
    one record however often a run was interrupted. ``overwrite``: start a new run in an ``out_dir``
    that holds one, first moving the files this run writes (checkpoint, log, TensorBoard events, the
    task's export) into a ``previous-*`` subfolder (:func:`trainer.run_folder.set_aside`); it contradicts
    ``resume``.
    ``max_steps`` stops (with a checkpoint and an export) once that many optimiser steps are done in total;
    the schedule still spans ``epochs``. ``checkpoint_every``: also checkpoint every N optimiser steps
    (0: only at epoch ends and at the stop). ``precision`` ``"auto"``: bf16 autocast on CUDA, fp32 on CPU.
    """

    out_dir: Path
    epochs: int = 1
    batch_size: int = 8
    accum: int = 1
    blr: float = 1.5e-4
    lr: float | None = None
    min_lr: float = 0.0
    warmup_epochs: float = 0.0
    decay: str = "cosine"
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    clip_grad: float | None = None
    precision: str = "auto"
    device: str = "auto"
    workers: int = 0
    seed: int = 0
    resume: str | None = None
    overwrite: bool = False
    max_steps: int | None = None
    checkpoint_every: int = 0
    log_every: int = 1
    progress: bool = True
    tensorboard: bool = True

    def to_plain(self) -> dict[str, Any]:
        plain = asdict(self)
        plain["out_dir"] = str(self.out_dir)
        plain["betas"] = list(self.betas)
        return plain


@dataclass
class FitResult:
    """What a finished (or stopped) run reached."""

    step: int
    epoch: int
    metrics: dict[str, float] = field(default_factory=dict)
    export_path: Path | None = None
    checkpoint_path: Path | None = None
    corrupt_images: int = 0
    stopped_early: bool = False
    totals: dict[str, int] = field(default_factory=dict)
