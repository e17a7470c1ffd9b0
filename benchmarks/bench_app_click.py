"""How long the user waits for a click's mask in the app: with and without the hover preview.

    python benchmarks/bench_app_click.py [--backend torch-bf16] [--rounds 20]

The desktop app's main window (offscreen) with the engine's torch predictor of random-weight vit_t
(seed 0) on a 1920x1080 photo (the astronaut sample, scaled). Each round picks a new pixel and times,
in milliseconds, from the AI tool receiving the click (``AiTool.add_prompt``, as a mouse release
calls it) to the best candidate on the canvas (``canvas.set_preview`` returned):

- ``click_ms`` (baseline): the cursor did not rest there first, so the click is decoded by the engine
  worker (queued signal, decoder, best mask at 1080p, answer back to the GUI thread);
- ``click_after_hover_ms``: the cursor rested on the pixel first and its hover preview arrived, so the
  click takes that answer (no decode);
- ``hover_to_preview_ms``: from the cursor resting on a pixel (after the dwell) to its hover preview on
  the canvas.

Before each action the user pauses (``--pause``, 0.3 s): the app paints and then idles, as between a
person's clicks (on this machine memory is slower to touch after an idle spell, so this is slower than
clicks one after another). Both kinds of click run in the same process, alternated round by round.
Medians; prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZE = (1920, 1080)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torch-bf16", choices=["torch", "torch-bf16"])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--pause", type=float, default=0.3, help="seconds the user pauses before each action (0: none)"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    scratch = Path(tempfile.mkdtemp(prefix="efsam-bench-app-"))
    os.environ["EFSAM_HOME"] = str(scratch / "home")

    import cv2
    import numpy as np
    import torch
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from efficientsam_studio.annotations.images import load_image
    from efficientsam_studio.engine import TorchPredictor
    from efficientsam_studio.engine.torch_bf16 import TorchBf16Predictor
    from efficientsam_studio.gui.engine_service import EngineService
    from efficientsam_studio.gui.main_window import MainWindow
    from efficientsam_studio.gui.prompts import PointPrompt
    from efficientsam_studio.gui.settings import StudioSettings
    from efficientsam_studio.model import build_model

    _app = QApplication.instance() or QApplication([])  # kept for the whole run
    folder = scratch / "photos"
    folder.mkdir()
    rgb = cv2.resize(load_image(REPO / "resources" / "samples" / "astronaut.png"), SIZE)
    cv2.imwrite(str(folder / "astronaut.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def loader(_config):
        torch.manual_seed(0)
        cls = TorchBf16Predictor if args.backend == "torch-bf16" else TorchPredictor
        return cls(build_model("vit_t").eval(), "vit_t", "cpu")

    def wait(condition, timeout: float = 120.0) -> None:
        """Run the GUI thread's event loop until ``condition()``: the thread sleeps between events, as the
        app's does (a busy-polling GUI thread would take a core from the engine's threads)."""
        if condition():
            return
        loop = QEventLoop()
        check = QTimer(interval=1)
        check.timeout.connect(lambda: condition() and loop.quit())
        deadline = QTimer(singleShot=True, interval=int(timeout * 1000))
        deadline.timeout.connect(loop.quit)
        check.start()
        deadline.start()
        loop.exec()
        check.stop()
        if not condition():
            raise TimeoutError("the app did not answer")

    engine = EngineService(loader=loader)
    window = MainWindow(StudioSettings(autosave_seconds=0, precompute_ahead=0), engine)
    window.show()
    window.model.load()
    wait(lambda: not engine.is_loading)
    window.open_path(folder)
    ws = window.workspace
    ai = ws.ai
    key = ws.session.image_key(ws.session.current_image_id)
    wait(lambda: engine.is_ready_for(key))
    shown: list[float] = []
    original = ws.canvas.set_preview

    def set_preview(mask, colour):
        original(mask, colour)
        shown.append(time.perf_counter())

    ws.canvas.set_preview = set_preview
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {"click_ms": [], "click_after_hover_ms": [], "hover_to_preview_ms": []}

    def click(x: float, y: float) -> float:
        shown.clear()
        start = time.perf_counter()
        ai.add_prompt(PointPrompt(x, y, 1))
        wait(lambda: ai.prediction is not None and not ai.waiting and bool(shown))
        return (shown[-1] - start) * 1000

    def clear() -> None:
        ai.cancel()
        wait(lambda: not ai.waiting)

    def pause(seconds: float) -> None:
        """The user's pause: the app paints and then idles until the next action."""
        end = time.perf_counter() + seconds
        wait(lambda: time.perf_counter() >= end)

    for index in range(args.rounds + 3):
        x, y = (float(v) for v in rng.uniform((50, 50), (SIZE[0] - 50, SIZE[1] - 50)))
        pause(args.pause)
        baseline = click(x, y)
        clear()
        x, y = x + 7.0, y + 5.0
        pause(args.pause)
        shown.clear()
        start = time.perf_counter()
        ai.hover.request(key, x, y)  # as after the dwell: the user's rest is not the app's work
        wait(lambda: ai.hover.prediction is not None and bool(shown))
        hovered = (shown[-1] - start) * 1000
        pause(args.pause)
        after_hover = click(x, y)
        clear()
        if index >= 3:  # warm-up rounds
            times["click_ms"].append(baseline)
            times["click_after_hover_ms"].append(after_hover)
            times["hover_to_preview_ms"].append(hovered)
    window.close()
    engine.shutdown()
    result = {name: round(statistics.median(values), 2) for name, values in times.items()}
    result.update(
        backend=args.backend, rounds=args.rounds, pause_s=args.pause, image=list(SIZE),
        threads=torch.get_num_threads(),
    )  # fmt: skip
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
