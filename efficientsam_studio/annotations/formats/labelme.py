"""labelme JSON (5.x), one file per image: export and import.

Coordinates: labelme puts pixel centres on integers and rasterises a polygon as Pillow draws it: the
vertices rounded to pixels, the pixels inside filled and the pixels the outline passes through included
(so a rectangle from ``[10, 10]`` to ``[30, 25]`` covers 21 x 16 pixels). Import does the same
(:func:`~.labelme_import.polygon_mask`); export traces each part through the centres of its border
pixels (:func:`centre_rings`), so a polygon exported with tolerance 0 imports as the same mask.

Export (``polygons``):
- ``"auto"`` (default): a mask without holes becomes ``polygon`` shapes, one per part, the parts of one
  object sharing a ``group_id`` (the instance id); a mask with holes becomes one ``mask`` shape (labelme's
  raster shape: ``points`` = the top-left and bottom-right pixels of the bbox, ``mask`` = base64 PNG of
  the bbox crop, 0/1), so nothing is lost.
- ``"always"``: polygons only; labelme polygons have no holes, so holes are filled (reported).
- ``"never"``: ``mask`` shapes only (pixel exact).
``source`` (``"ai"`` or ``"manual"``: how the mask was made), ``score`` (predicted IoU, when there is one)
and non-empty ``attributes`` ride along as extra shape keys, which labelme and X-AnyLabeling keep (the
latter has ``score`` and ``attributes`` of its own, with the same meaning); a crowd region (``iscrowd``)
is written like any object with the shape flag ``"iscrowd": true``. The image's status, unless it is
``unlabelled``, is the one image flag set in the top-level ``flags`` (``{"done": true}``,
``{"needs_review": true}``...), where labelme keeps per-image flags: it shows them as check boxes, and
``--flags done,skipped,needs_review,in_progress`` offers every status there.
A JSON is written for every labelled image (with instances, or marked done), at the image's
relative path with ``.json`` under ``out``; ``imagePath`` is relative to the JSON and ``imageData`` null.
Images that share that name (``a/x.png`` and ``a/x.jpg``) get distinct ones (``a/x_png.json``,
``a/x_jpg.json``; :func:`~.common.output_names`, listed in ``ExportReport.renamed``); each file still
names its own image in ``imagePath``. ``out`` is created even when no image is labelled (an empty
export).

Import: :func:`import_labelme` (see :mod:`.labelme_import`, whose names are re-exported here).
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.document import Document, ImageStatus, Instance
from efficientsam_studio.annotations.errors import FormatError
from efficientsam_studio.annotations.formats.common import (
    ExportReport,
    PolygonPolicy,
    Progress,
    check_policy,
    exportable_instances,
    images_to_export,
    output_names,
    with_progress,
)
from efficientsam_studio.annotations.formats.labelme_import import (
    import_labelme,
    polygon_mask,
    shape_metadata,
    shape_to_mask,
)
from efficientsam_studio.annotations.storage import atomic_write

__all__ = [
    "centre_rings",
    "export_labelme",
    "import_labelme",
    "instance_shapes",
    "polygon_mask",
    "shape_metadata",
    "shape_to_mask",
]

LABELME_VERSION = "5.5.0"


# --------------------------------------------------------------------------------------------- export
def _mask_shape(x: int, y: int, crop: np.ndarray, instance: Instance) -> dict[str, Any]:
    h, w = crop.shape
    ok, png = cv2.imencode(".png", crop.astype(np.uint8))
    if not ok:
        raise FormatError(f"could not encode the mask of instance {instance.id} as PNG")
    return {
        "points": [[float(x), float(y)], [float(x + w - 1), float(y + h - 1)]],
        "shape_type": "mask",
        "mask": base64.b64encode(png.tobytes()).decode("ascii"),
        "group_id": None,
    }


def centre_rings(crop: np.ndarray, tolerance: float) -> list[np.ndarray]:
    """The outline of each part of a ``bool`` mask through the centres of its border pixels, in the mask's
    pixel indices: ``int (N, 2)`` arrays of ``(x, y)``, largest part first, each of at least 3 points
    (a part one pixel wide or high is a back-and-forth line). Rasterised as labelme does
    (:func:`polygon_mask`), each ring gives its part back with any holes filled: exactly when
    ``tolerance`` (pixels, ``cv2.approxPolyDP``) is 0, within ``tolerance`` otherwise."""
    padded = cv2.copyMakeBorder(crop.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    contours, _ = cv2.findContours(padded, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    rings = []
    for contour in sorted(contours, key=lambda c: -cv2.contourArea(c)):
        if tolerance > 0 and len(contour) > 4:
            simplified = cv2.approxPolyDP(contour, float(tolerance), True)
            if len(simplified) >= 3:
                contour = simplified
        points = contour.reshape(-1, 2) - 1
        rings.append(np.resize(points, (3, 2)) if len(points) < 3 else points)
    return rings


def instance_shapes(
    instance: Instance, label: str, polygons: PolygonPolicy, tolerance: float, report: ExportReport
) -> list[dict[str, Any]]:
    """The labelme shapes of one instance (see the module doc)."""
    crop, x, y = masks.decode_crop(instance.rle)
    holes = masks.has_holes(crop)
    if polygons == "never" or (polygons == "auto" and holes):
        shapes = [_mask_shape(x, y, crop, instance)]
        report.rle += 1
    else:
        rings = centre_rings(crop, tolerance)
        group = instance.id if len(rings) > 1 else None
        shapes = [
            {"points": (ring + (x, y)).astype(float).tolist(), "shape_type": "polygon", "group_id": group}
            for ring in rings
        ]
        report.polygons += 1
        if holes:
            report.holes_lost.append(instance.id)
        if len(rings) > 1:
            report.parts_split.append(instance.id)
    extra: dict[str, Any] = {"source": instance.source}
    if instance.score is not None:
        extra["score"] = instance.score
    if instance.attributes:
        extra["attributes"] = instance.attributes
    flags = {"iscrowd": True} if instance.iscrowd else {}
    return [{"label": label, **shape, "description": "", "flags": dict(flags), **extra} for shape in shapes]


def export_labelme(
    document: Document,
    out: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str],
    polygons: PolygonPolicy = "auto",
    tolerance: float = 1.0,
    image_ids: list[int] | None = None,
    progress: Progress | None = None,
) -> ExportReport:
    """Write one labelme JSON per image under ``out`` (``image_root``: the project folder)."""
    check_policy(polygons, tolerance)
    out, root = Path(out), Path(image_root)
    report = ExportReport()
    chosen = images_to_export(document, image_ids)
    names = output_names(chosen, report)
    out.mkdir(parents=True, exist_ok=True)
    for image in with_progress(chosen, progress):
        instances = exportable_instances(document, image.id, report)
        shapes = []
        for instance in instances:
            shapes += instance_shapes(
                instance, document.category(instance.category_id).name, polygons, tolerance, report
            )
            report.instances += 1
        target = out / f"{names[image.id]}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        flags = {} if image.status == ImageStatus.UNLABELLED else {image.status.value: True}
        data = {
            "version": LABELME_VERSION,
            "flags": flags,
            "shapes": shapes,
            "imagePath": Path(os.path.relpath(root / image.path, target.parent)).as_posix(),
            "imageData": None,
            "imageHeight": image.height,
            "imageWidth": image.width,
        }
        text = json.dumps(data, ensure_ascii=False, indent=2)
        atomic_write(target, text.encode("utf-8"), keep_backup=False)
        report.files.append(target)
        report.images += 1
    return report
