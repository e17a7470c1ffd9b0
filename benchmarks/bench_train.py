"""Training-throughput benchmark of SAMI: images per second of the ``tiny`` preset, online vs cached teacher.

Writes a random SAM-layout teacher checkpoint and synthetic images into a temporary folder, then trains
the ``tiny`` preset (``tiny`` student, 64 px, a 2 x 64 decoder, batch 8) twice in this process:

- ``online`` (the baseline): the SAM teacher runs on every batch, as ``--teacher sam_vit_*.pth`` does;
- ``cached``: teacher features read from a ``sami-cache`` folder built beforehand (build time reported).

``images_per_s`` is the median over optimiser steps of ``effective_batch / step time`` (data loading,
teacher, forward, backward and AdamW included), skipping the first epoch's steps as warm-up. The teacher
is a reduced SAM encoder (``--teacher-shape small``: 32 wide, 4 blocks, the published key pattern) or
SAM vit_b's real shape (``--teacher-shape vit_b``), random weights either way.

Usage::

    python benchmarks/bench_train.py                       # CPU, tiny preset, small teacher
    python benchmarks/bench_train.py --teacher-shape vit_b --images 64 --epochs 3

Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from trainer.cache import build_teacher_cache
from trainer.data import CropConfig
from trainer.loop import TrainConfig, fit
from trainer.runlog import read_log
from trainer.sami import DecoderConfig
from trainer.sami_cli import PRESETS
from trainer.sami_task import SamiConfig, SamiTask
from trainer.teacher import SAM_ENCODER_CONFIGS, SamEncoderConfig, SamImageEncoder, save_sam_checkpoint

TEACHERS = {
    "small": SamEncoderConfig(embed_dim=32, depth=4, num_heads=2, global_blocks=(1, 3)),
    "vit_b": SAM_ENCODER_CONFIGS["vit_b"],
}


def _write_images(folder: Path, count: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(count):
        small = rng.integers(0, 256, size=(8, 10, 3), dtype=np.uint8)
        image = cv2.resize(small, (320, 240), interpolation=cv2.INTER_CUBIC)
        sub = folder / f"class_{i % 4}"
        sub.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(sub / f"img_{i}.jpg"), image)


def _train(teacher: Path, data: Path, out: Path, epochs: int, preset: dict) -> dict:
    depth, width, heads = preset["decoder"]
    task = SamiTask(
        SamiConfig(encoder=preset["encoder"], teacher=teacher, data=data, input_size=preset["input_size"],
                   decoder=DecoderConfig(depth, width, heads))
    )  # fmt: skip
    config = TrainConfig(out_dir=out, epochs=epochs, batch_size=preset["batch_size"], lr=preset["lr"],
                         progress=False, tensorboard=False)  # fmt: skip
    start = time.perf_counter()
    result = fit(task, config)
    wall = time.perf_counter() - start
    log = read_log(out / "log.jsonl")
    steps_per_epoch = len(log) // epochs
    rates = [r["images_per_s"] for r in log[steps_per_epoch:]]
    return {
        "images_per_s": round(statistics.median(rates), 1),
        "steps": result.step,
        "wall_s": round(wall, 2),
        "first_loss": round(log[0]["loss"], 4),
        "last_loss": round(log[-1]["loss"], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--teacher-shape", choices=sorted(TEACHERS), default="small")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = PRESETS["tiny"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        torch.manual_seed(0)
        teacher = save_sam_checkpoint(SamImageEncoder(TEACHERS[args.teacher_shape]), root / "teacher.pth")
        _write_images(root / "data", args.images)
        online = _train(teacher, root / "data", root / "online", args.epochs, preset)
        start = time.perf_counter()
        build_teacher_cache(root / "data", teacher, root / "cache", input_size=preset["input_size"],
                            crop=CropConfig(size=preset["input_size"]), progress=False)  # fmt: skip
        cache_build = time.perf_counter() - start
        cached = _train(root / "cache", root / "data", root / "cached", args.epochs, preset)
    report = {
        "benchmark": "sami_train_throughput",
        "device": "cpu" if not torch.cuda.is_available() else torch.cuda.get_device_name(),
        "cpu_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "preset": "tiny",
        "student": preset["encoder"],
        "input_size": preset["input_size"],
        "batch_size": preset["batch_size"],
        "teacher_shape": args.teacher_shape,
        "images": args.images,
        "epochs": args.epochs,
        "baseline": "online",
        "online": online,
        "cached": {**cached, "cache_build_s": round(cache_build, 2)},
        "cached_speedup": round(cached["images_per_s"] / online["images_per_s"], 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
