"""COCO instance segmentation: export a document and import COCO files into one.

Export: annotation ids are the document's own ids, so they stay the same from one export to the next.
An image or a category that came from a COCO file gets its id in that file back (``coco_id``), so the
annotations stay matched to the original dataset and its classes keep their ids; the others get their
project id. Where two would share an id, one of them gets a free one (the rules are in
:mod:`.coco_ids`; a category written under another id than its own is noted in the report). The
labelled images are exported (with instances, or marked done) unless ``image_ids`` names others. Each
mask is written as a polygon list or as compressed RLE (``counts`` a string): ``polygons="auto"``
writes polygons for single-part masks without holes and RLE otherwise (so nothing is lost),
``"always"`` writes every part as a polygon (holes are lost and reported), ``"never"`` writes RLE.
Crowd instances (``iscrowd``) are written as RLE under ``auto``. ``bbox`` comes from the mask;
``area`` is the area of the segmentation written (what COCOeval sorts into small, medium and large):
the mask's pixel count for RLE, and for polygons the pixels pycocotools fills for them (``annToMask``),
which differ from the mask's where a simplified outline cuts or adds pixels or a hole was dropped.
Polygons are traced within the instance's bbox, so the time an export takes grows with the
instances and not with the size of the images. Every category is written (used or not) with its
``supercategory`` (``""`` when it has none) and its ``color``. Extra keys: per image ``status`` (the
labelling status, so that an import brings back images marked done without instances, the true
negatives), per annotation ``source`` (``"ai"`` or ``"manual"``, how the mask was made), ``score``
(predicted IoU of AI masks, when there is one) and ``attributes`` when not empty.

Import: :func:`import_coco` (see :mod:`.coco_import`, whose names are re-exported here).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from efficientsam_studio import __version__
from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.document import Document, Instance
from efficientsam_studio.annotations.formats.coco_ids import (
    export_category_ids,
    export_image_ids,
    moved_categories,
    moved_categories_note,
)
from efficientsam_studio.annotations.formats.coco_import import import_coco, read_coco
from efficientsam_studio.annotations.formats.common import (
    ExportReport,
    PolygonPolicy,
    Progress,
    check_policy,
    exportable_instances,
    images_to_export,
    polygons_for,
    with_progress,
)
from efficientsam_studio.annotations.storage import atomic_write

__all__ = ["coco_dict", "export_category_ids", "export_coco", "export_image_ids", "import_coco", "read_coco"]


# --------------------------------------------------------------------------------------------- export
def coco_dict(
    document: Document,
    *,
    polygons: PolygonPolicy = "auto",
    tolerance: float = 1.0,
    image_ids: Sequence[int] | None = None,
    info: dict[str, Any] | None = None,
    licenses: list[dict[str, Any]] | None = None,
    progress: Progress | None = None,
) -> tuple[dict[str, Any], ExportReport]:
    """The COCO dict of a document (see the module doc) and a report of what went in."""
    check_policy(polygons, tolerance)
    report = ExportReport()
    chosen = images_to_export(document, list(image_ids) if image_ids is not None else None)
    ids = export_image_ids(chosen)
    category_ids = export_category_ids(document.categories)
    moved = moved_categories(document.categories, category_ids)
    if moved:
        report.notes.append(moved_categories_note(moved))
    annotations = []
    for image in with_progress(chosen, progress):
        for instance in exportable_instances(document, image.id, report):
            annotation = _annotation(instance, polygons, tolerance, report)
            if annotation is not None:
                annotation["image_id"] = ids[image.id]
                annotation["category_id"] = category_ids[instance.category_id]
                annotations.append(annotation)
    report.images = len(chosen)
    report.instances = len(annotations)
    data = {
        "info": {
            "description": "Exported by EfficientSAM Studio",
            "version": "1.0",
            "contributor": "",
            "url": "",
            "year": _dt.date.today().year,
            "date_created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "software": f"efficientsam-studio {__version__}",
            **(info or {}),
        },
        "licenses": list(licenses or []),
        "images": [
            {
                "id": ids[image.id],
                "file_name": image.path,
                "width": image.width,
                "height": image.height,
                "status": image.status.value,
            }
            for image in chosen
        ],
        "categories": [
            {"id": category_ids[c.id], "name": c.name, "supercategory": c.supercategory, "color": c.colour}
            for c in document.categories
        ],
        "annotations": annotations,
    }
    return data, report


def _annotation(
    instance: Instance, policy: PolygonPolicy, tolerance: float, report: ExportReport
) -> dict | None:
    rings = polygons_for(instance, policy, tolerance, report)
    if rings is None:
        segmentation: Any = instance.rle
        area = instance.area
        report.rle += 1
    else:
        segmentation = [[round(v, 2) for v in ring.flat()] for ring in rings]
        height, width = (int(v) for v in instance.rle["size"])
        area = masks.area(masks.polygons_to_rle(segmentation, height, width))
        report.polygons += 1
    annotation = {
        "id": instance.id,
        "image_id": instance.image_id,
        "category_id": instance.category_id,
        "segmentation": segmentation,
        "area": area,
        "bbox": [float(v) for v in instance.bbox],
        "iscrowd": int(instance.iscrowd),
    }
    annotation["source"] = instance.source
    if instance.score is not None:
        annotation["score"] = instance.score
    if instance.attributes:
        annotation["attributes"] = instance.attributes
    return annotation


def export_coco(document: Document, out: str | os.PathLike[str], **options: Any) -> ExportReport:
    """Write ``out`` (a ``.json`` file, written atomically); options as in :func:`coco_dict`."""
    data, report = coco_dict(document, **options)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, ensure_ascii=False).encode("utf-8"), keep_backup=False)
    report.files.append(path)
    return report
