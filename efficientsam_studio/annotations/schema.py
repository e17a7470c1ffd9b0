"""The project file's JSON schema (version :data:`SCHEMA_VERSION`): document <-> dict, with validation.

The layout is documented in ``SCHEMA.md`` next to this module. :func:`document_from_dict` names the
first bad field as a JSON path (``instances[12].segmentation.counts``) and, for instances, their id.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from efficientsam_studio import __version__
from efficientsam_studio.annotations.document import (
    COLOUR_PATTERN,
    SOURCES,
    Category,
    Document,
    ImageRecord,
    ImageStatus,
    Instance,
)
from efficientsam_studio.annotations.errors import DocumentError

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
        "categories": [
            {"id": c.id, "name": c.name, "colour": c.colour, "supercategory": c.supercategory}
            for c in document.categories
        ],
        "images": [
            {"id": i.id, "path": i.path, "width": i.width, "height": i.height, "status": i.status.value}
            for i in document.images
        ],
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


def _get(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict):
        raise SchemaFieldError(where, "must be a JSON object")
    if key not in obj:
        raise SchemaFieldError(f"{where}.{key}" if where else key, "is missing")
    value = obj[key]
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise SchemaFieldError(f"{where}.{key}" if where else key,
                               f"must be {names}; found {type(value).__name__}")
    return value


def _list(data: dict, key: str) -> list:
    return _get(data, key, list, "")


def document_from_dict(data: Any) -> tuple[Document, dict[str, Any]]:
    """Build a document from a project dict; returns it (clean) and the ``settings`` dict.

    Raises :class:`SchemaFieldError` naming the first bad field. The schema version is checked by the
    caller (:mod:`.project`), which turns these errors into :class:`CorruptProjectError`.
    """
    if not isinstance(data, dict):
        raise SchemaFieldError("(top level)", "must be a JSON object")
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        raise SchemaFieldError("settings", "must be a JSON object")
    next_ids = data.get("next_ids", {})
    if not isinstance(next_ids, dict) or not all(isinstance(v, int) for v in next_ids.values()):
        raise SchemaFieldError("next_ids", "must map image/category/instance to integers")
    categories = []
    for n, raw in enumerate(_list(data, "categories")):
        where = f"categories[{n}]"
        colour = _get(raw, "colour", str, where)
        if not COLOUR_PATTERN.match(colour):
            raise SchemaFieldError(f"{where}.colour", f"must look like '#rrggbb'; found {colour!r}")
        categories.append(Category(_get(raw, "id", int, where), _get(raw, "name", str, where), colour,
                                   str(raw.get("supercategory") or "")))
    images = []
    for n, raw in enumerate(_list(data, "images")):
        where = f"images[{n}]"
        status = _get(raw, "status", str, where)
        if status not in _STATUSES:
            raise SchemaFieldError(f"{where}.status", f"must be one of {sorted(_STATUSES)}; found {status!r}")
        images.append(ImageRecord(_get(raw, "id", int, where), _get(raw, "path", str, where),
                                  _get(raw, "width", int, where), _get(raw, "height", int, where),
                                  _STATUSES[status]))
    sizes = {image.id: [image.height, image.width] for image in images}
    instances = []
    for n, raw in enumerate(_list(data, "instances")):
        where = f"instances[{n}]"
        instance_id = _get(raw, "id", int, where)
        where = f"instances[{n}] (instance id {instance_id})"
        image_id = _get(raw, "image_id", int, where)
        segmentation = _get(raw, "segmentation", dict, where)
        counts = _get(segmentation, "counts", str, f"{where}.segmentation")
        size = _get(segmentation, "size", list, f"{where}.segmentation")
        if image_id in sizes and size != sizes[image_id]:
            raise SchemaFieldError(f"{where}.segmentation.size",
                                   f"{size} differs from the image's [height, width] {sizes[image_id]}")
        bbox = _get(raw, "bbox", list, where)
        if len(bbox) != 4 or not all(isinstance(v, (int, float)) for v in bbox):
            raise SchemaFieldError(f"{where}.bbox", "must be 4 numbers [x, y, w, h]")
        score = raw.get("score")
        if score is not None and not isinstance(score, (int, float)):
            raise SchemaFieldError(f"{where}.score", "must be a number or null")
        source = raw.get("source", "manual")
        if source not in SOURCES:
            raise SchemaFieldError(f"{where}.source", f"must be one of {SOURCES}; found {source!r}")
        attributes = raw.get("attributes", {})
        if not isinstance(attributes, dict):
            raise SchemaFieldError(f"{where}.attributes", "must be a JSON object")
        instances.append(Instance(
            id=instance_id, image_id=image_id, category_id=_get(raw, "category_id", int, where),
            rle={"size": size, "counts": counts}, bbox=tuple(float(v) for v in bbox),
            area=_get(raw, "area", int, where), score=None if score is None else float(score),
            source=source, iscrowd=bool(raw.get("iscrowd", False)), attributes=attributes,
        ))
    document = Document()
    try:
        document.load_records(images, categories, instances, next_ids)
    except DocumentError as exc:
        raise SchemaFieldError("(references)", str(exc)) from None
    return document, settings
