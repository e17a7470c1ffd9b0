"""``efsam-studio train --stage finetune`` (the default stage) and ``--stage make-synthetic``.

Presets (any option given on the command line wins):

- ``paper``: the EfficientSAM paper's finetuning: 1024 input, 5 epochs, AdamW (0.9, 0.999), lr 4e-4
  with linear decay to zero, weight decay 0.1, global batch 128 (2 images per process, accumulation
  chosen to reach 128); for what the paper leaves to SAM's recipe: up to 32 masks per image, box or
  point prompts 50/50 plus 2 corrective clicks, and the ``ambiguous-min`` output loss (trainer/README.md,
  "Finetuning: choices where the paper is silent or the preset departs from SAM's recipe", says where
  and why these depart from SAM's recipe).
- ``tiny``: a CPU run of the ``tiny`` model from scratch: batch 1, up to 4 masks per image, lr 3e-4
  (1e-3 is too high at batch 1 from scratch; 5 % warmup, linear decay), gradient clipping at 1, box
  prompts 3/4 of the time, 3 epochs, and the dice loss alone (``--focal-weight 0``): from scratch, the
  focal term at weight 20 drives the decoder to an all-background output for the first hundreds of
  steps, which a CPU run cannot afford.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from efficientsam_studio.cli.train import Range, TrainUsageError, check_ranges, loop_settings, register_stage
from efficientsam_studio.cli.train import preset_value as _pick

PRESETS: dict[str, dict] = {
    "paper": {
        "encoder": "vit_t",
        "input_size": 1024,
        "epochs": 5,
        "global_batch": 128,
        "batch_size": 2,
        "lr": 4e-4,
        "warmup_epochs": 0.0,
        "weight_decay": 0.1,
        "max_masks": 32,
        "box_probability": 0.5,
        "max_points": 1,
        "iterative_clicks": 2,
        "workers": 8,
        "clip_grad": None,
        "output_loss": "ambiguous-min",
        "focal_weight": 20.0,
    },
    "tiny": {
        "encoder": "tiny",
        "input_size": 1024,
        "epochs": 3,
        "global_batch": None,
        "batch_size": 1,
        "lr": 3e-4,
        "warmup_epochs": 0.05,
        "weight_decay": 0.1,
        "max_masks": 4,
        "box_probability": 0.75,
        "max_points": 1,
        "iterative_clicks": 0,
        "workers": 0,
        "clip_grad": 1.0,
        "output_loss": "ambiguous-min",
        "focal_weight": 0.0,
    },
}

#: ranges of the finetuning options; a point prompt and its corrective clicks together hold at most
#: MAX_PROMPT_POINTS (6) points
RANGES: dict[str, Range] = {
    "max_masks": Range(1),
    "box_probability": Range(0, 1),
    "max_points": Range(1, 6),
    "iterative_clicks": Range(0, 5),
    "min_stability": Range(0, 1),
    "clip_grad": Range(0),
    "focal_weight": Range(0),
    "num_images": Range(1),
}

#: ``--output-loss`` -> (min_over_outputs, min_only_for_ambiguous) of the LossConfig
OUTPUT_LOSSES = {"min": (True, False), "ambiguous-min": (True, True), "mean": (False, False)}

DATA_HELP = """\
finetuning needs --data, one of:

  SA-1B (https://ai.meta.com/datasets/segment-anything/, research licence; download it yourself):
    --data sa_000000.tar            one shard, read in place (no need to extract)
    --data SHARDS_DIR               a folder of sa_NNNNNN.tar shards
    --data EXTRACTED_DIR            extracted pairs sa_<id>.jpg + sa_<id>.json, in any sub-folders
  each JSON: {"image": {...}, "annotations": [{"segmentation": COCO RLE, "area", "bbox",
  "predicted_iou", "stability_score", "point_coords", "crop_box"}, ...]}

  COCO instances (e.g. instances_train2017.json, or a COCO export of this studio):
    --data ANNOTATIONS.json --images IMAGES_DIR [--data-format coco]
  segmentations as RLE or polygons; crowd regions are not trained on; categories are ignored.

  synthetic shapes in the SA-1B layout, for a first run on the CPU:
    efsam-studio train --stage make-synthetic --out shapes --num-images 200
    efsam-studio train --preset tiny --data shapes --out runs/tiny
"""


def _add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--data-format",
        choices=["auto", "sa1b", "coco"],
        help="finetune: layout of --data (auto: .json is COCO, else SA-1B)",
    )
    group.add_argument("--images", help="finetune: image folder of a COCO --data file")
    group.add_argument("--init", help="finetune: scratch, sami:PATH (SAMI encoder.pt) or efficientsam:PATH")
    group.add_argument("--max-masks", type=int, help="finetune: masks sampled per image")
    group.add_argument("--box-probability", type=float, help="finetune: share of box prompts (rest: points)")
    group.add_argument("--max-points", type=int, help="finetune: up to N points in a point prompt")
    group.add_argument("--iterative-clicks", type=int, help="finetune: corrective clicks per prompt")
    group.add_argument("--min-stability", type=float, help="finetune: skip SA-1B masks below this score")
    group.add_argument("--clip-grad", type=float, help="finetune: clip the gradient norm (0: off)")
    group.add_argument("--focal-weight", type=float, help="finetune: weight of the focal term (dice: 1)")
    group.add_argument(
        "--output-loss",
        choices=list(OUTPUT_LOSSES),
        help="finetune: which of the 3 outputs learn each mask: min (the lowest-loss one), "
        "ambiguous-min (min for single-point prompts, all 3 otherwise; default), mean (all 3)",
    )
    group.add_argument("--num-images", type=int, help="make-synthetic: images to write (default 200)")
    group.add_argument("--tar", action="store_true", help="make-synthetic: one sa_000000.tar shard")
    group.add_argument("--coco", action="store_true", help="make-synthetic: COCO file + images instead")
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="make-synthetic: write into a non-empty --out, replacing the synthetic data there; training "
        "stages: start a new run in an --out that holds one, first moving the earlier run's checkpoint, log, "
        "tensorboard/ and this stage's export into a previous-* subfolder (other files stay)",
    )


def _preset(args: argparse.Namespace) -> dict:
    name = args.preset or "paper"
    if name not in PRESETS:
        raise TrainUsageError(
            f"unknown --preset {name!r} for finetuning; choose one of: {', '.join(PRESETS)}"
        )
    return PRESETS[name]


def build_configs(args: argparse.Namespace):
    """``(FinetuneConfig, TrainConfig)`` from parsed ``train`` arguments and the preset."""
    from efficientsam_studio.model import MODEL_CONFIGS
    from trainer.finetune.datasets import DataConfig, MaskFilter
    from trainer.finetune.losses import LossConfig
    from trainer.finetune.prompts import MAX_PROMPT_POINTS, PromptConfig
    from trainer.finetune.task import FinetuneConfig
    from trainer.loop import TrainConfig

    if not args.data:
        raise TrainUsageError(DATA_HELP.rstrip())
    if not args.out:
        raise TrainUsageError("finetuning needs --out RUN_DIR (checkpoint.pt, log.jsonl, efficientsam.pt)")
    preset = _preset(args)
    check_ranges(args, RANGES)
    encoder = _pick(args, "encoder", preset)
    if encoder not in MODEL_CONFIGS:
        raise TrainUsageError(f"--encoder {encoder!r}: finetuning trains {', '.join(MODEL_CONFIGS)}")
    points, clicks = _pick(args, "max_points", preset), _pick(args, "iterative_clicks", preset)
    if points + clicks > MAX_PROMPT_POINTS:
        raise TrainUsageError(
            f"--max-points {points} plus --iterative-clicks {clicks} must be at most {MAX_PROMPT_POINTS}, "
            "the points the model reads per prompt"
        )
    prompts = PromptConfig(
        box_probability=_pick(args, "box_probability", preset),
        max_points=_pick(args, "max_points", preset),
        iterative_clicks=_pick(args, "iterative_clicks", preset),
    )
    data_config = DataConfig(
        max_masks=_pick(args, "max_masks", preset),
        input_size=_pick(args, "input_size", preset),
        filter=replace(MaskFilter(), min_stability=args.min_stability or 0.0),
        prompts=prompts,
    )
    use_min, only_ambiguous = OUTPUT_LOSSES[_pick(args, "output_loss", preset)]
    if data_config.input_size != 1024:
        raise TrainUsageError("--input-size must be 1024: the model's prompt and decoder path assume it")
    finetune = FinetuneConfig(
        encoder=encoder,
        data=Path(args.data),
        data_format=args.data_format or "auto",
        images=Path(args.images) if args.images else None,
        init=args.init or "scratch",
        data_config=data_config,
        loss=LossConfig(
            focal_weight=_pick(args, "focal_weight", preset),
            min_over_outputs=use_min,
            min_only_for_ambiguous=only_ambiguous,
        ),
        seed=args.seed or 0,
    )
    train = TrainConfig(
        **loop_settings(args, preset),
        blr=args.blr if args.blr is not None else 1e-4,
        decay="linear",
        betas=(0.9, 0.999),
        clip_grad=_pick(args, "clip_grad", preset) or None,
        checkpoint_every=args.checkpoint_every or 0,
    )
    return finetune, train


def run_finetune(args: argparse.Namespace) -> int:
    """Finetune; prints where the exported weights are and what was skipped."""
    from trainer.finetune.task import FinetuneTask
    from trainer.loop import fit

    finetune, train = build_configs(args)
    task = FinetuneTask(finetune)
    result = fit(task, train)
    if result.export_path is not None:
        state = "stopped at" if result.stopped_early else "finished after"
        print(f"finetuning {state} step {result.step} (epoch {result.epoch}); weights: {result.export_path}")
        print(
            f"use them with: efsam-studio segment IMAGE --model {finetune.encoder} "
            f"--checkpoint {result.export_path} --box X0,Y0,X1,Y1"
        )
        if result.corrupt_images:
            print(f"skipped {result.corrupt_images} unreadable images (each once an epoch; see the warnings)")
        indexed = len(getattr(task.source, "invalid", ()))
        if indexed:
            print(f"skipped {indexed} invalid annotations of {finetune.data} (see the warnings)")
        sampled = result.totals.get("invalid_annotations", 0)
        if sampled:
            print(
                f"skipped {sampled} invalid annotations met while sampling "
                "(each once an epoch; see the warnings)"
            )
    return 0


#: what ``--stage make-synthetic`` writes into --out, by layout (``--overwrite`` removes these first)
SYNTHETIC_FILES = {
    "folder": ("sa_*.jpg", "sa_*.json"),
    "tar": ("sa_000000.tar",),
    "coco": ("images/sa_*.jpg",),
}


def run_make_synthetic(args: argparse.Namespace) -> int:
    """Write synthetic shapes in the SA-1B layout (folder or tar) or as COCO.

    A non-empty --out is refused unless ``--overwrite``, which first removes the files an earlier
    make-synthetic wrote there in the same layout, so the folder holds exactly one consistent set.
    """
    from trainer.finetune.synthetic import write_coco, write_sa1b_folder, write_sa1b_tar

    if not args.out:
        raise TrainUsageError("--stage make-synthetic needs --out DIR")
    check_ranges(args, RANGES)
    out = Path(args.out)
    layout = "coco" if args.coco else "tar" if args.tar else "folder"
    if out.is_dir() and any(out.iterdir()):
        if not args.overwrite:
            raise TrainUsageError(
                f"--out {out} is not empty; give a new or empty folder, or --overwrite to replace the "
                "synthetic data in it"
            )
        for pattern in SYNTHETIC_FILES[layout]:
            for path in out.glob(pattern):
                if path.is_file():
                    path.unlink()
    count = args.num_images or 200
    seed = args.seed or 0
    if layout == "coco":
        path = write_coco(out / "annotations.json", out / "images", count, seed)
        print(f"wrote {count} images and {path}; train with --data {path} --images {out / 'images'}")
    elif layout == "tar":
        path = write_sa1b_tar(out / "sa_000000.tar", count, seed)
        print(f"wrote {count} images into {path}; train with --data {path}")
    else:
        write_sa1b_folder(out, count, seed)
        print(f"wrote {count} sa_<id>.jpg + sa_<id>.json pairs into {out}; train with --data {out}")
    return 0


register_stage(
    "finetune",
    run_finetune,
    help="finetune EfficientSAM (encoder and decoder) on SA-1B or COCO masks",
    add_arguments=_add_arguments,
    default=True,
)
register_stage("make-synthetic", run_make_synthetic, help="write synthetic shapes in the SA-1B layout")
