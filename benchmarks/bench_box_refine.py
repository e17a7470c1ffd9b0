"""What a box's second pass in a cut costs in the app's engine service, and the click after it.

    python benchmarks/bench_box_refine.py [--backend torch-bf16] [--rounds 3]

The app's ``EngineService`` (its worker thread, an in-memory embedding cache) with random-weight vit_t
on a 1920x1080 photo (the astronaut sample, scaled). Each round, in milliseconds from the request to
the answer on the GUI thread:

- ``box_ms``: a 200x200 box decoded on the whole image (the first mask the user sees);
- ``refined_ms``: the same box segmented again in its cut (``engine/crop_refine.py``): the cut encoded
  (the first round) or taken from the cache (later rounds, as when points are added to the box),
  decoded, and the whole image's embedding put back;
- ``next_click_ms``: a click elsewhere right after, on the whole image again.

Prints one JSON object with every round's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torch-bf16", choices=["torch", "torch-bf16"])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["EFSAM_HOME"] = tempfile.mkdtemp(prefix="efsam-bench-refine-")

    import cv2
    import numpy as np
    import torch
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    from efficientsam_studio.annotations.images import load_image
    from efficientsam_studio.engine import TorchPredictor
    from efficientsam_studio.engine.cache import CachedPredictor, EmbeddingCache
    from efficientsam_studio.engine.crop_refine import refine_crop
    from efficientsam_studio.engine.torch_bf16 import TorchBf16Predictor
    from efficientsam_studio.gui.engine_service import EngineConfig, EngineService
    from efficientsam_studio.model import build_model

    _app = QApplication.instance() or QApplication([])  # kept for the whole run

    def loader(_config):
        torch.manual_seed(0)
        cls = TorchBf16Predictor if args.backend == "torch-bf16" else TorchPredictor
        return CachedPredictor(cls(build_model("vit_t").eval(), "vit_t", "cpu"), EmbeddingCache.default())

    def answer(signal) -> None:
        loop = QEventLoop()
        signal.connect(loop.quit)
        loop.exec()
        signal.disconnect(loop.quit)

    service = EngineService(loader=loader)
    service.load_model(EngineConfig())
    answer(service.loaded)
    image = cv2.resize(load_image(REPO / "resources" / "samples" / "astronaut.png"), (1920, 1080))
    service.set_image("photo", image)
    answer(service.image_ready)
    box = np.array([900, 400, 1100, 600], np.float32)
    prompt = {"point_coords": None, "point_labels": None, "box": box}
    point = np.array([[300.0, 300.0]], np.float32)
    click = {"point_coords": point, "point_labels": np.array([1]), "box": None}
    crop = refine_crop(box, image.shape[:2])
    rounds = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        service.predict("photo", prompt)
        answer(service.prediction_ready)
        boxed = time.perf_counter()
        service.refine("photo", prompt, crop)
        answer(service.refined_ready)
        refined = time.perf_counter()
        service.predict("photo", click)
        answer(service.prediction_ready)
        done = time.perf_counter()
        rounds.append(
            {
                "box_ms": round((boxed - start) * 1000, 1),
                "refined_ms": round((refined - boxed) * 1000, 1),
                "next_click_ms": round((done - refined) * 1000, 1),
            }
        )
    service.shutdown()
    print(json.dumps({"backend": args.backend, "crop": list(crop), "rounds": rounds}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
