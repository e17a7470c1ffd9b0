"""``efsam-studio eval``: mIoU and zero-shot instance AP of a checkpoint with the paper's protocol.

Example::

    efsam-studio eval --checkpoint run/efficientsam.pt --coco instances_val2017.json \\
        --images val2017 --prompt box,point --clicks 1,3 --json results.json

``--prompt`` box (tight box of each ground-truth mask), point (a random pixel inside it, seeded) or
center (the pixel farthest from its boundary), comma-separated for several; ``--clicks`` the click counts
reported for point/center (later clicks come from the error region). ``--detections`` (COCO results
with boxes) adds COCO mask AP of the masks the boxes prompt. Only the most confident mask is scored.
An invalid ground-truth annotation, or an image that cannot be read, is skipped: a warning names the
file (and the annotation id), and the summary counts them. Warnings are printed as one line each.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from efficientsam_studio.errors import StudioError

MODEL_CHOICES = ("vit_t", "vit_s", "tiny")


class EvalUsageError(StudioError):
    """``efsam-studio eval`` options that cannot be used."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="measure mIoU (box / click prompts) and instance AP of a checkpoint on COCO-style data",
        description="Evaluate a checkpoint with the EfficientSAM paper's protocol on COCO instance "
        "annotations: mIoU for box and click prompts (only the most confident mask is scored) and, "
        "with --detections, zero-shot instance segmentation AP via pycocotools' COCOeval.",
    )
    p.add_argument(
        "--checkpoint", required=True, metavar="PATH", help="EfficientSAM weights ({'model': ...})"
    )
    p.add_argument("--model", choices=MODEL_CHOICES, help="architecture (default: read from the checkpoint)")
    p.add_argument("--coco", required=True, metavar="ANNOTATIONS.json", help="COCO instances file")
    p.add_argument(
        "--images", required=True, metavar="DIR", help="folder the file_name fields are relative to"
    )
    p.add_argument("--prompt", default="box", help="box, point or center; comma-separated for several (box)")
    p.add_argument("--clicks", default="1", help="click counts reported for point/center, e.g. 1,3 (1)")
    p.add_argument("--detections", metavar="DETECTIONS.json", help="COCO results with boxes -> mask AP")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N images")
    p.add_argument("--seed", type=int, default=0, help="seed of the random clicks (0)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: auto")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (it is drawn only when stderr is a terminal)",
    )
    p.set_defaults(func=run)


def _model_name(args: argparse.Namespace) -> str:
    if args.model:
        return args.model
    from efficientsam_studio.engine.checkpoints import inspect_checkpoint

    architecture = inspect_checkpoint(args.checkpoint).architecture
    if architecture not in MODEL_CHOICES:
        raise EvalUsageError(
            f"{args.checkpoint}: not an EfficientSAM checkpoint ({architecture}); "
            f"give --model {'|'.join(MODEL_CHOICES)} if it is one"
        )
    return architecture


def _print_report(report: dict) -> None:
    print(f"{report['images']} images, {report['masks']} masks ({report['annotations']})")
    if report.get("unreadable_images"):
        print(f"  skipped {report['unreadable_images']} unreadable images (see the warnings)")
    if report.get("invalid_annotations"):
        print(f"  skipped {report['invalid_annotations']} invalid annotations (see the warnings)")
    for key, value in report["miou"].items():
        print(f"  mIoU {key:<10} {value['miou']:.4f}  ({value['count']} masks)")
    ap = report.get("instance_segmentation")
    if ap:
        print(
            f"  mask AP {ap['AP']:.4f}  AP50 {ap['AP50']:.4f}  AP75 {ap['AP75']:.4f}  "
            f"APs {ap['APs']:.4f}  APm {ap['APm']:.4f}  APl {ap['APl']:.4f}  ({ap['detections']} detections)"
        )
    print(f"  {report['seconds']:.1f} s")


def run(args: argparse.Namespace) -> int:
    from efficientsam_studio.cli.train import warnings_as_messages

    with warnings_as_messages("efsam-studio eval: warning: "):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from efficientsam_studio.engine import load_predictor
    from trainer.evaluate import PROMPT_MODES, EvalConfig, evaluate, parse_clicks, parse_prompts

    prompts = parse_prompts(args.prompt)
    unknown = [mode for mode in prompts if mode not in PROMPT_MODES]
    if unknown or not prompts:
        problem = f"unknown mode {', '.join(unknown)}" if unknown else "no mode given"
        raise EvalUsageError(
            f"--prompt {args.prompt}: {problem}; choose from {', '.join(PROMPT_MODES)}, comma-separated for "
            "several"
        )
    if args.limit is not None and args.limit < 1:
        raise EvalUsageError(f"--limit must be at least 1, got {args.limit}")
    if args.seed < 0:
        raise EvalUsageError(f"--seed must be at least 0, got {args.seed}")
    config = EvalConfig(prompts=prompts, clicks=parse_clicks(args.clicks), seed=args.seed, limit=args.limit)
    model = _model_name(args)
    predictor = load_predictor(model=model, checkpoint=args.checkpoint, device=args.device, backend="torch")
    # the bar is drawn only on a terminal, as export's: a log gets the report and no redraws
    progress = not args.no_progress and sys.stderr.isatty()
    report = evaluate(predictor, args.coco, args.images, config, args.detections, progress=progress)
    report = {"checkpoint": str(args.checkpoint), "model": model, **report}
    _print_report(report)
    if args.json:
        out = Path(args.json)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=2))
        except OSError as exc:
            raise EvalUsageError(f"--json {out}: cannot write ({exc.strerror or exc})") from None
        print(f"results written to {out}")
    return 0
