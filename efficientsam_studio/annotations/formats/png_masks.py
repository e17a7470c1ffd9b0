"""PNG mask export: a semantic and an instance label image per labelled image.

Writes under ``out``::

    semantic/<relative path>.png   8-bit, pixel = category index (1 = first category, ...), 0 = background
    semantic_colour/<relative path>.png   the same in the categories' colours (for looking at, RGB)
    instances/<relative path>.png  16-bit, pixel = the instance's index on its image (1 = bottom ... N = top),
                                   0 = background
    categories.json                [{"index", "id", "name", "colour"}] (index 0 = "background")
    instances.json                 {"<relative path>": [{"index", "id", "category_id", "score"}]}

``<relative path>`` is the image's without its extension; images that share it (``a/x.png`` and
``a/x.jpg``) are written under distinct names (``a/x_png.png``, ``a/x_jpg.png``;
:func:`~.common.output_names`, listed in ``ExportReport.renamed``).

Where instances overlap, the one higher in the z-order wins. The semantic PNG stores plain indices (no
palette), so OpenCV, Pillow and numpy readers all get the class index; the palette lives in
``categories.json`` and the colour images. More than 255 categories or 65,535 instances on one image do
not fit and raise :class:`FormatError`.

Each instance is decoded and painted within its bounding box only (:func:`~..masks.decode_crop`), so the time
an image takes grows with the area of its instances rather than with their number times the image size.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.document import Document
from efficientsam_studio.annotations.errors import FormatError
from efficientsam_studio.annotations.formats.common import (
    ExportReport,
    Progress,
    exportable_instances,
    images_to_export,
    output_names,
    with_progress,
)


def _write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise FormatError(f"could not encode {path} as PNG")
    path.write_bytes(data.tobytes())


def _bgr(colour: str) -> tuple[int, int, int]:
    return int(colour[5:7], 16), int(colour[3:5], 16), int(colour[1:3], 16)


def export_png_masks(
    document: Document,
    out: str | os.PathLike[str],
    *,
    image_ids: list[int] | None = None,
    progress: Progress | None = None,
) -> ExportReport:
    """Write semantic and instance PNGs for the labelled images (see the module doc)."""
    out = Path(out)
    categories = document.categories
    if len(categories) > 255:
        raise FormatError(f"{len(categories)} categories do not fit an 8-bit semantic PNG (at most 255)")
    index_of = {c.id: n + 1 for n, c in enumerate(categories)}
    palette = np.zeros((256, 3), np.uint8)
    for n, category in enumerate(categories):
        palette[n + 1] = _bgr(category.colour)
    report = ExportReport()
    listing: dict[str, list[dict]] = {}
    chosen = images_to_export(document, image_ids)
    names = output_names(chosen, report)
    for image in with_progress(chosen, progress):
        instances = exportable_instances(document, image.id, report)
        if len(instances) > 65535:
            raise FormatError(f"image {image.path} has {len(instances)} instances; a 16-bit PNG holds 65,535")
        semantic = np.zeros((image.height, image.width), np.uint8)
        labels = np.zeros((image.height, image.width), np.uint16)
        entries = []
        for n, instance in enumerate(instances, start=1):
            crop, x, y = masks.decode_crop(instance.rle)
            h, w = crop.shape
            semantic[y:y + h, x:x + w][crop] = index_of[instance.category_id]
            labels[y:y + h, x:x + w][crop] = n
            entries.append({"index": n, "id": instance.id, "category_id": instance.category_id,
                            "score": instance.score})
            report.instances += 1
            report.rle += 1
        name = f"{names[image.id]}.png"
        for folder, data in (("semantic", semantic), ("semantic_colour", palette[semantic]),
                             ("instances", labels)):
            _write_png(out / folder / name, data)
            report.files.append(out / folder / name)
        listing[image.path] = entries
        report.images += 1
    out.mkdir(parents=True, exist_ok=True)
    table = [{"index": 0, "id": None, "name": "background", "colour": "#000000"}] + [
        {"index": index_of[c.id], "id": c.id, "name": c.name, "colour": c.colour} for c in categories]
    (out / "categories.json").write_text(json.dumps(table, ensure_ascii=False, indent=2), encoding="utf-8")
    (out / "instances.json").write_text(json.dumps(listing, ensure_ascii=False, indent=1), encoding="utf-8")
    report.files += [out / "categories.json", out / "instances.json"]
    return report
