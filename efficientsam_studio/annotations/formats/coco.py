"""COCO instance segmentation: export a document and import COCO files into one.

Export: image, category and annotation ids are the document's own ids, so they stay the same from one
export to the next. The labelled images are exported (with instances, or marked done) unless
``image_ids`` names others. Each mask is written as a polygon list or as compressed RLE (``counts`` a string):
``polygons="auto"`` writes polygons for single-part masks without holes and RLE otherwise (so nothing is
lost), ``"always"`` writes every part as a polygon (holes are lost and reported), ``"never"`` writes RLE.
Crowd instances (``iscrowd``) are written as RLE under ``auto``. ``bbox`` and ``area`` come from the mask.
Extra keys per annotation: ``score`` (predicted IoU of AI masks) and ``attributes`` when not empty.

Import: polygons, compressed and uncompressed RLE, ``iscrowd``. Categories are matched by name
(new names are added); images by relative path, then by file name. The whole file is checked before
anything is added, and a malformed file raises :class:`FormatError` naming the field and annotation id:
among them an RLE that is not the image's size, whose ``counts`` string is not valid, or whose runs do not
cover exactly height x width pixels, and polygon points that are not finite or lie far outside the image.
Annotations without a segmentation (boxes only) or with an empty mask are skipped and reported.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from efficientsam_studio import __version__
from efficientsam_studio.annotations import images as image_io
from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.document import Category, Document, ImageRecord, Instance
from efficientsam_studio.annotations.errors import FormatError
from efficientsam_studio.annotations.formats.common import (
    ExportReport,
    ImportReport,
    PolygonPolicy,
    Progress,
    check_policy,
    exportable_instances,
    images_to_export,
    polygons_for,
    with_progress,
)
from efficientsam_studio.annotations.storage import atomic_write
from efficientsam_studio.errors import ImageLoadError


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
    annotations = []
    for image in with_progress(chosen, progress):
        for instance in exportable_instances(document, image.id, report):
            annotation = _annotation(instance, polygons, tolerance, report)
            if annotation is not None:
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
            {"id": image.id, "file_name": image.path, "width": image.width, "height": image.height,
             "status": image.status.value}
            for image in chosen
        ],
        "categories": [
            {"id": c.id, "name": c.name, "supercategory": c.supercategory or c.name, "color": c.colour}
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
        report.rle += 1
    else:
        segmentation = [[round(v, 2) for v in ring.flat()] for ring in rings]
        report.polygons += 1
    annotation = {
        "id": instance.id,
        "image_id": instance.image_id,
        "category_id": instance.category_id,
        "segmentation": segmentation,
        "area": instance.area,
        "bbox": [float(v) for v in instance.bbox],
        "iscrowd": int(instance.iscrowd),
    }
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


# --------------------------------------------------------------------------------------------- import
def _fail(source: str, where: str, problem: str) -> FormatError:
    return FormatError(f"COCO file {source}: {where}: {problem}")


def _field(obj: Any, key: str, kinds: type | tuple[type, ...], source: str, where: str) -> Any:
    if not isinstance(obj, dict):
        raise _fail(source, where, "must be a JSON object")
    if key not in obj:
        raise _fail(source, where, f"field '{key}' is missing")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise _fail(source, where, f"field '{key}' has the wrong type ({type(value).__name__})")
    return value


def _segmentation_rle(raw: dict, image: dict, source: str, where: str) -> dict | None:
    """Validated RLE of an annotation, or None when it has no segmentation (a box only)."""
    segmentation = raw.get("segmentation")
    height, width = image["height"], image["width"]
    if segmentation is None or segmentation == [] or segmentation == {}:
        return None
    if isinstance(segmentation, list):
        for n, polygon in enumerate(segmentation):
            if (not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in polygon)):
                raise _fail(source, f"{where}: field 'segmentation[{n}]'",
                            "a polygon must be a list of at least 6 numbers (x0, y0, x1, y1, ...)")
            try:
                masks.check_polygon(polygon, height, width)
            except ValueError as exc:
                raise _fail(source, f"{where}: field 'segmentation[{n}]'", str(exc)) from None
        return masks.polygons_to_rle(segmentation, height, width)
    if isinstance(segmentation, dict):
        size = segmentation.get("size")
        counts = segmentation.get("counts")
        if (not isinstance(size, list) or len(size) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)):
            raise _fail(source, f"{where}: field 'segmentation.size'", "must be [height, width]")
        if size != [height, width]:
            raise _fail(source, f"{where}: field 'segmentation.size'",
                        f"{size} differs from the image's [height, width] [{height}, {width}]")
        if isinstance(counts, list) and not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
            raise _fail(source, f"{where}: field 'segmentation.counts'", "must hold non-negative integers")
        if not isinstance(counts, (str, list)):
            raise _fail(source, f"{where}: field 'segmentation.counts'",
                        "must be a string (compressed RLE) or a list of integers (uncompressed RLE)")
        try:
            masks.check_rle({"size": size, "counts": counts}, height, width)
        except ValueError as exc:
            raise _fail(source, f"{where}: field 'segmentation.counts'", f"not a valid RLE: {exc}") from None
        return masks.to_compressed({"size": size, "counts": counts})
    raise _fail(source, f"{where}: field 'segmentation'", "must be a list of polygons or an RLE object")


def read_coco(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a COCO JSON file, with a FormatError naming the file and line for bad JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FormatError(f"cannot read COCO file {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        if isinstance(exc, json.JSONDecodeError):
            where = f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
        else:
            where = str(exc)
        raise FormatError(f"COCO file {path} is not valid JSON ({where})") from None


def import_coco(
    document: Document,
    source: str | os.PathLike[str] | dict[str, Any],
    *,
    image_root: str | os.PathLike[str] | None = None,
) -> ImportReport:
    """Add the images, categories and annotations of a COCO file (or dict) to ``document``.

    ``image_root``: the project folder; COCO images not yet in the document are added when their file is
    there (size checked against the file) and otherwise added as missing and reported. Nothing is added
    when the file is malformed (FormatError).
    """
    name = str(source) if not isinstance(source, dict) else "(dict)"
    data = source if isinstance(source, dict) else read_coco(source)
    if not isinstance(data, dict):
        raise FormatError(f"COCO file {name}: the top level must be a JSON object")
    raw_images = _field(data, "images", list, name, "top level")
    raw_categories = _field(data, "categories", list, name, "top level")
    raw_annotations = _field(data, "annotations", list, name, "top level")
    images: dict[int, dict] = {}
    for n, raw in enumerate(raw_images):
        where = f"images[{n}]"
        image_id = _field(raw, "id", int, name, where)
        for key in ("width", "height"):
            if _field(raw, key, int, name, where) <= 0:
                raise _fail(name, where, f"field '{key}' must be positive")
        _field(raw, "file_name", str, name, where)
        images[image_id] = raw
    categories: dict[int, dict] = {}
    for n, raw in enumerate(raw_categories):
        categories[_field(raw, "id", int, name, f"categories[{n}]")] = raw
        _field(raw, "name", str, name, f"categories[{n}]")
    report = ImportReport()
    parsed: list[tuple[dict, dict]] = []
    for n, raw in enumerate(raw_annotations):
        where = f"annotations[{n}]"
        annotation_id = _field(raw, "id", (int, str), name, where)
        where = f"annotation id {annotation_id} (annotations[{n}])"
        image_id = _field(raw, "image_id", int, name, where)
        category_id = _field(raw, "category_id", int, name, where)
        if image_id not in images:
            raise _fail(name, f"{where}: field 'image_id'", f"image {image_id} is not in 'images'")
        if category_id not in categories:
            raise _fail(name, f"{where}: field 'category_id'",
                        f"category {category_id} is not in 'categories'")
        if raw.get("iscrowd", 0) not in (0, 1, True, False):
            raise _fail(name, f"{where}: field 'iscrowd'", "must be 0 or 1")
        rle = _segmentation_rle(raw, images[image_id], name, where)
        if rle is None:
            report.skipped.append((f"annotation {annotation_id}",
                                   "no segmentation (a box only); not imported"))
            continue
        if masks.area(rle) == 0:
            report.skipped.append((f"annotation {annotation_id}", "empty mask; not imported"))
            continue
        parsed.append((raw, rle))
    _apply(document, images, categories, parsed, report, None if image_root is None else Path(image_root))
    return report


def _find_image(document: Document, file_name: str) -> ImageRecord | None:
    relative = Path(file_name.replace("\\", "/")).as_posix()
    record = document.image_by_path(relative)
    if record is not None:
        return record
    base = Path(relative).name
    candidates = [image for image in document.images if Path(image.path).name == base]
    return candidates[0] if len(candidates) == 1 else None


def _apply(document: Document, images: dict[int, dict], categories: dict[int, dict],
           parsed: list[tuple[dict, dict]], report: ImportReport, root: Path | None) -> None:
    image_map: dict[int, int | None] = {}
    for coco_id, raw in images.items():
        size = (raw["width"], raw["height"])
        record = _find_image(document, raw["file_name"])
        if record is None:
            relative = Path(raw["file_name"].replace("\\", "/")).as_posix()
            file = None if root is None else root / relative
            if file is not None and file.is_file():
                try:
                    size = image_io.read_image_size(file)
                except ImageLoadError as exc:
                    report.skipped.append((f"image {relative}",
                                           f"unreadable ({exc}); its annotations skipped"))
                    image_map[coco_id] = None
                    continue
            else:
                report.missing_images.append(relative)
            if size != (raw["width"], raw["height"]):
                report.skipped.append((f"image {relative}",
                                       f"the file is {size[0]}x{size[1]} but the COCO file says "
                                       f"{raw['width']}x{raw['height']}; its annotations skipped"))
                image_map[coco_id] = None
                continue
            record = ImageRecord(document.allocate_id("image"), relative, raw["width"], raw["height"])
            document.add_image(record)
            report.images_added.append(record)
        elif (record.width, record.height) != size:
            report.skipped.append((f"image {record.path}",
                                   f"the project has it as {record.width}x{record.height} but the COCO "
                                   f"file says {size[0]}x{size[1]}; its annotations skipped"))
            image_map[coco_id] = None
            continue
        image_map[coco_id] = record.id
    category_map: dict[int, int] = {}
    used = {raw["category_id"] for raw, _ in parsed}
    for coco_id, raw in categories.items():
        existing = document.category_by_name(raw["name"])
        if existing is None:
            if coco_id not in used:
                continue
            existing = Category(document.allocate_id("category"), raw["name"],
                                document.colour_for_new_category(), str(raw.get("supercategory") or ""))
            document.add_category(existing)
            report.categories_added.append(existing.name)
        category_map[coco_id] = existing.id
    present = {(i.image_id, i.category_id, i.rle["counts"]) for i in document.iter_instances()}
    for raw, rle in parsed:
        image_id = image_map[raw["image_id"]]
        if image_id is None:
            continue
        category_id = category_map[raw["category_id"]]
        if (image_id, category_id, rle["counts"]) in present:
            report.duplicates += 1
            continue
        score = raw.get("score")
        attributes = raw.get("attributes") if isinstance(raw.get("attributes"), dict) else {}
        instance = Instance.from_rle(
            document.allocate_id("instance"), image_id, category_id, rle,
            score=score if isinstance(score, (int, float)) and not isinstance(score, bool) else None,
            source="ai" if score is not None else "manual", iscrowd=bool(raw.get("iscrowd", 0)),
            attributes=attributes)
        document.add_instance(instance)
        present.add((image_id, category_id, rle["counts"]))
        report.instances_added += 1
