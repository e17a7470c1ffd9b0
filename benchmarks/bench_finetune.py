"""Finetuning benchmark: training throughput of the ``tiny`` preset and a from-scratch learning run.

Writes synthetic SA-1B-format shapes into a temporary folder, then, in this process:

- ``throughput``: trains the ``tiny`` preset (``tiny`` model, 1024 input, batch 1, up to 4 masks per
  image) for ``--steps`` optimiser steps twice: without corrective clicks (the baseline) and with
  ``--clicks`` iterative clicks per prompt (one more decoder pass each). ``images_per_s`` /
  ``masks_per_s`` are medians over steps after the first two (data loading, forward, backward, AdamW).
- ``learning`` (``--learning``): the run of the learning test: the untrained model and the model
  finetuned from scratch with ``efsam-studio train --preset tiny`` on ``--train-images`` images for
  ``--epochs`` epochs, both scored by ``efsam-studio eval``'s code (1-box mIoU, held-out images),
  next to the trivial "filled tight box" answer.
- ``eval``: images per second of ``trainer.evaluate`` (box prompts) with the finetuned or a random model.

Usage::

    python benchmarks/bench_finetune.py                      # throughput only (a minute on 2 cores)
    python benchmarks/bench_finetune.py --learning           # + the learning run (minutes)
    python benchmarks/bench_finetune.py --preset paper --encoder vit_t --device cuda --steps 20

Prints one JSON document.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from efficientsam_studio.cli.main import main as cli_main
from efficientsam_studio.engine import load_predictor
from efficientsam_studio.model import build_model
from trainer.checkpoint import seed_everything
from trainer.evaluate import EvalConfig, box_fill_miou, evaluate
from trainer.finetune.export import export_weights
from trainer.finetune.synthetic import SyntheticConfig, write_coco, write_sa1b_folder
from trainer.runlog import read_log

SHAPES = SyntheticConfig()


def _train(data: Path, out: Path, args: argparse.Namespace, *extra: str) -> float:
    command = ["train", "--preset", args.preset, "--encoder", args.encoder, "--data", str(data),
               "--out", str(out), "--no-progress", "--device", args.device, *extra]  # fmt: skip
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # keep stdout for the JSON document
        assert cli_main(command) == 0
    return time.perf_counter() - started


def _rates(run: Path) -> dict[str, float]:
    """Median images/s and masks/s over the steps of a run (the first two are warm-up)."""
    from trainer.checkpoint import load_checkpoint

    batch = load_checkpoint(run / "checkpoint.pt")["effective_batch"]
    records = read_log(run / "log.jsonl")
    records = records[2:] if len(records) > 4 else records
    return {
        "images_per_s": round(statistics.median(r["images_per_s"] for r in records), 3),
        "masks_per_s": round(statistics.median(r["masks"] * r["images_per_s"] / batch for r in records), 3),
        "masks_per_step": round(statistics.mean(r["masks"] for r in records), 2),
        "steps_timed": len(records),
    }


def throughput(root: Path, args: argparse.Namespace) -> dict:
    write_sa1b_folder(root / "shapes", args.steps, seed=1, config=SHAPES)
    base = _train(root / "shapes", root / "base", args, "--epochs", "1", "--max-steps", str(args.steps),
                  "--iterative-clicks", "0")  # fmt: skip
    clicks = _train(root / "shapes", root / "clicks", args, "--epochs", "1", "--max-steps", str(args.steps),
                    "--iterative-clicks", str(args.clicks))  # fmt: skip
    return {
        "baseline_no_clicks": {**_rates(root / "base"), "wall_s": round(base, 1)},
        f"with_{args.clicks}_clicks": {**_rates(root / "clicks"), "wall_s": round(clicks, 1)},
    }


def _box_miou(
    checkpoint: Path, annotations: Path, images: Path, args: argparse.Namespace
) -> tuple[float, float]:
    predictor = load_predictor(model=args.encoder, checkpoint=checkpoint, device=args.device, backend="torch")
    report = evaluate(predictor, annotations, images, EvalConfig(prompts=("box",)), progress=False)
    return report["miou"]["box"]["miou"], report["images"] / report["seconds"]


def learning(root: Path, args: argparse.Namespace) -> dict:
    write_sa1b_folder(root / "train", args.train_images, seed=1, config=SHAPES)
    annotations = write_coco(
        root / "heldout.json", root / "heldout", args.heldout_images, seed=2, config=SHAPES
    )
    seed_everything(0)
    untrained = export_weights(build_model(args.encoder), root / "untrained.pt")
    seconds = _train(root / "train", root / "run", args, "--epochs", str(args.epochs), "--seed", "0",
                     *args.train_extra)  # fmt: skip
    trained = root / "run" / "efficientsam.pt"
    before, _ = _box_miou(untrained, annotations, root / "heldout", args)
    after, eval_rate = _box_miou(trained, annotations, root / "heldout", args)
    steps = read_log(root / "run" / "log.jsonl")[-1]["step"]
    return {"box_miou_untrained": round(before, 4), "box_miou_finetuned": round(after, 4),
            "box_miou_filled_tight_box": round(box_fill_miou(annotations), 4),
            "train_wall_s": round(seconds, 1),
            "steps": steps, "train_images": args.train_images, "epochs": args.epochs,
            "heldout_images": args.heldout_images, "eval_images_per_s": round(eval_rate, 3)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--encoder", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=12, help="optimiser steps per throughput run")
    parser.add_argument("--clicks", type=int, default=2, help="iterative clicks of the second run")
    parser.add_argument("--learning", action="store_true", help="also run the from-scratch learning run")
    parser.add_argument("--train-images", type=int, default=300)
    parser.add_argument("--heldout-images", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--train-extra",
        nargs=argparse.REMAINDER,
        default=[],
        help="more `efsam-studio train` options for the learning run (last on the line)",
    )
    args = parser.parse_args()
    result = {"benchmark": "finetune", "torch": torch.__version__, "threads": torch.get_num_threads(),
              "machine": platform.machine(), "preset": args.preset, "encoder": args.encoder,
              "device": args.device}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        result["throughput"] = throughput(root / "throughput", args)
        if args.learning:
            result["learning"] = learning(root / "learning", args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
