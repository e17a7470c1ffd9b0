"""Make ``docs/screenshot.png``: the main window on the sample photos, with masks drawn in the app.

Run under a virtual X server (the app is driven by simulated mouse clicks, as a user would)::

    Xvfb :99 -screen 0 1600x1000x24 &
    DISPLAY=:99 QT_QPA_PLATFORM=xcb python docs/make_screenshot.py
    kill %1

The sample photos are copied to a temporary folder (the project file is written there, not into
``resources/``). The cup and the saucer are outlined with the polygon tool by clicking vertices;
the model shown in the status bar is the ``tiny`` test configuration with random weights (the
published weights are not on the build machine), so no AI mask is claimed in the picture.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "resources" / "samples"

# Vertices clicked with the polygon tool, in pixels of coffee.png (600x400), clockwise from the top.
CUP = [
    (290, 18), (330, 21), (370, 32), (398, 55), (408, 90), (405, 125), (395, 160), (380, 200),
    (360, 235), (335, 258), (305, 275), (270, 280), (255, 276), (247, 298), (226, 306), (205, 301),
    (196, 282), (198, 256), (212, 238), (200, 215), (185, 180), (176, 140), (172, 105), (180, 70),
    (205, 42), (245, 24),
]
SPOON = [
    (405, 68), (418, 72), (420, 85), (408, 130), (395, 185), (388, 235), (398, 255), (406, 285),
    (398, 312), (375, 325), (350, 322), (332, 305), (328, 282), (338, 258), (360, 243), (375, 232),
    (382, 185), (390, 130), (398, 85),
]


def saucer(count: int = 28) -> list[tuple[float, float]]:
    """An ellipse around the saucer of coffee.png."""
    cx, cy, a, b = 278.0, 231.0, 202.0, 158.0
    return [(cx + a * math.cos(2 * math.pi * i / count), cy + b * math.sin(2 * math.pi * i / count))
            for i in range(count)]


def random_tiny_checkpoint(folder: Path) -> Path:
    import torch

    from efficientsam_studio.model import build_model

    torch.manual_seed(0)
    path = folder / "efficientsam_tiny_random.pt"
    torch.save({"model": build_model("tiny").state_dict()}, path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "screenshot.png"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="efsam-screenshot-"))
    os.environ["EFSAM_HOME"] = str(work / "home")
    photos = work / "samples"
    photos.mkdir()
    for image in sorted(SAMPLES.iterdir()):
        if image.suffix in (".png", ".jpg"):
            shutil.copy(image, photos / image.name)
    checkpoint = random_tiny_checkpoint(work)

    from PySide6.QtCore import QEventLoop, Qt, QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from efficientsam_studio.annotations.document import ImageStatus
    from efficientsam_studio.gui.main_window import MainWindow
    from efficientsam_studio.gui.settings import StudioSettings

    app = QApplication(sys.argv[:1])
    app.setApplicationName("EfficientSAM Studio")

    def wait(ms: int) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    settings = StudioSettings(model="tiny", checkpoint=str(checkpoint), backend="torch", device="cpu")
    window = MainWindow(settings)
    window.resize(1400, 860)
    window.show()
    wait(200)  # let the window lay out, so the canvas fits the photo at its final size
    window.model.load()
    if not window.open_path(photos / "coffee.png"):
        return 1
    ws = window.workspace
    key = ws.session.image_key(ws.session.current_image_id)
    for _ in range(600):  # the model loads and encodes the photo in the worker thread
        if window.engine.is_ready_for(key):
            break
        wait(50)
    ws.categories.add("cup", "#e69f00")
    ws.categories.add("saucer", "#56b4e9")
    ws.categories.add("spoon", "#009e73")

    def draw(vertices, category: str) -> None:
        ws.session.set_category(ws.session.document.category_by_name(category).id)
        ws.session.select_instance(None)
        window.set_tool("polygon")
        for x, y in vertices:
            pos = ws.canvas.mapFromScene(x, y)
            QTest.mouseClick(ws.canvas.viewport(), Qt.MouseButton.LeftButton, pos=pos)
            wait(20)
        window.action("accept").trigger()

    draw(saucer(), "saucer")
    draw(CUP, "cup")
    draw(SPOON, "spoon")
    window.mark_image(ImageStatus.IN_PROGRESS)
    ws.session.set_category(ws.session.document.category_by_name("cup").id)
    ws.session.select_instance(ws.session.current_instances()[1].id)  # the cup: its vertices show
    window.show_message("Polygon tool: drag a vertex of the selected cup to edit it; Q: AI tool")
    wait(300)
    window.grab().save(args.out)
    print(f"wrote {args.out}")
    ws.autosave.save_now()
    window.close()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
