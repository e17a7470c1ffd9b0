"""Batch labelling speed on 1080p images: ``--boxes`` and ``--everything`` images per minute, against the
encoder time of the same images measured in the same run (the named baseline).

Builds a vit_t (or other) checkpoint with random weights, draws synthetic 1920x1080 images with coloured
shapes, and runs the batch pipeline (:func:`efficientsam_studio.batch.run_batch`) in a fresh project, so
the figures include image loading, encoding, decoding, mask upsampling, RLE and project saves.

Random weights: the decoder's predicted IoU and stability scores are meaningless, so everything mode keeps
a different number of masks than real weights would; its decode cost per grid does not depend on that.

    python benchmarks/bench_batch.py --images 2 --boxes-per-image 10 --points-per-side 32 \\
        --relaxed-points-per-side 16
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


def make_images(folder: Path, count: int, size: tuple[int, int], seed: int) -> list[list[tuple[int, ...]]]:
    """Write ``count`` PNGs with random filled rectangles and discs; returns each image's boxes."""
    rng = np.random.default_rng(seed)
    height, width = size
    all_boxes = []
    for index in range(count):
        image = np.full((height, width, 3), 40, dtype=np.uint8)
        image[:] = rng.integers(20, 80, size=3)
        boxes = []
        for _ in range(12):
            w = int(rng.integers(width // 24, width // 5))
            h = int(rng.integers(height // 14, height // 3))
            x0, y0 = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
            colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
            if rng.random() < 0.5:
                cv2.rectangle(image, (x0, y0), (x0 + w - 1, y0 + h - 1), colour, thickness=-1)
            else:
                cv2.ellipse(image, (x0 + w // 2, y0 + h // 2), (w // 2, h // 2), 0, 0, 360, colour, -1)
            boxes.append((x0, y0, x0 + w, y0 + h))
        cv2.imwrite(str(folder / f"frame{index:03d}.png"), image)
        all_boxes.append(boxes)
    return all_boxes


class CraftedDecoder:
    """Stands in for the decoder to time everything mode's own work (filters, NMS, upsampling, cleanup,
    RLE) with many surviving masks: each point gets a sharp rectangle of random size around it (3
    candidates, predicted IoU 0.95 / 0.5 / 0.3), as 256x256 low-resolution logits over the image."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.size = (1, 1)

    def set_image(self, image: np.ndarray) -> None:
        self.size = image.shape[:2]

    def predict_batch(self, point_coords, point_labels, multimask_output=True, return_masks=False):
        height, width = self.size
        count = len(point_coords)
        logits = np.full((count, 3, 256, 256), -10.0, dtype=np.float32)
        for i, (x, y) in enumerate(point_coords[:, 0]):
            cx, cy = int(x * 256 / width), int(y * 256 / height)
            for k, half in enumerate(self.rng.integers(3, 30, size=3)):
                logits[i, k, max(0, cy - half) : cy + half, max(0, cx - half) : cx + half] = 10.0
        scores = np.tile(np.array([0.95, 0.5, 0.3], dtype=np.float32), (count, 1))
        return None, scores, logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vit_t")
    parser.add_argument("--backend", default="torch",
                        help="torch, torch-bf16, onnx or onnx-int8 (the ONNX files are exported first)")
    parser.add_argument("--images", type=int, default=2, help="images per mode")
    parser.add_argument("--boxes-per-image", type=int, default=10)
    parser.add_argument("--points-per-side", type=int, nargs="+", default=[32],
                        help="grid sizes of everything mode to time (one image each)")
    parser.add_argument("--relaxed-points-per-side", type=int, nargs="*", default=[16],
                        help="grid sizes to time with the IoU and stability filters off (survivors' path)")
    parser.add_argument("--pipeline", action="store_true",
                        help="also time everything mode through run_batch (loading, RLE, saving)")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from efficientsam_studio.annotations.project import Project
    from efficientsam_studio.batch import BatchParams, BoxPrompt, PromptSet, run_batch
    from efficientsam_studio.engine import load_predictor
    from efficientsam_studio.engine.automatic import AutomaticMaskGenerator, AutomaticMaskParams
    from efficientsam_studio.model import build_model

    results: dict = {
        "model": args.model, "backend": args.backend, "image_size": [args.height, args.width],
        "weights": f"random (seed {args.seed})", "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(), "torch": torch.__version__,
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        torch.manual_seed(args.seed)
        checkpoint = tmp_path / "random.pt"
        torch.save({"model": build_model(args.model).state_dict()}, checkpoint)
        if args.backend.startswith("onnx"):
            # the ONNX backends read an export of the checkpoint from the weights store: one in tmp
            import os

            from efficientsam_studio.engine.onnx_backend import export_dir_for
            from efficientsam_studio.engine.onnx_export import export_onnx
            from efficientsam_studio.model import load_model

            os.environ["EFSAM_HOME"] = str(tmp_path / "home")
            model = load_model(args.model, checkpoint, "cpu")
            export_onnx(model, args.model, export_dir_for(args.model, checkpoint),
                        quantize="int8" if args.backend == "onnx-int8" else None)
        predictor = load_predictor(args.model, checkpoint=checkpoint, device="cpu", backend=args.backend)
        folder = tmp_path / "images"
        folder.mkdir()
        boxes = make_images(folder, args.images, (args.height, args.width), args.seed)
        pixels = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(folder.glob("*.png"))]

        # baseline: the encoder alone on the same images (one warm-up)
        predictor.set_image(pixels[0])
        encode_times = []
        for image in pixels:
            started = time.perf_counter()
            predictor.set_image(image)
            encode_times.append(time.perf_counter() - started)
        encoder_s = statistics.median(encode_times)
        results["encoder_s"] = round(encoder_s, 3)

        # --boxes: the whole pipeline (load, encode, decode, upsample, RLE, apply, save)
        prompts = PromptSet("boxes", source=Path("bench"))
        for image_boxes, path in zip(boxes, sorted(folder.glob("*.png")), strict=True):
            for box in image_boxes[: args.boxes_per_image]:
                prompts.add(path.name, BoxPrompt(tuple(float(v) for v in box), "shape", 0.9))
        with Project.create(folder, "boxes") as project:
            summary = run_batch(project, mode="boxes", predictor=predictor, prompts=prompts)
        per_image = summary.seconds / max(1, summary.labelled)
        results["boxes"] = {
            "images": summary.labelled, "boxes_per_image": args.boxes_per_image,
            "instances": summary.instances_added, "s_per_image": round(per_image, 3),
            "images_per_min": round(60.0 / per_image, 2), "ratio_to_encoder": round(per_image / encoder_s, 2),
        }

        # --everything: the generator's own breakdown on one image. "relaxed" keeps every candidate through
        # the IoU and stability filters (random weights rarely pass them), to time the survivors' path too.
        runs = [(side, False) for side in args.points_per_side]
        runs += [(side, True) for side in args.relaxed_points_per_side]
        results["everything"] = []
        for side, relaxed in runs:
            params = AutomaticMaskParams(points_per_side=side)
            if relaxed:
                params = AutomaticMaskParams(
                    points_per_side=side, pred_iou_thresh=-1.0, stability_score_thresh=0.0
                )
            generator = AutomaticMaskGenerator(predictor, params)
            started = time.perf_counter()
            masks = generator.generate(pixels[0])
            total = time.perf_counter() - started
            stats = generator.last_stats
            points = stats.points
            results["everything"].append({
                "points_per_side": side, "relaxed_filters": relaxed, "points": points,
                "candidates": stats.candidates, "after_filters": stats.after_filters,
                "after_nms": stats.after_nms, "masks_kept": len(masks),
                "total_s": round(total, 3), "encode_s": round(stats.encode_s, 3),
                "decode_s": round(stats.decode_s, 3),
                "decode_ms_per_point": round(1000 * stats.decode_s / points, 2),
                "filter_s": round(stats.filter_s, 3), "upsample_s": round(stats.upsample_s, 3),
                "postprocess_s": round(stats.postprocess_s, 3),
                "images_per_min": round(60.0 / total, 2), "ratio_to_encoder": round(total / encoder_s, 2),
                "decode_ratio_to_encoder": round(stats.decode_s / encoder_s, 2),
            })
        # the same grid with a crafted decoder: everything mode's own cost when many masks survive
        generator = AutomaticMaskGenerator(CraftedDecoder(args.seed), AutomaticMaskParams(
            points_per_side=args.points_per_side[0]))
        started = time.perf_counter()
        masks = generator.generate(pixels[0])
        total = time.perf_counter() - started
        stats = generator.last_stats
        results["everything_own_work_crafted_decoder"] = {
            "points_per_side": args.points_per_side[0], "after_filters": stats.after_filters,
            "after_nms": stats.after_nms, "masks_kept": len(masks), "total_s": round(total, 3),
            "decode_s": round(stats.decode_s, 3), "filter_s": round(stats.filter_s, 3),
            "upsample_s": round(stats.upsample_s, 3), "postprocess_s": round(stats.postprocess_s, 3),
            "own_work_ratio_to_encoder": round((total - stats.decode_s - stats.encode_s) / encoder_s, 3),
        }
        if args.pipeline:
            with Project.create(folder, "everything") as project:
                params = BatchParams(automatic=AutomaticMaskParams(points_per_side=args.points_per_side[-1]))
                summary = run_batch(project, images=[project.document.images[0].id], mode="everything",
                                    params=params, predictor=predictor)
            results["everything_pipeline_s_per_image"] = round(summary.seconds / max(1, summary.labelled), 3)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
