"""Project load/save speed: a project of 1,000 images and 20,000 instances (defaults).

Measures, each the median of ``--repeats`` runs, in milliseconds:

- ``save``: ``Project.save()``: serialise + atomic write (temp file, fsync, backup link, rename, dir fsync)
- ``encode``: serialising the document to the file's bytes only
- ``open``: ``Project.open(path, scan=False)``: lock, read, parse, validate, build the document
- ``open_scan``: ``Project.open(path)``: the same plus scanning the folder (image headers of new files)
- baseline ``json_dump`` / ``json_load``: plain ``json.dump`` / ``json.load`` of the same data to / from
  a file, without atomic write, fsync or validation, measured in the same run
- once (unless ``--no-export``): ``export_coco`` with RLE only and with automatic polygons (tracing every
  mask), in seconds

Prints one JSON object. Example::

    python benchmarks/bench_project.py --images 1000 --per-image 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from efficientsam_studio.annotations.document import Category, Document, ImageRecord, Instance
from efficientsam_studio.annotations.formats.coco import export_coco
from efficientsam_studio.annotations.project import Project, encode_project
from efficientsam_studio.annotations.schema import document_to_dict


def build_document(images: int, per_image: int, width: int, height: int, seed: int = 0) -> Document:
    """Random ellipses as instance masks (sizes 5 to 25 % of the image side), one category per 5."""
    rng = np.random.default_rng(seed)
    document = Document()
    for n in range(8):
        document.add_category(Category(document.allocate_id("category"), f"class{n}",
                                       document.colour_for_new_category()))
    for i in range(images):
        image = ImageRecord(document.allocate_id("image"), f"img{i:05d}.png", width, height)
        document.add_image(image)
        for _ in range(per_image):
            mask = np.zeros((height, width), np.uint8)
            centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            axes = (int(rng.integers(width // 40, width // 8)), int(rng.integers(height // 40, height // 8)))
            cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
            document.add_instance(Instance.from_mask(
                document.allocate_id("instance"), image.id, int(rng.integers(1, 9)), mask,
                score=float(rng.uniform(0.5, 1.0)), source="ai"))
    return document


def median_ms(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--per-image", type=int, default=20)
    parser.add_argument("--size", default="640x480", help="image size WxH (default 640x480)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-export", action="store_true", help="skip the COCO export timings")
    parser.add_argument("--no-image-files", action="store_true",
                        help="skip writing image files (no open_scan)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    with tempfile.TemporaryDirectory(prefix="efsam-bench-") as tmp:
        folder = Path(tmp) / "project"
        folder.mkdir()
        start = time.perf_counter()
        document = build_document(args.images, args.per_image, width, height)
        build_s = time.perf_counter() - start
        if not args.no_image_files:
            blank = np.zeros((height, width, 3), np.uint8)
            for image in document.images:
                cv2.imwrite(str(folder / image.path), blank)
        project = Project.create(folder, "bench", scan=False)
        project.document = document
        document.revision += 1
        results: dict[str, float] = {}
        results["save"] = median_ms(project.save, args.repeats)
        results["encode"] = median_ms(lambda: encode_project(document, project.settings), args.repeats)
        project.close()

        def open_once(scan: bool) -> None:
            Project.open(project.path, scan=scan).close()

        results["open"] = median_ms(lambda: open_once(False), args.repeats)
        if not args.no_image_files:
            results["open_scan"] = median_ms(lambda: open_once(True), args.repeats)
        plain = Path(tmp) / "plain.json"

        def dump() -> None:
            with open(plain, "w", encoding="utf-8") as f:
                json.dump(document_to_dict(document, project.settings), f)

        def load() -> None:
            with open(plain, encoding="utf-8") as f:
                json.load(f)

        results["baseline_json_dump"] = median_ms(dump, args.repeats)
        results["baseline_json_load"] = median_ms(load, args.repeats)
        exports: dict[str, float] = {}
        if not args.no_export:
            for policy in ("never", "auto"):
                start = time.perf_counter()
                export_coco(document, Path(tmp) / f"coco_{policy}.json", polygons=policy)
                exports[f"export_coco_{policy}_s"] = round(time.perf_counter() - start, 2)
        report = {
            "benchmark": "project_load_save",
            "images": args.images,
            "instances": document.instance_count,
            "image_size": [width, height],
            "file_mb": round(project.path.stat().st_size / 1e6, 2),
            "repeats": args.repeats,
            "build_document_s": round(build_s, 1),
            "ms": results,
            "ratio_save_vs_json_dump": round(results["save"] / results["baseline_json_dump"], 2),
            "ratio_open_vs_json_load": round(results["open"] / results["baseline_json_load"], 2),
            **exports,
            "python": sys.version.split()[0],
        }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
