"""The project file's JSON schema (version :data:`SCHEMA_VERSION`): document <-> dict, with validation.

The layout is documented in ``SCHEMA.md`` next to this module. :func:`document_from_dict` names the
first bad field as a JSON path (``instances[12].segmentation.counts``) and, for instances, their id.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from efficientsam_studio import __version__
from efficientsam_studio.annotations import masks, rle_batch
from efficientsam_studio.annotations.document import (
    COLOUR_PATTERN,
    ID_KINDS,
    SOURCES,
    Category,
    Document,
    ImageRecord,
    ImageStatus,
    Instance,
)
from efficientsam_studio.annotations.errors import DocumentError, EmptyMaskError

SCHEMA_VERSION = 1
FORMAT_NAME = "efficientsam-studio-project"
_STATUSES = {s.value: s for s in ImageStatus}


class SchemaFieldError(ValueError):
    """A field of a project dict is missing or has the wrong type (``field``: its JSON path)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"field {field}: {problem}")
        self.field = field
        self.problem = problem


def document_to_dict(document: Document, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON-able dict of a document (instances image by image, each image's in z-order)."""
    return {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "app_version": __version__,
        "saved_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": dict(settings or {}),
        "next_ids": document.next_ids,
        "categories": [_category_dict(c) for c in document.categories],
        "images": [_image_dict(i) for i in document.images],
        "instances": [
            {
                "id": inst.id,
                "image_id": inst.image_id,
                "category_id": inst.category_id,
                "segmentation": inst.rle,
                "bbox": list(inst.bbox),
                "area": inst.area,
                "score": inst.score,
                "source": inst.source,
                "iscrowd": inst.iscrowd,
                "attributes": inst.attributes,
            }
            for inst in document.iter_instances()
        ],
    }


def _category_dict(category: Category) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": category.id, "name": category.name, "colour": category.colour,
        "supercategory": category.supercategory,
    }  # fmt: skip
    if category.coco_id is not None:
        out["coco_id"] = category.coco_id
    return out


def _image_dict(image: ImageRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": image.id, "path": image.path, "width": image.width, "height": image.height,
        "status": image.status.value,
    }  # fmt: skip
    if image.coco_id is not None:
        out["coco_id"] = image.coco_id
    return out


def _get(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict):
        raise SchemaFieldError(where, "must be a JSON object")
    if key not in obj:
        raise SchemaFieldError(f"{where}.{key}" if where else key, "is missing")
    value = obj[key]
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise SchemaFieldError(
            f"{where}.{key}" if where else key, f"must be {names}; found {type(value).__name__}"
        )
    return value


def _list(data: dict, key: str) -> list:
    return _get(data, key, list, "")


def _positive_id(obj: Any, key: str, where: str) -> int:
    value = _get(obj, key, int, where)
    if value < 1:
        raise SchemaFieldError(f"{where}.{key}", f"must be a positive integer; found {value}")
    return value


def _next_ids(data: dict) -> dict[str, int]:
    """The ``next_ids`` counters: a subset of the three kinds, each a positive integer."""
    next_ids = data.get("next_ids", {})
    if not isinstance(next_ids, dict):
        raise SchemaFieldError("next_ids", "must be a JSON object")
    for kind, value in next_ids.items():
        if kind not in ID_KINDS:
            raise SchemaFieldError(
                f"next_ids.{kind}", f"is not a kind of id (those are {', '.join(ID_KINDS)})"
            )
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SchemaFieldError(f"next_ids.{kind}", f"must be a positive integer; found {value!r}")
    return next_ids


def _coco_id(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchemaFieldError(f"{where}.coco_id", f"must be an integer; found {value!r}")
    return value


def _categories(data: dict) -> list[Category]:
    categories: list[Category] = []
    names: dict[str, int] = {}
    ids: set[int] = set()
    for n, raw in enumerate(_list(data, "categories")):
        where = f"categories[{n}]"
        category_id = _positive_id(raw, "id", where)
        if category_id in ids:
            raise SchemaFieldError(f"{where}.id", f"category id {category_id} appears twice")
        ids.add(category_id)
        name = _get(raw, "name", str, where)
        if not name.strip():
            raise SchemaFieldError(f"{where}.name", f"category {category_id} needs a non-empty name")
        if name in names:
            raise SchemaFieldError(
                f"{where}.name", f"category {category_id} is named {name!r} like category {names[name]}"
            )
        names[name] = category_id
        colour = _get(raw, "colour", str, where)
        if not COLOUR_PATTERN.match(colour):
            raise SchemaFieldError(f"{where}.colour", f"must look like '#rrggbb'; found {colour!r}")
        supercategory = str(raw.get("supercategory") or "")
        coco_id = None if raw.get("coco_id") is None else _coco_id(raw["coco_id"], where)
        categories.append(Category(category_id, name, colour, supercategory, coco_id))
    return categories


def _images(data: dict) -> list[ImageRecord]:
    images: list[ImageRecord] = []
    for n, raw in enumerate(_list(data, "images")):
        where = f"images[{n}]"
        image_id = _positive_id(raw, "id", where)
        status = _get(raw, "status", str, where)
        if status not in _STATUSES:
            raise SchemaFieldError(f"{where}.status", f"must be one of {sorted(_STATUSES)}; found {status!r}")
        width, height = _positive_id(raw, "width", where), _positive_id(raw, "height", where)
        coco_id = None if raw.get("coco_id") is None else _coco_id(raw["coco_id"], where)
        path = _get(raw, "path", str, where)
        images.append(ImageRecord(image_id, path, width, height, _STATUSES[status], coco_id))
    return images


def _instance(
    raw: Any,
    where: str,
    instance_id: int,
    images: dict[int, ImageRecord],
    category_ids: set[int],
    geometry: tuple[int, tuple[float, float, float, float]] | None = None,
) -> Instance:
    """One instance record; its mask is checked against its image's size and its bbox and area are
    computed from the mask (the stored ones are not trusted). ``geometry``: the mask's area and bbox
    where :func:`_read_masks` has already checked and measured it."""
    image_id = _get(raw, "image_id", int, where)
    if image_id not in images:
        raise SchemaFieldError(
            f"{where}.image_id", f"refers to image {image_id}, which is not in the project"
        )
    category_id = _get(raw, "category_id", int, where)
    if category_id not in category_ids:
        raise SchemaFieldError(
            f"{where}.category_id", f"refers to category {category_id}, which is not in the project"
        )
    segmentation = _get(raw, "segmentation", dict, where)
    counts = _get(segmentation, "counts", str, f"{where}.segmentation")
    size = _get(segmentation, "size", list, f"{where}.segmentation")
    image = images[image_id]
    if size != [image.height, image.width]:
        raise SchemaFieldError(
            f"{where}.segmentation.size",
            f"{size} differs from the image's [height, width] {[image.height, image.width]}",
        )
    if geometry is None:
        try:
            masks.check_rle({"size": size, "counts": counts}, image.height, image.width)
        except ValueError as exc:
            raise SchemaFieldError(
                f"{where}.segmentation.counts", f"is not a valid COCO RLE: {exc}"
            ) from None
    bbox = _get(raw, "bbox", list, where)
    if len(bbox) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
        raise SchemaFieldError(f"{where}.bbox", "must be 4 numbers [x, y, w, h]")
    _get(raw, "area", int, where)  # checked for its type only: bbox and area are computed from the mask
    score = raw.get("score")
    if score is not None and (not isinstance(score, (int, float)) or isinstance(score, bool)):
        raise SchemaFieldError(f"{where}.score", "must be a number or null")
    source = raw.get("source", "manual")
    if source not in SOURCES:
        raise SchemaFieldError(f"{where}.source", f"must be one of {SOURCES}; found {source!r}")
    iscrowd = raw.get("iscrowd", False)
    if not isinstance(iscrowd, bool):
        raise SchemaFieldError(f"{where}.iscrowd", f"must be true or false; found {iscrowd!r}")
    attributes = raw.get("attributes", {})
    if not isinstance(attributes, dict):
        raise SchemaFieldError(f"{where}.attributes", "must be a JSON object")
    try:
        return Instance.from_rle(
            instance_id,
            image_id,
            category_id,
            {"size": [image.height, image.width], "counts": counts}
            if geometry
            else {"size": size, "counts": counts},
            score=score,
            source=source,
            iscrowd=iscrowd,
            attributes=attributes,
            geometry=geometry,
        )
    except EmptyMaskError:
        raise SchemaFieldError(
            f"{where}.segmentation", "is an empty mask (empty masks are never stored)"
        ) from None


def _read_masks(raws: list, images: dict[int, ImageRecord]) -> rle_batch.CountsBatch:
    """Check and measure, in one pass, the masks of the instance records that look well formed (a
    ``counts`` string and the ``size`` of a known image); :func:`_instance` takes the one-mask path, and
    reports the error, for any other."""
    counts: list[str] = []
    heights: list[int] = []
    widths: list[int] = []
    for raw in raws:
        segmentation = raw.get("segmentation") if isinstance(raw, dict) else None
        image_id = raw.get("image_id") if isinstance(segmentation, dict) else None
        image = images.get(image_id) if isinstance(image_id, int) else None
        text = segmentation.get("counts") if image is not None else None
        if isinstance(text, str) and segmentation.get("size") == [image.height, image.width]:
            counts.append(text)
            heights.append(image.height)
            widths.append(image.width)
        else:  # read as an empty string: marked as not read
            counts.append("")
            heights.append(1)
            widths.append(1)
    return rle_batch.read_counts(counts, heights, widths)


def document_from_dict(data: Any) -> tuple[Document, dict[str, Any]]:
    """Build a document from a project dict; returns it (clean) and the ``settings`` dict.

    Every record is checked: ids are positive and unique per kind, category names non-empty and unique,
    references point at records of the file, each mask is a valid RLE of its image's size (the stored
    ``bbox`` and ``area`` are replaced by the ones computed from it). Raises :class:`SchemaFieldError`
    naming the first bad field. The schema version is checked by the caller (:mod:`.project`), which
    turns these errors into :class:`CorruptProjectError`.
    """
    if not isinstance(data, dict):
        raise SchemaFieldError("(top level)", "must be a JSON object")
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        raise SchemaFieldError("settings", "must be a JSON object")
    next_ids = _next_ids(data)
    categories = _categories(data)
    images = _images(data)
    by_id = {image.id: image for image in images}
    category_ids = {category.id for category in categories}
    instances: list[Instance] = []
    seen: dict[int, int] = {}
    raws = _list(data, "instances")
    geometries = _read_masks(raws, by_id).geometries()
    for n, raw in enumerate(raws):
        instance_id = _positive_id(raw, "id", f"instances[{n}]")
        where = f"instances[{n}] (instance id {instance_id})"
        if instance_id in seen:
            raise SchemaFieldError(
                f"{where}.id", f"instance id {instance_id} is also used by instances[{seen[instance_id]}]"
            )
        seen[instance_id] = n
        instances.append(_instance(raw, where, instance_id, by_id, category_ids, geometries[n]))
    document = Document()
    try:
        document.load_records(images, categories, instances, next_ids)
    except DocumentError as exc:
        raise SchemaFieldError("(records)", str(exc)) from None
    return document, settings
