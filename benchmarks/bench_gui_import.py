"""GUI-thread cost of File -> Import annotations: 200 images x 20 polygons (640x480), COCO and labelme.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_gui_import.py

For each format, in an offscreen main window on a fresh project of 200 blank images:
- ``direct_ms``: the importer run on the GUI thread straight into the open document (views listening),
  which is what the app would do without the worker (in a second window on a copy of the folder);
- ``worker_ms``: the same import in the worker thread, on a copy of the document (the GUI thread free);
- ``capture_ms``, ``apply_ms``, ``undo_ms``, ``redo_ms``: what the GUI thread does (records taken at
  Import, the result put into the document with its views refreshing, undo and redo of the step);
- ``dialog_total_ms`` and ``longest_gui_stall_ms``: the import once more through the dialog, with a
  10 ms timer on the GUI thread: the largest gap between its ticks (the worker shares the GIL).
"""

import json
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from efficientsam_studio.annotations.formats.coco_import import import_coco
from efficientsam_studio.annotations.formats.labelme import import_labelme
from efficientsam_studio.gui.engine_service import EngineService
from efficientsam_studio.gui.import_flow import DocumentState, ImportOutcome, run_import
from efficientsam_studio.gui.main_window import MainWindow
from efficientsam_studio.gui.settings import StudioSettings

N, K, W, H = 200, 20, 640, 480
app = QApplication([])
for kind in ("information", "warning", "critical"):
    setattr(QMessageBox, kind, staticmethod(lambda *a, **k: QMessageBox.StandardButton.Ok))


def make_data(tmp: Path) -> tuple[Path, Path, Path]:
    folder = tmp / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    blank = np.zeros((H, W, 3), np.uint8)
    images, annotations, labelme = [], [], tmp / "labelme"
    labelme.mkdir()
    for i in range(N):
        cv2.imwrite(str(folder / f"img{i:03d}.png"), blank)
        images.append({"id": i + 1, "file_name": f"img{i:03d}.png", "width": W, "height": H})
        shapes = []
        for k in range(K):
            cx, cy, r = rng.uniform(50, W - 50), rng.uniform(50, H - 50), rng.uniform(10, 40)
            angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
            points = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1).round(2)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": 1 + k % 5,
                    "segmentation": [points.ravel().tolist()],
                    "iscrowd": 0,
                }
            )
            shapes.append(
                {
                    "label": f"c{k % 5}",
                    "points": points.tolist(),
                    "shape_type": "polygon",
                    "group_id": None,
                    "flags": {},
                }
            )
        (labelme / f"img{i:03d}.json").write_text(
            json.dumps(
                {
                    "version": "5.5.0",
                    "flags": {},
                    "shapes": shapes,
                    "imagePath": f"../imgs/img{i:03d}.png",
                    "imageData": None,
                    "imageHeight": H,
                    "imageWidth": W,
                }
            )
        )
    coco = tmp / "coco.json"
    coco.write_text(
        json.dumps(
            {
                "images": images,
                "annotations": annotations,
                "categories": [{"id": c + 1, "name": f"c{c}"} for c in range(5)],
            }
        )
    )
    return folder, coco, labelme


def window_on(folder: Path) -> MainWindow:
    window = MainWindow(StudioSettings(autosave_seconds=0), EngineService())
    window.show()
    assert window.open_path(folder)
    app.processEvents()
    return window


def ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)


tmp = Path(tempfile.mkdtemp())
folder, coco, labelme = make_data(tmp)
for fmt, source in (("coco", coco), ("labelme", labelme)):
    row = {"format": fmt, "images": N, "polygons_per_image": K}
    copy = tmp / f"direct_{fmt}"
    shutil.copytree(folder, copy)
    direct = window_on(copy)
    start = time.perf_counter()
    if fmt == "coco":
        import_coco(direct.workspace.session.document, source, image_root=copy)
    else:
        import_labelme(direct.workspace.session.document, Path(str(source)), image_root=copy)
    row["direct_ms"] = ms(start)
    direct.workspace.session.document.mark_saved()
    direct.close()

    for stale in folder.glob("*.efsam.json*"):
        stale.unlink()
    window = window_on(folder)
    ws = window.workspace
    start = time.perf_counter()
    before = DocumentState.of(ws.session.document)
    row["capture_ms"] = ms(start)
    start = time.perf_counter()
    report, after = run_import(fmt, source, folder, before)
    row["worker_ms"] = ms(start)
    outcome = ImportOutcome(fmt, source, before, report, after)
    start = time.perf_counter()
    assert window.importer.apply(outcome)
    app.processEvents()
    row["apply_ms"] = ms(start)
    start = time.perf_counter()
    ws.session.undo()
    app.processEvents()
    row["undo_ms"] = ms(start)
    start = time.perf_counter()
    ws.session.redo()
    app.processEvents()
    row["redo_ms"] = ms(start)
    row["instances"] = ws.session.document.instance_count
    ws.session.undo()  # once more through the dialog, timing the GUI thread's largest stall
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))  # noqa: B023 (used in this iteration)
    timer.start(10)
    window.importer.start()
    dialog = window.importer.dialog
    dialog.set_format(fmt)
    dialog.source.setText(str(source))
    start = time.perf_counter()
    dialog.start()
    while window.importer.dialog is not None:
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    row["dialog_total_ms"] = ms(start)
    marks = [start, *ticks, start + row["dialog_total_ms"] / 1000]  # a stall may open or close the run
    row["longest_gui_stall_ms"] = round(max(b - a for a, b in zip(marks, marks[1:], strict=False)) * 1000, 1)
    ws.session.document.mark_saved()
    window.close()
    print(json.dumps(row))
shutil.rmtree(tmp)
