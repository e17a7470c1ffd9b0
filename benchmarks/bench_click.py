"""Where one click's time goes: the stages of a single-point prompt on a 1920x1080 image, torch backends.

    python benchmarks/bench_click.py [--model vit_t] [--backend torch-bf16 torch] [--rounds 40]

One process per backend; random weights (seed 0) and a random embedding (the encoder is not timed).
Each round runs the stages in order, as ``predict(multimask_output=False)`` and the app do, and times
each one, so every stage meets the caches as the previous one left them:

- ``prompt_tokens``: pixel coordinates -> prompt tokens, padding merged into one (the prompt encoder);
- ``transformer``: ``FastMaskDecoder.decode_tokens`` (the two-way transformer, IoU and mask tokens out);
- ``heads``: IoU head and hypernetwork MLPs;
- ``upscaling``: the image tokens to three 256x256 logit maps;
- ``best_mask_1080p``: bicubic upsampling and threshold of the best map (what the app shows first);
- ``other_masks_1080p``: the same for the two other candidates (made by the app after the answer).

``predict_best_ms`` and ``predict_3_ms`` time the whole ``predict`` call with one mask or three, in the
same rounds. The baseline, ``baseline_module_click_ms``, is the same click through the ``MaskDecoder``
``nn.Module`` (float32, all six point tokens) and the same best-mask upsampling, also in every round.
``fixed_token_work_ms``: ``decode_tokens`` against a 4x4 image grid instead of 64x64, which leaves the
work on the few prompt tokens (plus a negligible image part). Then, on new images: ``prepare_decoding``
(the decoder's per-image work, which the app does when an image is set), the first click after it, and
the first click on an image whose decoder was not prepared. Medians in ms; prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POINT = (960.0, 540.0)
SIZE = (1080, 1920)


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def worker(model_name: str, backend: str, rounds: int) -> dict:
    import numpy as np
    import torch

    from efficientsam_studio.engine import TorchPredictor
    from efficientsam_studio.engine.numpy_predictor import masks_from_logits
    from efficientsam_studio.engine.torch_bf16 import TorchBf16Predictor
    from efficientsam_studio.model import build_model
    from efficientsam_studio.model.fast_decoder import FastMaskDecoder

    torch.manual_seed(0)
    model = build_model(model_name).eval()
    predictor = (TorchBf16Predictor if backend == "torch-bf16" else TorchPredictor)(model, model_name, "cpu")
    embedding = np.random.default_rng(0).standard_normal((1, 256, 64, 64)).astype(np.float32)
    predictor.set_embedding(embedding, SIZE)
    decoder, context = predictor.fast_decoder, predictor.image_context()
    coords = np.full((1, predictor.max_points, 2), -1.0, np.float32)
    labels = np.full((1, predictor.max_points), -1.0, np.float32)
    coords[0, 0], labels[0, 0] = POINT, 1
    point, label = np.array([POINT]), np.array([1])
    mask_ids = list(range(1, decoder.num_mask_tokens))

    # the same decoder against a 4x4 grid: what is left is the work on the prompt tokens
    pe = model.prompt_encoder.get_dense_pe()[:, :, :4, :4].contiguous()
    small = FastMaskDecoder(model.mask_decoder, pe, predictor.decoder_dtype)
    small_context = small.prepare(torch.from_numpy(embedding[:, :, :4, :4].copy()))

    padded_tokens, _ = predictor.prompt_tokens(coords, labels)  # (1, 6, D): what the module decodes
    embedding_tensor = torch.from_numpy(embedding)
    dense_pe = model.prompt_encoder.get_dense_pe()

    def module_click() -> None:
        with torch.inference_mode():
            logits, iou = model.mask_decoder(embedding_tensor, dense_pe, padded_tokens[None])
            best = int(torch.argmax(iou[0, 0]))
            masks_from_logits(logits[0, 0, best].numpy(), SIZE)

    stages: dict[str, list[float]] = {}

    def timed(name: str, fn):
        start = time.perf_counter()
        out = fn()
        stages.setdefault(name, []).append((time.perf_counter() - start) * 1000)
        return out

    def one_round() -> None:
        tokens, bias = timed("prompt_tokens", lambda: predictor.merged_prompt_tokens(coords, labels))
        queries, keys = timed(
            "transformer",
            lambda: decoder.decode_tokens(context, tokens, prompt_bias=bias, mask_ids=mask_ids),
        )
        hyper, iou = timed("heads", lambda: decoder.heads(queries, mask_ids, reduced=True))
        logits = timed("upscaling", lambda: decoder.upscale_masks(context, keys, hyper)[0].float().numpy())
        order = np.argsort(-iou[0].float().numpy(), kind="stable")
        timed("best_mask_1080p", lambda: masks_from_logits(logits[order[0]], SIZE))
        timed("other_masks_1080p", lambda: masks_from_logits(logits[order[1:]], SIZE))
        timed("predict_best_ms", lambda: predictor.predict(point, label, multimask_output=False))
        timed("predict_3_ms", lambda: predictor.predict(point, label))
        timed("baseline_module_click_ms", module_click)
        timed(
            "fixed_token_work_ms",
            lambda: small.decode_tokens(small_context, tokens, prompt_bias=bias, mask_ids=mask_ids),
        )

    for _ in range(5):
        one_round()
    stages.clear()
    for _ in range(rounds):
        one_round()
    # the first click on each new image: the app calls prepare_decoding when the image is set
    for index in range(rounds):
        fresh = np.random.default_rng(index + 1).standard_normal(embedding.shape).astype(np.float32)
        predictor.set_embedding(fresh, SIZE)
        timed("new_image_prepare_decoding_ms", predictor.prepare_decoding)
        timed("new_image_first_click_ms", lambda: predictor.predict(point, label, multimask_output=False))
        predictor.set_embedding(fresh + 1.0, SIZE)
        timed(
            "new_image_first_click_unprepared_ms",
            lambda: predictor.predict(point, label, multimask_output=False),
        )
    result = {name: _median(values) for name, values in stages.items()}
    parts = ["prompt_tokens", "transformer", "heads", "upscaling", "best_mask_1080p"]
    result["sum_of_stages_to_best_mask"] = round(sum(result[name] for name in parts), 2)
    result["speedup_vs_module"] = round(result["baseline_module_click_ms"] / result["predict_best_ms"], 2)
    result["threads"] = torch.get_num_threads()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_t", choices=["vit_t", "vit_s"])
    parser.add_argument(
        "--backend", nargs="+", default=["torch-bf16", "torch"], choices=["torch", "torch-bf16"]
    )
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.model, args.worker, args.rounds)))
        return 0
    results = {}
    for backend in args.backend:
        command = [sys.executable, __file__, "--model", args.model, "--rounds", str(args.rounds)]
        done = subprocess.run([*command, "--worker", backend], capture_output=True, text=True, cwd=REPO)
        if done.returncode:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        results[backend] = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps({"model": args.model, "image": list(SIZE), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
