"""``efsam-studio train --stage sami`` and ``--stage sami-cache``: presets and argument handling.

Presets (any option given on the command line wins):

- ``paper``: the EfficientSAM paper's SAMI recipe: vit_t student, 224 px, mask 75 %, decoder 8 x 512,
  400 epochs, global batch 4096 (per-process batch 64, accumulation chosen to reach 4096), blr 1.5e-4
  (lr 2.4e-3), 40 warmup epochs, cosine, AdamW (0.9, 0.95), weight decay 0.05.
- ``tiny``: a CPU smoke run: the ``tiny`` student at 64 px, a 2 x 64 decoder, 2 epochs of batch 8, lr 1e-3.

Heavy imports (torch) happen inside the run functions, so ``efsam-studio --help`` stays fast.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from efficientsam_studio.cli.train import Range, TrainUsageError, check_ranges, loop_settings, register_stage
from efficientsam_studio.cli.train import preset_value as _pick

PRESETS: dict[str, dict] = {
    "paper": {
        "encoder": "vit_t",
        "input_size": 224,
        "epochs": 400,
        "global_batch": 4096,
        "batch_size": 64,
        "blr": 1.5e-4,
        "lr": None,
        "warmup_epochs": 40.0,
        "weight_decay": 0.05,
        "mask_ratio": 0.75,
        "decoder": (8, 512, 16),
        "workers": 8,
        "checkpoint_every": 0,
    },
    "tiny": {
        "encoder": "tiny",
        "input_size": 64,
        "epochs": 2,
        "global_batch": None,
        "batch_size": 8,
        "blr": 1.5e-4,
        "lr": 1e-3,
        "warmup_epochs": 0.0,
        "weight_decay": 0.05,
        "mask_ratio": 0.75,
        "decoder": (2, 64, 4),
        "workers": 0,
        "checkpoint_every": 0,
    },
}


#: ranges of the SAMI options (the decoder width must also be divisible by 4 and by the heads)
RANGES: dict[str, Range] = {
    "mask_ratio": Range(0, 1, high_open=True),
    "decoder_depth": Range(1),
    "decoder_width": Range(4),
    "decoder_heads": Range(1),
    "views": Range(1),
    "shard_size": Range(1),
}


def _add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--teacher", help="SAM checkpoint (sam_vit_h_4b8939.pth) or a teacher cache folder")
    group.add_argument("--mask-ratio", type=float, help="fraction of tokens masked (default 0.75)")
    group.add_argument(
        "--target",
        choices=["neck", "backbone"],
        help="teacher output reconstructed (neck; with a teacher cache: the output it holds)",
    )
    group.add_argument("--decoder-depth", type=int, help="SAMI decoder blocks (paper 8)")
    group.add_argument("--decoder-width", type=int, help="SAMI decoder width (paper 512)")
    group.add_argument("--decoder-heads", type=int, help="SAMI decoder attention heads (16)")
    group.add_argument("--views", type=int, help="sami-cache: augmented views cached per image (1)")
    group.add_argument("--shard-size", type=int, help="sami-cache: views per shard file (256)")


def _preset(args: argparse.Namespace) -> dict:
    name = args.preset or "paper"
    if name not in PRESETS:
        raise TrainUsageError(f"unknown --preset {name!r} for SAMI; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]


def _require(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n, None) in (None, "")]
    if missing:
        raise TrainUsageError(f"--stage {args.stage} needs {', '.join(missing)}")


def run_sami(args: argparse.Namespace) -> int:
    """Train a SAMI student; prints where the encoder weights were written."""
    from trainer.loop import TrainConfig, fit
    from trainer.sami import DecoderConfig, student_names
    from trainer.sami_task import SamiConfig, SamiTask

    _require(args, "teacher", "out")
    preset = _preset(args)
    check_ranges(args, RANGES)
    encoder = _pick(args, "encoder", preset)
    if encoder not in student_names():
        raise TrainUsageError(f"--encoder {encoder!r}: SAMI trains {', '.join(student_names())}")
    depth, width, heads = preset["decoder"]
    depth = args.decoder_depth or depth
    width = args.decoder_width or width
    heads = args.decoder_heads or heads
    step = math.lcm(4, heads)
    if width % step:
        raise TrainUsageError(
            f"--decoder-width must be a multiple of {step} (divisible by the {heads} decoder heads, and by 4 "
            f"for the sine-cosine position embedding); got {width}"
        )
    sami = SamiConfig(
        encoder=encoder,
        teacher=Path(args.teacher),
        data=Path(args.data) if args.data else None,
        input_size=_pick(args, "input_size", preset),
        mask_ratio=_pick(args, "mask_ratio", preset),
        target=args.target,
        decoder=DecoderConfig(depth=depth, width=width, heads=heads),
        seed=args.seed or 0,
    )
    config = TrainConfig(
        **loop_settings(args, preset),
        blr=_pick(args, "blr", preset),
        decay="cosine",
        betas=(0.9, 0.95),
        checkpoint_every=_pick(args, "checkpoint_every", preset),
    )
    result = fit(SamiTask(sami), config)
    if result.export_path is not None:
        state = "stopped at" if result.stopped_early else "finished after"
        print(
            f"SAMI {state} step {result.step} (epoch {result.epoch}); encoder weights: {result.export_path}"
        )
        if result.corrupt_images:
            print(f"skipped {result.corrupt_images} unreadable images (each once an epoch; see the warnings)")
    return 0


def run_cache(args: argparse.Namespace) -> int:
    """Build (or finish) a teacher feature cache."""
    from trainer.cache import build_teacher_cache
    from trainer.data import CropConfig

    _require(args, "data", "teacher", "out")
    preset = _preset(args)
    check_ranges(args, RANGES)
    size = _pick(args, "input_size", preset)
    index = build_teacher_cache(
        args.data,
        args.teacher,
        args.out,
        input_size=size,
        views=args.views or 1,
        crop=CropConfig(size=size),
        target=args.target or "neck",
        seed=args.seed or 0,
        shard_size=args.shard_size or 256,
        batch_size=args.batch_size or 32,
        device=args.device or "auto",
        workers=args.workers if args.workers is not None else 0,
        progress=not args.no_progress,
    )
    print(f"teacher cache ready: {index}; train with --teacher {Path(args.out)}")
    return 0


register_stage(
    "sami",
    run_sami,
    help="SAMI masked pretraining of an encoder from a SAM teacher",
    add_arguments=_add_arguments,
)
register_stage("sami-cache", run_cache, help="precompute SAM teacher features for SAMI")
