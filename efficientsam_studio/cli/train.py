"""``efsam-studio train``: the trainer's command, dispatched by ``--stage`` to a table of stages.

Stages register themselves with :func:`register_stage` from their own modules, listed in
``STAGE_MODULES`` (a module that is not installed is skipped): ``trainer.sami_cli`` registers ``sami``
and ``sami-cache``; ``trainer.finetune.cli`` registers ``finetune``, the stage used when ``--stage`` is
omitted. The options every stage shares are defined here (default ``None``, so a stage can tell "not
given" from its preset's value); a stage adds its own options in ``add_arguments``.

Before a stage runs, the common options are checked (:func:`check_common_options`: numeric ranges,
``--device`` on this machine, ``--out`` and ``--resume`` paths); a stage checks its own with
:func:`check_ranges`. A bad value ends the command with one line naming the option and what it allows.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from efficientsam_studio.errors import StudioError

STAGE_MODULES = ("trainer.sami_cli", "trainer.finetune.cli")


@dataclass(frozen=True)
class Stage:
    """One ``--stage``: ``run(args) -> exit status``; ``add_arguments(group)`` adds its own options."""

    name: str
    run: Callable[[argparse.Namespace], int]
    help: str = ""
    add_arguments: Callable[[argparse._ArgumentGroup], None] | None = None
    default: bool = False


STAGES: dict[str, Stage] = {}


class TrainUsageError(StudioError):
    """``efsam-studio train`` was called with a stage or options that do not fit together."""


def register_stage(
    name: str,
    run: Callable[[argparse.Namespace], int],
    help: str = "",
    add_arguments: Callable[[argparse._ArgumentGroup], None] | None = None,
    default: bool = False,
) -> None:
    """Add a stage to the table (idempotent for the same name)."""
    STAGES[name] = Stage(name, run, help, add_arguments, default)


def _load_stage_modules() -> None:
    for module in STAGE_MODULES:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            importlib.import_module(module)


def world_size() -> int:
    """Number of processes of this run (torchrun's WORLD_SIZE, 1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def preset_value(args: argparse.Namespace, key: str, preset: dict) -> Any:
    """The option ``key`` as given on the command line, else the stage preset's value."""
    value = getattr(args, key, None)
    return preset[key] if value is None else value


def loop_settings(args: argparse.Namespace, preset: dict) -> dict[str, Any]:
    """The training-loop settings (``trainer.loop.TrainConfig`` fields) that every stage reads the same
    way from the common options and its preset; the stage adds its optimiser and schedule choices."""
    batch_size = preset_value(args, "batch_size", preset)
    return {
        "out_dir": Path(args.out),
        "epochs": preset_value(args, "epochs", preset),
        "batch_size": batch_size,
        "accum": accumulation_steps(args, preset, batch_size),
        "lr": args.lr if args.lr is not None else (None if args.blr is not None else preset["lr"]),
        "warmup_epochs": preset_value(args, "warmup_epochs", preset),
        "weight_decay": preset_value(args, "weight_decay", preset),
        "precision": args.precision or "auto",
        "device": args.device or "auto",
        "workers": preset_value(args, "workers", preset),
        "seed": args.seed or 0,
        "resume": args.resume,
        "overwrite": bool(getattr(args, "overwrite", False)),
        "max_steps": args.max_steps,
        "progress": not args.no_progress,
    }


def accumulation_steps(args: argparse.Namespace, preset: dict, batch_size: int) -> int:
    """Micro-batches per optimiser step: ``--accum``, or what reaches the preset's global batch."""
    if args.accum is not None:
        return args.accum
    if not preset["global_batch"]:
        return 1
    per_step = batch_size * world_size()
    if preset["global_batch"] % per_step:
        raise TrainUsageError(
            f"the preset's global batch {preset['global_batch']} is not a multiple of batch size "
            f"{batch_size} x {world_size()} processes; choose another --batch-size or give --accum"
        )
    return preset["global_batch"] // per_step


@dataclass(frozen=True)
class Range:
    """The values a numeric option allows: finite numbers from ``low`` to ``high`` (None: unbounded),
    each bound included unless ``low_open`` / ``high_open``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'above' if self.low_open else 'at least'} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'below' if self.high_open else 'at most'} {self.high:g}")
        return " and ".join(parts) if parts else "a finite number"


#: ranges of the options every stage shares (``--input-size`` must also be a multiple of 16)
COMMON_RANGES: dict[str, Range] = {
    "epochs": Range(1),
    "batch_size": Range(1),
    "accum": Range(1),
    "lr": Range(0, low_open=True),
    "blr": Range(0, low_open=True),
    "warmup_epochs": Range(0),
    "weight_decay": Range(0),
    "input_size": Range(16),
    "workers": Range(0),
    "seed": Range(0),
    "max_steps": Range(1),
    "checkpoint_every": Range(0),
}


def option_name(key: str) -> str:
    """``"batch_size"`` -> ``"--batch-size"``."""
    return "--" + key.replace("_", "-")


def check_ranges(args: argparse.Namespace, ranges: dict[str, Range]) -> None:
    """TrainUsageError for the first option given outside its range (options not given are skipped)."""
    for key, allowed in ranges.items():
        value = getattr(args, key, None)
        if value is not None and not allowed.contains(value):
            raise TrainUsageError(f"{option_name(key)} must be {allowed.describe()}; got {value}")


def check_common_options(args: argparse.Namespace) -> None:
    """Check the shared options before any work: ranges, ``--input-size`` a multiple of 16, ``--device``
    available here (as ``efsam-studio eval`` checks it), ``--out`` not a file nor the folder of an earlier
    run (unless ``--resume`` or ``--overwrite``, which contradict each other) and ``--resume PATH`` a
    checkpoint file."""
    check_ranges(args, COMMON_RANGES)
    if args.resume is not None and getattr(args, "overwrite", False):
        from trainer.config import RESUME_AND_OVERWRITE

        raise TrainUsageError(RESUME_AND_OVERWRITE)
    if args.input_size is not None and args.input_size % 16:
        raise TrainUsageError(
            f"--input-size must be a multiple of 16 (the patch size); got {args.input_size}"
        )
    if args.device is not None:
        from efficientsam_studio.engine.device import resolve_device

        resolve_device(args.device)
    if args.out:
        from efficientsam_studio.cli.export_cmd import check_output

        check_output("--out", Path(args.out), folder=True, targets=(), protected={})
        earlier = Path(args.out) / "checkpoint.pt"
        if args.resume is None and earlier.is_file() and not getattr(args, "overwrite", False):
            raise TrainUsageError(
                f"--out {args.out} holds a run already ({earlier}): continue it with --resume, "
                "start it over with --overwrite (its checkpoint, log and this stage's export are moved into "
                "a previous-* subfolder), "
                "or give another --out"
            )
    if args.resume not in (None, "auto"):
        resume = Path(args.resume)
        if resume.is_dir():
            raise TrainUsageError(
                f"--resume {resume} is a folder; give the checkpoint file of that run "
                f"({resume / 'checkpoint.pt'}), or --resume alone to continue the run in --out"
            )
        if not resume.is_file():
            raise TrainUsageError(f"--resume {resume}: no such checkpoint file")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every stage understands. Defaults are None: the stage's preset fills them."""
    parser.add_argument("--stage", help="what to train (see the stage list above)")
    parser.add_argument("--preset", help="a named set of defaults of the stage (e.g. paper, tiny)")
    parser.add_argument("--encoder", help="image encoder size: vit_t, vit_s, vit_b or tiny")
    parser.add_argument("--data", help="training data folder")
    parser.add_argument("--out", help="run folder: checkpoint.pt, log.jsonl and the exported weights")
    parser.add_argument("--epochs", type=int, help="number of epochs")
    parser.add_argument("--batch-size", type=int, help="images per micro-batch on each process")
    parser.add_argument("--accum", type=int, help="micro-batches accumulated per optimiser step")
    parser.add_argument("--lr", type=float, help="absolute peak learning rate (overrides --blr)")
    parser.add_argument("--blr", type=float, help="base learning rate per 256 images: lr = blr x batch / 256")
    parser.add_argument("--warmup-epochs", type=float, help="linear warmup length in epochs")
    parser.add_argument("--weight-decay", type=float, help="AdamW weight decay")
    parser.add_argument("--input-size", type=int, help="training image side in pixels (multiple of 16)")
    parser.add_argument("--workers", type=int, help="data-loading processes per training process")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        help="continue from OUT/checkpoint.pt (no value; without one a new run starts) or from the given "
        "checkpoint file",
    )
    parser.add_argument("--device", help="auto (CUDA when available), cpu or cuda")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"], help="autocast precision")
    parser.add_argument("--seed", type=int, help="seed of initialisation, data order and augmentation")
    parser.add_argument("--max-steps", type=int, help="stop (with a checkpoint) after this many steps in all")
    parser.add_argument("--checkpoint-every", type=int, help="also checkpoint every N optimiser steps")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(subparsers: argparse._SubParsersAction) -> None:
    _load_stage_modules()
    names = ", ".join(sorted(STAGES)) or "none installed"
    default = next((s.name for s in STAGES.values() if s.default), None)
    p = subparsers.add_parser(
        "train",
        help="train encoders: SAMI pretraining, teacher caches, finetuning",
        description=f"Train with the stage given by --stage ({names}; default: {default or 'none'}). "
        "Launch with torchrun (python -m torch.distributed.run --nproc_per_node=N) for several GPUs "
        "or CPU processes.",
    )
    add_common_arguments(p)
    p.set_defaults(stage=None)
    for stage in STAGES.values():
        if stage.add_arguments is not None:
            stage.add_arguments(p.add_argument_group(f"--stage {stage.name}"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("torch") is None:
        raise TrainUsageError("training needs torch: pip install 'efficientsam-studio[train]'")
    name = args.stage or next((s.name for s in STAGES.values() if s.default), None)
    if name is None:
        raise TrainUsageError(f"choose a stage with --stage ({', '.join(sorted(STAGES))})")
    if name not in STAGES:
        raise TrainUsageError(f"unknown --stage {name!r}; choose one of: {', '.join(sorted(STAGES))}")
    check_common_options(args)
    with warnings_as_messages():
        return int(STAGES[name].run(args) or 0)


@contextlib.contextmanager
def warnings_as_messages(prefix: str = "efsam-studio train: warning: "):
    """Print warnings as one line each, ``prefix`` + the message, without the source line that Python's
    default format adds (for the trainer's warnings that line is library code, not the user's)."""
    original = warnings.formatwarning
    warnings.formatwarning = lambda message, *args, **kwargs: f"{prefix}{message}\n"
    try:
        yield
    finally:
        warnings.formatwarning = original
