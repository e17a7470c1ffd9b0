"""Backends side by side: this project's torch and ONNX backends against the published EfficientSAM code.

    python benchmarks/bench_backends.py --json out.json [--models vit_t vit_s] [--published-code DIR]

Every configuration runs in a fresh subprocess (so peak RSS is its own) on a 1920x1080 image:

- ``published_torch``: the published repository's torch code (``efficient_sam`` from yformer/EfficientSAM,
  given with ``--published-code`` or ``$EFSAM_PUBLISHED_CODE``; not part of this project). The baseline.
- ``published_onnx``: the published ONNX graphs re-created on the same weights with the published
  repository's own ``onnx_models.py`` wrappers and export settings (TorchScript exporter, opset 17),
  run in ONNX Runtime as a user of those files would (decoder incl. its bilinear upsampling to 1080p).
- ``studio_torch``, ``studio_torch_bf16``, ``studio_onnx`` (fp32), ``studio_onnx_int8``:
  ``load_predictor(backend=...)``.

Per configuration: ``encoder_ms`` (median; for the predictors ``set_image``, preprocessing included),
``decoder_ms`` (one point, best mask upsampled to 1080p, prompt handling included), ``decoder3_ms``
(three masks upsampled), ``batch16_per_prompt_ms`` (16 prompts in one ``predict_batch``, best masks),
``peak_rss_mb`` (VmHWM after loading and encoding one image) and, for the studio backends, the time
until a cached image is ready (``cached_disk_ms``: content hash of the 1080p image, fp16 read, checks
and ``set_embedding``; ``cached_memory_ms``). Weights are random (the reference checkpoint for vit_t
when ``../shared/reference`` exists, seeded random for vit_s): speed does not depend on them.

A ``quality`` section measures, on the reference images and cases, how far the int8 ONNX encoder, the
bfloat16 torch encoder and the fp16 disk cache move the results from fp32 (max logit difference, IoU
of the best mask).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("EFSAM_REFERENCE_DIR", REPO.parent / "shared" / "reference"))
PUBLISHED_DIMS = {"vit_t": (192, 3), "vit_s": (384, 6)}
README_FIGURES = {  # the reference README, 2-core CPU, same torch / onnxruntime versions
    "vit_t": {"published_torch_encoder_ms": 2721, "published_torch_decoder_ms": 57,
              "published_onnx_encoder_ms": 1198, "published_onnx_decoder_ms": "27-32",
              "published_torch_peak_rss_mb": 854},
    "vit_s": {"published_torch_encoder_ms": 5194, "published_torch_decoder_ms": 50,
              "published_onnx_encoder_ms": 2290, "published_onnx_decoder_ms": "27-31",
              "published_torch_peak_rss_mb": 1347},
}  # fmt: skip
POINT = [[960.0, 540.0]]


# -- helpers used inside the workers ---------------------------------------------------------------


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _image_1080p():
    import cv2
    import numpy as np

    source = REPO / "resources" / "samples" / "chelsea.png"
    image = cv2.imread(str(source))
    if image is None:
        rng = np.random.default_rng(0)
        return rng.integers(0, 255, size=(1080, 1920, 3), dtype=np.uint8)
    return cv2.cvtColor(cv2.resize(image, (1920, 1080), interpolation=cv2.INTER_CUBIC), cv2.COLOR_BGR2RGB)


def _time_ms(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 2)


def worker_published_torch(cfg: dict) -> dict:
    import torch

    sys.path.insert(0, cfg["published_code"])
    from efficient_sam.efficient_sam import build_efficient_sam

    dim, heads = PUBLISHED_DIMS[cfg["model"]]
    model = build_efficient_sam(dim, heads, checkpoint=cfg["checkpoint"]).eval()
    image = _image_1080p()
    h, w = image.shape[:2]
    batch = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    points = torch.tensor([[POINT]])
    labels = torch.tensor([[[1.0]]])
    out: dict = {}
    with torch.no_grad():
        embedding = model.get_image_embeddings(batch)
        out["peak_rss_mb"] = round(_peak_rss_mb(), 1)
        out["encoder_ms"] = _time_ms(lambda: model.get_image_embeddings(batch), cfg["repeats"], 0)

        def decode(out_h: int, out_w: int):
            masks, iou = model.predict_masks(embedding, points, labels, True, h, w, out_h, out_w)
            if out_h > 0:  # the published example: best mask by predicted IoU, thresholded
                best = int(torch.argmax(iou[0, 0]))
                return (masks[0, 0, best] >= 0).numpy()
            return masks

        out["decoder_lowres_ms"] = _time_ms(lambda: decode(-1, -1), cfg["decoder_repeats"], 2)
        out["decoder3_ms"] = _time_ms(lambda: decode(h, w), cfg["decoder_repeats"], 2)
    out["note"] = "decoder3_ms: bicubic upsampling of all 3 masks to 1080p inside predict_masks"
    return out


def worker_published_onnx(cfg: dict) -> dict:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    encoder = ort.InferenceSession(cfg["encoder"], options, providers=["CPUExecutionProvider"])
    decoder = ort.InferenceSession(cfg["decoder"], options, providers=["CPUExecutionProvider"])
    image = _image_1080p()
    pixels = image.transpose(2, 0, 1)[None].astype(np.float32) / 255
    embedding = encoder.run(None, {"batched_images": pixels})[0]
    out = {"peak_rss_mb": round(_peak_rss_mb(), 1)}
    out["encoder_ms"] = _time_ms(lambda: encoder.run(None, {"batched_images": pixels}), cfg["repeats"], 0)
    feed = {
        "image_embeddings": embedding,
        "batched_point_coords": np.array([[POINT]], np.float32),
        "batched_point_labels": np.array([[[1.0]]], np.float32),
        "orig_im_size": np.array(image.shape[:2], np.int64),
    }

    def decode():
        masks, iou, _ = decoder.run(None, feed)
        return masks[0, 0, int(np.argmax(iou[0, 0]))] > 0

    out["decoder3_ms"] = _time_ms(decode, cfg["decoder_repeats"], 2)
    out["note"] = "decoder3_ms: the graph upsamples all 3 masks to 1080p (bilinear); best one thresholded"
    return out


def worker_studio(cfg: dict) -> dict:
    import numpy as np

    from efficientsam_studio.engine import load_predictor
    from efficientsam_studio.engine.cache import CachedPredictor, DiskCache, EmbeddingCache, MemoryCache

    predictor = load_predictor(cfg["model"], cfg["checkpoint"], "cpu", backend=cfg["backend"])
    image = _image_1080p()
    predictor.set_image(image)
    out = {"peak_rss_mb": round(_peak_rss_mb(), 1), "torch_imported": "torch" in sys.modules}
    out["encoder_ms"] = _time_ms(lambda: predictor.set_image(image), cfg["repeats"], 0)
    point, label = np.array(POINT), np.array([1])
    out["decoder_ms"] = _time_ms(
        lambda: predictor.predict(point_coords=point, point_labels=label, multimask_output=False),
        cfg["decoder_repeats"],
        2,
    )
    out["decoder3_ms"] = _time_ms(
        lambda: predictor.predict(point_coords=point, point_labels=label), cfg["decoder_repeats"], 2
    )
    grid = np.stack(np.meshgrid(np.linspace(100, 1800, 4), np.linspace(100, 1000, 4)), -1).reshape(16, 1, 2)
    batch_ms = _time_ms(
        lambda: predictor.predict_batch(grid, np.ones((16, 1)), multimask_output=False),
        max(3, cfg["decoder_repeats"] // 5),
        1,
    )
    out["batch16_per_prompt_ms"] = round(batch_ms / 16, 2)
    disk = DiskCache(cfg["cache_dir"])
    CachedPredictor(predictor, EmbeddingCache(MemoryCache(0), disk)).set_image(image)

    def from_disk():
        cached = CachedPredictor(predictor, EmbeddingCache(MemoryCache(0), disk), model_key=model_key)
        assert cached.set_image(image) == "disk"

    model_key = CachedPredictor(predictor, EmbeddingCache(MemoryCache(0), disk)).model_key
    out["cached_disk_ms"] = _time_ms(from_disk, 10, 1)
    in_memory = CachedPredictor(predictor, EmbeddingCache(MemoryCache(), None), model_key=model_key)
    in_memory.set_image(image)
    out["cached_memory_ms"] = _time_ms(lambda: in_memory.set_image(image), 10, 1)
    return out


def _iou(a, b) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def worker_quality(cfg: dict) -> dict:
    """int8 encoder and fp16 cache against fp32 on the reference cases (vit_t)."""
    import numpy as np

    from efficientsam_studio.annotations.images import load_image
    from efficientsam_studio.engine import load_predictor
    from efficientsam_studio.engine.cache_disk import CacheKey, decode_entry, encode_entry
    from efficientsam_studio.errors import StudioError

    fp32 = load_predictor("vit_t", cfg["export_dir"], "cpu", backend="onnx")
    int8 = load_predictor("vit_t", cfg["export_dir"], "cpu", backend="onnx-int8")
    bf16 = None
    if cfg.get("checkpoint"):
        try:
            bf16 = load_predictor("vit_t", cfg["checkpoint"], "cpu", backend="torch-bf16")
        except StudioError:  # no fast bf16 on this CPU: the row is left out
            bf16 = None
    cases = json.loads((REFERENCE / "cases.json").read_text())
    key = CacheKey("x", "y", "z")
    rows = {"int8": [], "fp16_cache": []} | ({"torch_bf16": []} if bf16 is not None else {})
    for name in sorted({c["image"] for c in cases}):
        image = load_image(REFERENCE / "images" / name)
        fp32.set_image(image)
        int8.set_image(image)
        if bf16 is not None:
            bf16.set_image(image)
        embedding = fp32.get_image_embedding()
        rounded, _ = decode_entry(encode_entry(key, embedding, image.shape[:2]), key)
        for case in (c for c in cases if c["image"] == name):
            prompt = {
                "point_coords": np.array(case["points"]) if "points" in case else None,
                "point_labels": np.array(case["labels"]) if "labels" in case else None,
                "box": np.array(case["box"]) if "box" in case else None,
            }
            fp32.set_embedding(embedding, image.shape[:2])
            ref_masks, ref_scores, ref_logits = fp32.predict(**prompt)
            fp32.set_embedding(rounded, image.shape[:2])
            variants = {"fp16_cache": fp32.predict(**prompt), "int8": int8.predict(**prompt)}
            if bf16 is not None:
                variants["torch_bf16"] = bf16.predict(**prompt)
            for label, (masks, scores, logits) in variants.items():
                rows[label].append(
                    {
                        "logit_max_abs_diff": float(np.abs(logits - ref_logits).max()),
                        "best_mask_iou": _iou(masks[0], ref_masks[0]),
                        "best_mask_pixel_agreement": float((masks[0] == ref_masks[0]).mean()),
                        "same_best_candidate": bool(np.abs(scores[0] - ref_scores[0]) < 0.05),
                    }
                )
    summary = {}
    for label, values in rows.items():
        summary[label] = {
            "cases": len(values),
            "logit_max_abs_diff": max(v["logit_max_abs_diff"] for v in values),
            "best_mask_iou_min": min(v["best_mask_iou"] for v in values),
            "best_mask_iou_mean": statistics.mean(v["best_mask_iou"] for v in values),
            "best_mask_pixel_agreement_min": min(v["best_mask_pixel_agreement"] for v in values),
        }
    return summary


WORKERS = {
    "published_torch": worker_published_torch,
    "published_onnx": worker_published_onnx,
    "studio": worker_studio,
    "quality": worker_quality,
}


def worker_export_published(cfg: dict) -> dict:
    """The published ONNX export procedure (its own wrappers and settings) on the benchmark weights."""
    import warnings

    import torch

    sys.path.insert(0, cfg["published_code"])
    import onnx_models
    from efficient_sam.efficient_sam import build_efficient_sam

    dim, heads = PUBLISHED_DIMS[cfg["model"]]
    model = build_efficient_sam(dim, heads, checkpoint=cfg["checkpoint"]).eval()
    points = torch.randint(0, 1080, (1, 1, 5, 2)).float()
    labels = torch.randint(0, 4, (1, 1, 5)).float()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            onnx_models.OnnxEfficientSamEncoder(model=model), (torch.randn(1, 3, 1080, 1920),),
            cfg["encoder"], opset_version=17, do_constant_folding=True, dynamo=False,
            input_names=["batched_images"], output_names=["image_embeddings"],
            dynamic_axes={"batched_images": {0: "batch", 2: "height", 3: "width"}},
        )  # fmt: skip
        torch.onnx.export(
            onnx_models.OnnxEfficientSamDecoder(model=model),
            (torch.randn(1, 256, 64, 64), points, labels, torch.tensor([1080, 1920])),
            cfg["decoder"], opset_version=17, do_constant_folding=True, dynamo=False,
            input_names=["image_embeddings", "batched_point_coords", "batched_point_labels", "orig_im_size"],
            output_names=["output_masks", "iou_predictions"],
            dynamic_axes={"image_embeddings": {0: "batch"}, "batched_point_coords": {2: "num_points"},
                          "batched_point_labels": {2: "num_points"}},
        )  # fmt: skip
    return {"encoder": cfg["encoder"], "decoder": cfg["decoder"]}


WORKERS["export_published"] = worker_export_published


# -- driver ----------------------------------------------------------------------------------------


def _run_worker(kind: str, cfg: dict, timeout: float = 900) -> dict:
    """Run one worker in a fresh interpreter; returns its JSON result or ``{"error": ...}``."""
    command = [sys.executable, __file__, "--worker", kind, "--config", json.dumps(cfg)]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-3:]}
    result = json.loads(lines[-1])
    result["wall_s"] = round(time.perf_counter() - start, 1)
    return result


def _checkpoint(model: str, work: Path) -> Path:
    reference = REFERENCE / "efficientsam_vitt_random_seed1.pt"
    if model == "vit_t" and reference.is_file():
        return reference
    import torch

    from efficientsam_studio.model import build_model

    path = work / f"{model}_random.pt"
    torch.manual_seed(1)
    torch.save({"model": build_model(model).state_dict()}, path)
    return path


def _export_studio(model: str, checkpoint: Path, out: Path) -> dict:
    command = [sys.executable, "-m", "efficientsam_studio.cli.main", "export-onnx", "--model", model,
               "--checkpoint", str(checkpoint), "--out", str(out), "--int8"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-3:]}
    return {"log": done.stdout.strip().splitlines()}


def _print_table(results: dict) -> None:
    columns = ["encoder_ms", "decoder_ms", "decoder3_ms", "batch16_per_prompt_ms", "peak_rss_mb",
               "cached_disk_ms"]  # fmt: skip
    print(f"{'model':6} {'configuration':18} " + " ".join(f"{c:>22}" for c in columns), file=sys.stderr)
    for model, configs in results["models"].items():
        for name, row in configs.items():
            if not isinstance(row, dict) or "encoder_ms" not in row:
                continue
            cells = " ".join(f"{row.get(c, ''):>22}" for c in columns)
            print(f"{model:6} {name:18} {cells}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write the results to this file")
    parser.add_argument("--models", nargs="+", default=["vit_t", "vit_s"], choices=["vit_t", "vit_s"])
    parser.add_argument(
        "--published-code",
        default=os.environ.get("EFSAM_PUBLISHED_CODE", ""),
        help="folder holding the published efficient_sam package and onnx_models.py",
    )
    parser.add_argument("--repeats", type=int, default=3, help="encoder runs per configuration")
    parser.add_argument("--decoder-repeats", type=int, default=20, help="decoder runs per configuration")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](json.loads(args.config))))
        return 0

    published = Path(args.published_code) if args.published_code else None
    if published is not None and not (published / "efficient_sam" / "efficient_sam.py").is_file():
        parser.error(f"--published-code {published}: no efficient_sam/efficient_sam.py there")
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()[0],
                    "python": sys.version.split()[0]},
        "image": "1920x1080",
        "readme_figures": README_FIGURES,
        "models": {},
    }  # fmt: skip
    try:
        import onnxruntime
        import torch

        results["machine"].update(torch=torch.__version__, onnxruntime=onnxruntime.__version__)
    except ImportError:
        pass
    with tempfile.TemporaryDirectory(prefix="efsam-bench-") as tmp:
        work = Path(tmp)
        for model in args.models:
            rows: dict = {}
            checkpoint = _checkpoint(model, work)
            export_dir = work / f"{model}_onnx"
            rows["export"] = _export_studio(model, checkpoint, export_dir)
            base = {"model": model, "checkpoint": str(checkpoint), "repeats": args.repeats,
                    "decoder_repeats": args.decoder_repeats}  # fmt: skip
            if published is not None:
                rows["published_torch"] = _run_worker(
                    "published_torch", {**base, "published_code": str(published)}
                )
                pub = {"encoder": str(work / f"{model}_pub_encoder.onnx"),
                       "decoder": str(work / f"{model}_pub_decoder.onnx")}  # fmt: skip
                made = _run_worker("export_published", {**base, **pub, "published_code": str(published)})
                if "error" in made:
                    rows["published_onnx"] = made
                else:
                    rows["published_onnx"] = _run_worker("published_onnx", {**base, **pub})
            for backend, name in (("torch", "studio_torch"), ("torch-bf16", "studio_torch_bf16"),
                                  ("onnx", "studio_onnx"), ("onnx-int8", "studio_onnx_int8")):  # fmt: skip
                ckpt = str(checkpoint) if backend.startswith("torch") else str(export_dir)
                rows[name] = _run_worker(
                    "studio", {**base, "backend": backend, "checkpoint": ckpt, "cache_dir": str(work / name)}
                )
            baseline = rows.get("published_torch", {})
            for name in (
                "published_onnx",
                "studio_torch",
                "studio_torch_bf16",
                "studio_onnx",
                "studio_onnx_int8",
            ):
                row = rows.get(name, {})
                if "encoder_ms" in row and "encoder_ms" in baseline:
                    row["encoder_speedup_vs_published_torch"] = round(
                        baseline["encoder_ms"] / row["encoder_ms"], 2
                    )
                if "decoder3_ms" in row and "decoder3_ms" in baseline:
                    row["decoder3_speedup_vs_published_torch"] = round(
                        baseline["decoder3_ms"] / row["decoder3_ms"], 2
                    )
            if model == "vit_t" and (REFERENCE / "cases.json").is_file():
                rows["quality"] = _run_worker(
                    "quality", {"export_dir": str(export_dir), "checkpoint": str(checkpoint)}
                )
            results["models"][model] = rows
            print(json.dumps({model: {k: v for k, v in rows.items() if k != "export"}}), file=sys.stderr)
    results["machine"]["load_average_at_end"] = os.getloadavg()[0]
    _print_table(results)
    text = json.dumps(results, indent=2)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
