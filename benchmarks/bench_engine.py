"""Engine benchmark: encoder latency, decoder latency per prompt and peak RSS, ours vs the published code.

Each configuration (implementation x model) runs in a fresh subprocess, so peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) belongs to that configuration alone. Both
implementations get random weights (seed 0) and the same random 1920x1080 RGB uint8 image.

- ``encoder_ms``: uint8 image -> embedding (1, 256, 64, 64), resize and normalisation included
  (ours: ``predictor.set_image``; published: ToTensor-style conversion + ``get_image_embeddings``).
- ``decoder_ms``: one positive point -> 3 candidates sorted by IoU, logits upsampled bicubically to
  1920x1080 and thresholded (ours: ``predictor.predict``; published: ``predict_masks`` with
  ``output_h/w`` + sort + threshold).
- ``decoder_lowres_ms``: the same without upsampling (256x256 logits only), the published README's measure.
- ``decoder_batched_ms_per_prompt`` (ours): 16 single-point prompts in one ``predict_batch`` call,
  low-res only, divided by 16 (the "segment everything" path).
- ``peak_rss_mb``: after loading, encoding and single-prompt decoding (the interactive path); ours
  also reports ``peak_rss_after_batch_mb``, after the batched decode.

``--decoder-only`` measures only the decoder cost per prompt of "segment everything" (ours, one
process per model): ``predict_batch`` of 64 single-point prompts, low-res logits only, divided by 64
(``predict_batch_ms_per_prompt``), and the decoder alone on the same 64 prompt tokens, in chunks of the
predictor's ``decode_chunk``, several ways alternated run by run: ``module`` (the ``MaskDecoder``
nn.Module, one embedding shared by the chunk), ``fast`` (``FastMaskDecoder`` in float32, what the torch
backend runs, padding points merged as it does) and ``fast_bf16`` (bfloat16, on CPUs with fast
bfloat16), with their largest logit and IoU difference from the module; ``fast_gflop``: the inference
decoder's products by torch's FLOP counter, once per image and per prompt (transformer, and upscaling of
three masks). ``--no-allocator-tuning`` runs it without the glibc settings of ``engine/allocator.py``
(``EFSAM_ALLOCATOR_TUNING=0``).

Usage::

    python benchmarks/bench_engine.py --published-code /tmp/EfficientSAM   # a clone of yformer/EfficientSAM
    python benchmarks/bench_engine.py --models vit_t --repeats 3             # ours only
    python benchmarks/bench_engine.py --models vit_t --decoder-only          # decoder per prompt, 64 prompts

Prints one JSON document. Every worker makes one warm-up run, then ``--repeats`` timed runs; the
``--rounds`` workers of each configuration alternate between ours and the published code, so both
meet the same machine load, and their runs are pooled. Each timing gives the wall-clock ``median``
and ``min`` and the process CPU time ``cpu_median``; on a shared machine ``min`` is the least disturbed
run. ``speedup`` divides the published figures by ours.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

IMAGE_HW = (1080, 1920)
POINT = (960.0, 540.0)
ENCODER_WIDTHS = {"vit_t": (192, 3), "vit_s": (384, 6)}
PUBLISHED_README = {
    "vit_t": {"encoder_ms": 2721, "decoder_lowres_ms": 57, "peak_rss_mb": 854},
    "vit_s": {"encoder_ms": 5194, "decoder_lowres_ms": 50, "peak_rss_mb": 1347},
}


def _timed(fn, repeats: int) -> dict[str, list[float]]:
    """Wall-clock and process CPU milliseconds of ``repeats`` calls after one warm-up call."""
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return {"wall": wall, "cpu": cpu}


def _summary(times: dict[str, list[float]]) -> dict:
    wall = times["wall"]
    return {
        "median": round(statistics.median(wall), 1),
        "min": round(min(wall), 1),
        "cpu_median": round(statistics.median(times["cpu"]), 1),
        "runs": len(wall),
        "wall_all": [round(t, 1) for t in wall],
        "cpu_all": [round(t, 1) for t in times["cpu"]],
    }


def _merge(summaries: list[dict]) -> dict:
    """Pool the runs of several worker processes (rounds) into one summary."""
    wall = [t for s in summaries for t in s["wall_all"]]
    cpu = [t for s in summaries for t in s["cpu_all"]]
    return _summary({"wall": wall, "cpu": cpu})


def _image():
    import numpy as np

    return np.random.default_rng(0).integers(0, 256, size=(*IMAGE_HW, 3), dtype=np.uint8)


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def worker_studio(model_name: str, repeats: int, decoder_repeats: int) -> dict:
    import numpy as np
    import torch

    from efficientsam_studio.engine import TorchPredictor
    from efficientsam_studio.model import build_model

    torch.manual_seed(0)
    predictor = TorchPredictor(build_model(model_name).eval(), model_name, "cpu")
    image = _image()
    encoder = _timed(lambda: predictor.set_image(image), repeats)
    point, label = np.array([POINT]), np.array([1])
    decoder = _timed(lambda: predictor.predict(point, label), decoder_repeats)
    lowres = _timed(
        lambda: predictor.predict_batch(point[None], label[None], return_masks=False), decoder_repeats
    )
    interactive_rss = _peak_rss_mb()
    many = np.array([[[x, y]] for x in np.linspace(100, 1800, 4) for y in np.linspace(100, 1000, 4)])
    batched = _timed(
        lambda: predictor.predict_batch(many, np.ones((16, 1)), return_masks=False),
        max(2, decoder_repeats // 4),
    )
    return {
        "encoder_ms": _summary(encoder),
        "decoder_ms": _summary(decoder),
        "decoder_lowres_ms": _summary(lowres),
        "decoder_batched_ms_per_prompt": round(statistics.median(batched["wall"]) / 16, 1),
        "threads": torch.get_num_threads(),
        "peak_rss_mb": interactive_rss,
        "peak_rss_after_batch_mb": _peak_rss_mb(),
    }


def worker_published(model_name: str, repeats: int, decoder_repeats: int, code_dir: str) -> dict:
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, code_dir)
    from efficient_sam.efficient_sam import build_efficient_sam

    torch.manual_seed(0)
    width, heads = ENCODER_WIDTHS[model_name]
    model = build_efficient_sam(encoder_patch_embed_dim=width, encoder_num_heads=heads).eval()
    image = _image()
    h, w = IMAGE_HW
    state = {}

    def encode() -> None:
        tensor = torch.from_numpy(image).permute(2, 0, 1).contiguous()[None].float().div(255)
        state["embedding"] = model.get_image_embeddings(tensor)

    points = torch.tensor([[[POINT]]])
    labels = torch.tensor([[[1.0]]])

    def decode(upsample: bool) -> None:
        size = (h, w) if upsample else (-1, -1)
        masks, iou = model.predict_masks(state["embedding"], points, labels, True, h, w, *size)
        order = torch.argsort(iou[0, 0], descending=True)
        masks = masks[0, 0][order]
        if upsample:
            (masks > 0).numpy()
        else:
            F.relu(masks)

    with torch.no_grad():
        encoder = _timed(encode, repeats)
        decoder = _timed(lambda: decode(True), decoder_repeats)
        lowres = _timed(lambda: decode(False), decoder_repeats)
    return {
        "encoder_ms": _summary(encoder),
        "decoder_ms": _summary(decoder),
        "decoder_lowres_ms": _summary(lowres),
        "threads": torch.get_num_threads(),
        "peak_rss_mb": _peak_rss_mb(),
    }


DECODER_PROMPTS = 64


def worker_decoder(model_name: str, decoder_repeats: int) -> dict:
    """Decoder cost per prompt for 64 single-point prompts: the inference decoder against the module."""
    import numpy as np
    import torch

    from efficientsam_studio.engine import TorchPredictor
    from efficientsam_studio.engine.allocator import tune_allocator
    from efficientsam_studio.engine.torch_bf16 import bf16_fast_on
    from efficientsam_studio.model import build_model
    from efficientsam_studio.model.fast_decoder import FastMaskDecoder

    torch.manual_seed(0)
    model = build_model(model_name).eval()
    predictor = TorchPredictor(model, model_name, "cpu")
    predictor.set_image(_image())
    side = int(DECODER_PROMPTS**0.5)
    grid = [[x, y] for x in np.linspace(60, 1860, side) for y in np.linspace(60, 1020, side)]
    coords = np.array(grid, dtype=np.float32)[:, None]  # (64, 1, 2) pixels
    labels = np.ones((DECODER_PROMPTS, 1), np.float32)
    batch = _timed(lambda: predictor.predict_batch(coords, labels, return_masks=False), decoder_repeats)

    embedding = torch.from_numpy(predictor.get_image_embedding())  # (1, 256, 64, 64)
    chunk = predictor.decode_chunk
    # (64, 6, 256), padded as predict_batch pads; the fast decoders merge the padding as it does
    tokens, padding = predictor.prompt_tokens(coords, labels)
    pe = model.prompt_encoder.get_dense_pe()
    decoders = {"fast": FastMaskDecoder(model.mask_decoder, pe)}
    if bf16_fast_on(torch.device("cpu")):
        decoders["fast_bf16"] = FastMaskDecoder(model.mask_decoder, pe, torch.bfloat16)
    contexts = {name: fast.prepare(embedding) for name, fast in decoders.items()}

    def decode(way: str) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = []
        with torch.inference_mode():
            for start in range(0, DECODER_PROMPTS, chunk):
                part = tokens[start : start + chunk]
                if way == "module":  # the nn.Module decoder, one embedding shared by the chunk
                    dec = model.mask_decoder
                    logits, iou = dec(embedding, pe, part[None])
                    outputs.append((logits[0], iou[0]))
                else:
                    padded = padding[start : start + chunk]
                    outputs.append(decoders[way].decode(contexts[way], part, padding=padded))
        return torch.cat([o[0] for o in outputs]), torch.cat([o[1] for o in outputs])

    ways = ["module", *decoders]
    results = {way: decode(way) for way in ways}  # also the warm-up runs
    times: dict[str, dict[str, list[float]]] = {way: {"wall": [], "cpu": []} for way in ways}
    for _ in range(decoder_repeats):  # alternate, so every way sees the same machine load
        for way in ways:
            start, start_cpu = time.perf_counter(), time.process_time()
            decode(way)
            times[way]["wall"].append((time.perf_counter() - start) * 1000)
            times[way]["cpu"].append((time.process_time() - start_cpu) * 1000)

    def per_prompt(summary: dict) -> dict:
        return {k: round(summary[k] / DECODER_PROMPTS, 2) for k in ("median", "min", "cpu_median")}

    summaries = {way: _summary(times[way]) for way in ways}
    module_logits, module_iou = results["module"]
    out = {
        "prompts": DECODER_PROMPTS,
        "decode_chunk": chunk,
        "allocator_tuned": tune_allocator(),
        "predict_batch_ms_per_prompt": per_prompt(_summary(batch)),
        "threads": torch.get_num_threads(),
    }
    out["fast_gflop"] = _fast_decoder_flops(decoders["fast"], embedding, tokens[:chunk], padding[:chunk])
    for way in ways:
        out[f"{way}_ms_per_prompt"] = per_prompt(summaries[way])
        if way != "module":
            logits, iou = results[way]
            out[f"{way}_speedup_median"] = round(summaries["module"]["median"] / summaries[way]["median"], 2)
            out[f"{way}_max_abs_diff_logits"] = float((logits - module_logits).abs().max())
            out[f"{way}_max_abs_diff_iou"] = float((iou - module_iou).abs().max())
    return out


def _fast_decoder_flops(fast, embedding, tokens, padding) -> dict:
    """GFLOP of the inference decoder by torch's FLOP counter (2 per multiply-add): once per image
    (``prepare``), and per prompt the transformer (all that is needed for the predicted IoU) and the
    upscaling of the three multimask outputs."""
    from torch.utils.flop_counter import FlopCounterMode

    def count(fn) -> tuple[float, object]:
        with FlopCounterMode(display=False) as counter:
            result = fn()
        return counter.get_total_flops() / 1e9, result

    per_image, context = count(lambda: fast.prepare(embedding))
    prompts = len(tokens)
    transformer, (queries, keys) = count(lambda: fast.decode_tokens(context, tokens, padding))
    upscaling, _ = count(lambda: fast.mask_logits(context, queries, keys, [1, 2, 3]))
    return {
        "per_image": round(per_image, 3),
        "transformer_per_prompt": round(transformer / prompts, 3),
        "upscaling_3_masks_per_prompt": round(upscaling / prompts, 3),
    }


def _run_worker(impl: str, model_name: str, args: argparse.Namespace) -> dict:
    command = [
        sys.executable, __file__, "--worker", impl, "--models", model_name,
        "--repeats", str(args.repeats), "--decoder-repeats", str(args.decoder_repeats),
    ]  # fmt: skip
    if args.published_code:
        command += ["--published-code", str(args.published_code)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "worker failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _machine() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vit_t", "vit_s"], choices=["vit_t", "vit_s"])
    parser.add_argument("--repeats", type=int, default=3, help="timed encoder runs (default 3)")
    parser.add_argument("--decoder-repeats", type=int, default=10, help="timed decoder runs (default 10)")
    parser.add_argument(
        "--published-code",
        type=Path,
        default=os.environ.get("EFSAM_PUBLISHED_CODE") or None,
        help="a checkout of yformer/EfficientSAM (the folder holding efficient_sam/); "
        "default $EFSAM_PUBLISHED_CODE; without it only ours is measured",
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="worker processes per configuration, alternated (default 2)"
    )
    parser.add_argument(
        "--threads", type=int, help="torch intra-op threads in every worker (default: torch's choice)"
    )
    parser.add_argument(
        "--decoder-only",
        action="store_true",
        help="only the decoder cost per prompt of 64 prompts on one image: "
        "the inference decoder against the nn.Module decoder",
    )
    parser.add_argument(
        "--no-allocator-tuning",
        action="store_true",
        help="with --decoder-only: leave glibc's allocator settings alone (EFSAM_ALLOCATOR_TUNING=0)",
    )
    parser.add_argument("--worker", choices=["studio", "published"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker or args.decoder_only:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
    if args.no_allocator_tuning:
        os.environ["EFSAM_ALLOCATOR_TUNING"] = "0"
    if args.decoder_only:
        report = {"machine": _machine(), "image_hw": list(IMAGE_HW), "results": {}}
        for model_name in args.models:
            report["results"][model_name] = worker_decoder(model_name, args.decoder_repeats)
        report["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
        print(json.dumps(report, indent=2))
        return 0
    if args.worker:
        model_name = args.models[0]
        if args.worker == "studio":
            result = worker_studio(model_name, args.repeats, args.decoder_repeats)
        else:
            result = worker_published(
                model_name, args.repeats, args.decoder_repeats, str(args.published_code)
            )
        print(json.dumps(result))
        return 0

    if args.published_code and not (args.published_code / "efficient_sam" / "efficient_sam.py").is_file():
        parser.error(f"--published-code {args.published_code}: no efficient_sam/efficient_sam.py there")
    report: dict = {
        "machine": _machine(),
        "image_hw": list(IMAGE_HW),
        "rounds": args.rounds,
        "results": {},
        "speedup": {},
    }
    timed = ("encoder_ms", "decoder_ms", "decoder_lowres_ms")
    for model_name in args.models:
        impls = ["studio", "published"] if args.published_code else ["studio"]
        runs: dict[str, list[dict]] = {impl: [] for impl in impls}
        for _ in range(args.rounds):  # alternate, so both see the same machine load
            for impl in impls:
                runs[impl].append(_run_worker(impl, model_name, args))
        entry = {}
        for impl, results in runs.items():
            failed = [r for r in results if "error" in r]
            if failed:
                entry[impl] = failed[0]
                continue
            merged = {key: _merge([r[key] for r in results]) for key in timed}
            for key in ("peak_rss_mb", "peak_rss_after_batch_mb", "decoder_batched_ms_per_prompt"):
                if key in results[0]:
                    merged[key] = max(r[key] for r in results)
            merged["threads"] = results[0]["threads"]
            entry[impl] = merged
        ours, theirs = entry["studio"], entry.get("published")
        if theirs and "error" not in ours and "error" not in theirs:
            enc_o, enc_t = ours["encoder_ms"], theirs["encoder_ms"]
            report["speedup"][model_name] = {
                "encoder_min_wall": round(enc_t["min"] / enc_o["min"], 2),
                "encoder_median_wall": round(enc_t["median"] / enc_o["median"], 2),
                "encoder_median_cpu": round(enc_t["cpu_median"] / enc_o["cpu_median"], 2),
                "decoder_min_wall": round(theirs["decoder_ms"]["min"] / ours["decoder_ms"]["min"], 2),
                "peak_rss_ratio": round(theirs["peak_rss_mb"] / ours["peak_rss_mb"], 2),
            }
        entry["published_readme_2core"] = PUBLISHED_README[model_name]
        report["results"][model_name] = entry
    report["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
