"""labelme JSON (5.x), one file per image: export and import.

Coordinates: labelme puts pixel centres on integers and rasterises a polygon as Pillow draws it: the
vertices rounded to pixels, the pixels inside filled and the pixels the outline passes through included
(so a rectangle from ``[10, 10]`` to ``[30, 25]`` covers 21 x 16 pixels). Import does the same
(:func:`polygon_mask`); export traces each part through the centres of its border pixels
(:func:`centre_rings`), so a polygon exported with tolerance 0 imports as the same mask.

Export (``polygons``):
- ``"auto"`` (default): a mask without holes becomes ``polygon`` shapes, one per part, the parts of one
  object sharing a ``group_id`` (the instance id); a mask with holes becomes one ``mask`` shape (labelme's
  raster shape: ``points`` = the top-left and bottom-right pixels of the bbox, ``mask`` = base64 PNG of
  the bbox crop, 0/1), so nothing is lost.
- ``"always"``: polygons only; labelme polygons have no holes, so holes are filled (reported).
- ``"never"``: ``mask`` shapes only (pixel exact).
``score`` (predicted IoU) and non-empty ``attributes`` ride along as extra shape keys, which labelme keeps;
a crowd region (``iscrowd``) is written like any object with the shape flag ``"iscrowd": true``.
A JSON is written for every labelled image (with instances, or marked done), at the image's
relative path with ``.json`` under ``out``; ``imagePath`` is relative to the JSON and ``imageData`` null.
Images that share that name (``a/x.png`` and ``a/x.jpg``) get distinct ones (``a/x_png.json``,
``a/x_jpg.json``; :func:`~.common.output_names`, listed in ``ExportReport.renamed``); each file still
names its own image in ``imagePath``.

Import: ``polygon``, ``rectangle``, ``circle`` and ``mask`` shapes; shapes with the same label and
``group_id`` (an integer or null) are united into one instance, which takes the ``score`` (a number in
[0, 1]) and ``attributes`` (an object) read back from its shapes, and is a crowd region when a shape's
``flags`` hold ``"iscrowd": true``. Other shape types (point, line, linestrip) are skipped and
reported. JSON files that are not labelme files (no ``shapes``) are skipped; a labelme file with a bad
field raises :class:`FormatError` naming the file and shape, before anything is added: among them points
that are not finite or lie far outside the image, and a ``mask`` shape not inside the image or whose PNG
is not the size of the box its points span. ``imagePath`` (relative to the labelme file, or absolute)
must name an image file: empty, or naming a folder, is a FormatError. The image is found as
:class:`~.common.ImageFinder` says (the project image at that path, else the one whose path ends with
it), else, when no image file is there, the one project image of that file name. One outside the
project folder (climbing out of it, or absolute elsewhere, another system's included) that matches no
image by file name is skipped and reported.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import cv2
import numpy as np

from efficientsam_studio.annotations import images as image_io
from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.document import Category, Document, ImageRecord, Instance
from efficientsam_studio.annotations.errors import FormatError
from efficientsam_studio.annotations.formats.common import (
    ExportReport,
    ImageFinder,
    ImportReport,
    PolygonPolicy,
    Progress,
    check_policy,
    exportable_instances,
    images_to_export,
    output_names,
    relative_image_path,
    with_progress,
)
from efficientsam_studio.annotations.storage import atomic_write
from efficientsam_studio.errors import ImageLoadError

LABELME_VERSION = "5.5.0"


# --------------------------------------------------------------------------------------------- export
def _mask_shape(x: int, y: int, crop: np.ndarray, instance: Instance) -> dict[str, Any]:
    h, w = crop.shape
    ok, png = cv2.imencode(".png", crop.astype(np.uint8))
    if not ok:
        raise FormatError(f"could not encode the mask of instance {instance.id} as PNG")
    return {"points": [[float(x), float(y)], [float(x + w - 1), float(y + h - 1)]], "shape_type": "mask",
            "mask": base64.b64encode(png.tobytes()).decode("ascii"), "group_id": None}


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
        shapes = [{"points": (ring + (x, y)).astype(float).tolist(), "shape_type": "polygon",
                   "group_id": group} for ring in rings]
        report.polygons += 1
        if holes:
            report.holes_lost.append(instance.id)
        if len(rings) > 1:
            report.parts_split.append(instance.id)
    extra: dict[str, Any] = {}
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
    for image in with_progress(chosen, progress):
        instances = exportable_instances(document, image.id, report)
        shapes = []
        for instance in instances:
            shapes += instance_shapes(instance, document.category(instance.category_id).name, polygons,
                                      tolerance, report)
            report.instances += 1
        target = out / f"{names[image.id]}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        data = {"version": LABELME_VERSION, "flags": {}, "shapes": shapes,
                "imagePath": Path(os.path.relpath(root / image.path, target.parent)).as_posix(),
                "imageData": None, "imageHeight": image.height, "imageWidth": image.width}
        text = json.dumps(data, ensure_ascii=False, indent=2)
        atomic_write(target, text.encode("utf-8"), keep_backup=False)
        report.files.append(target)
        report.images += 1
    return report


# --------------------------------------------------------------------------------------------- import
def _points(
    shape: dict, size: tuple[int, int], file: Path, where: str, least: int, exact: bool = False
) -> np.ndarray:
    """The shape's points as a float ``(N, 2)`` array, checked: finite, and not farther outside the
    ``size = (height, width)`` image than its own size (see :func:`masks.check_polygon`)."""
    points = shape.get("points")
    valid = isinstance(points, list) and all(
        isinstance(p, (list, tuple)) and len(p) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p) for p in points)
    if not valid or len(points) < least or (exact and len(points) != least):
        need = f"exactly {least}" if exact else f"at least {least}"
        raise FormatError(f"labelme file {file}: {where}: field 'points' must hold {need} [x, y] pairs")
    array = np.asarray(points, dtype=np.float64)
    if not np.isfinite(array).all():
        raise FormatError(f"labelme file {file}: {where}: field 'points' must hold finite numbers")
    try:
        masks.check_polygon(array, *size)
    except ValueError as exc:
        raise FormatError(f"labelme file {file}: {where}: field 'points': {exc}") from None
    return array


def polygon_mask(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Rasterise a labelme polygon (``(N, 2)`` points, pixel centres on integers) as labelme does with
    Pillow: vertices rounded to the nearest pixel (halves away from zero), the pixels inside and those
    the outline passes through set. A ``bool (height, width)`` mask."""
    vertices = (np.sign(points) * np.floor(np.abs(points) + 0.5)).astype(np.int32).reshape(-1, 1, 2)
    canvas = np.zeros((height, width), np.uint8)
    cv2.fillPoly(canvas, [vertices], 1)
    cv2.polylines(canvas, [vertices], True, 1)
    return canvas.astype(bool)


def shape_to_mask(shape: dict, height: int, width: int, file: Path, where: str) -> np.ndarray | None:
    """Rasterise one labelme shape to a ``bool (height, width)`` mask; None for unsupported types.

    A ``mask`` shape must lie inside the image, its PNG as large as the box its two points span (both
    corner pixels included), as labelme itself requires; otherwise FormatError.
    """
    kind = shape.get("shape_type") or "polygon"
    size = (height, width)
    if kind == "polygon":
        return polygon_mask(_points(shape, size, file, where, 3), height, width)
    canvas = np.zeros((height, width), np.uint8)
    if kind == "rectangle":
        (x0, y0), (x1, y1) = np.rint(_points(shape, size, file, where, 2, exact=True)).astype(int)
        cv2.rectangle(canvas, (min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1)), 1, -1)
        return canvas.astype(bool)
    if kind == "circle":
        (cx, cy), (px, py) = _points(shape, size, file, where, 2, exact=True)
        radius = int(round(float(np.hypot(px - cx, py - cy))))
        cv2.circle(canvas, (int(round(cx)), int(round(cy))), radius, 1, -1)
        return canvas.astype(bool)
    if kind == "mask":
        (x0, y0), (x1, y1) = np.rint(_points(shape, size, file, where, 2, exact=True)).astype(int).tolist()
        data = shape.get("mask")
        crop = None
        if isinstance(data, str):
            try:
                crop = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_UNCHANGED)
            except (ValueError, cv2.error):
                crop = None
        if crop is None:
            raise FormatError(f"labelme file {file}: {where}: field 'mask' is not a base64 PNG image")
        crop = crop.any(axis=2) if crop.ndim == 3 else crop != 0
        if crop.shape != (y1 - y0 + 1, x1 - x0 + 1):
            raise FormatError(f"labelme file {file}: {where}: field 'mask' is {crop.shape[1]}x"
                              f"{crop.shape[0]} pixels but 'points' span {x1 - x0 + 1}x{y1 - y0 + 1}")
        if x0 < 0 or y0 < 0 or x1 >= width or y1 >= height:
            raise FormatError(f"labelme file {file}: {where}: the mask at [{x0}, {y0}]-[{x1}, {y1}] is not "
                              f"inside the {width}x{height} image")
        canvas[y0:y1 + 1, x0:x1 + 1] = crop
        return canvas.astype(bool)
    return None


def _labelme_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FormatError(f"labelme source {source} does not exist")
    return sorted(p for p in source.rglob("*.json") if not p.name.endswith(".efsam.json"))


def _read(file: Path) -> dict | None:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FormatError(f"labelme file {file} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                          f"{exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(f"cannot read labelme file {file}: {exc}") from None
    if not isinstance(data, dict) or "shapes" not in data:
        return None
    for key, kind in (("shapes", list), ("imagePath", str), ("imageHeight", int), ("imageWidth", int)):
        if not isinstance(data.get(key), kind):
            raise FormatError(f"labelme file {file}: field '{key}' is missing or not a {kind.__name__}")
    for key in ("imageHeight", "imageWidth"):
        if data[key] <= 0:
            raise FormatError(f"labelme file {file}: field '{key}' must be positive; got {data[key]}")
    image_path = data["imagePath"].replace("\\", "/")
    if PurePosixPath(image_path).name in ("", ".", "..") or image_path.endswith("/") \
            or (file.parent / image_path).is_dir():
        raise FormatError(f"labelme file {file}: field 'imagePath' must name an image file; "
                          f"got {data['imagePath']!r}")
    for n, shape in enumerate(data["shapes"]):
        label = shape.get("label") if isinstance(shape, dict) else None
        if not isinstance(label, str) or not label.strip():
            raise FormatError(f"labelme file {file}: shapes[{n}]: field 'label' is missing or empty")
    return data


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def shape_metadata(shape: dict, file: Path, where: str) -> tuple[Any, dict[str, Any]]:
    """A shape's ``group_id`` and the instance fields it carries (``score``, ``attributes``,
    ``iscrowd``; those it leaves out are absent), checked: FormatError naming the file and shape."""
    def bad(field: str, rule: str, value: Any) -> FormatError:
        return FormatError(f"labelme file {file}: {where}: field '{field}' must be {rule}; got {value!r}")

    group = shape.get("group_id")
    if group is not None and not (isinstance(group, int) and not isinstance(group, bool)):
        raise bad("group_id", "an integer or null", group)
    fields: dict[str, Any] = {}
    score = shape.get("score")
    if score is not None:
        if not _number(score) or not np.isfinite(score) or not 0 <= score <= 1:
            raise bad("score", "a number from 0 to 1 or null", score)
        fields["score"] = float(score)
    attributes = shape.get("attributes")
    if attributes is not None:
        if not isinstance(attributes, dict):
            raise bad("attributes", "an object", attributes)
        fields["attributes"] = attributes
    flags = shape.get("flags")
    if flags is not None:
        if not isinstance(flags, dict):
            raise bad("flags", "an object", flags)
        if "iscrowd" in flags:
            if not isinstance(flags["iscrowd"], bool):
                raise bad("flags.iscrowd", "true or false", flags["iscrowd"])
            fields["iscrowd"] = flags["iscrowd"]
    return group, fields


def _unite(fields: dict[str, Any], found: dict[str, Any]) -> None:
    """Add the fields of one more shape of an object: the first score is kept, attributes are merged
    (the first shape's value wins) and a crowd flag on any shape makes the object a crowd region."""
    if "score" in found:
        fields.setdefault("score", found["score"])
    if "attributes" in found:
        fields["attributes"] = {**found["attributes"], **fields.get("attributes", {})}
    if found.get("iscrowd"):
        fields["iscrowd"] = True


def import_labelme(
    document: Document, source: str | os.PathLike[str], *, image_root: str | os.PathLike[str]
) -> ImportReport:
    """Add the shapes of labelme JSON files (a file, or a folder searched recursively) to ``document``.

    ``image_root``: the project folder; each file's ``imagePath`` must point into it (or match a project
    image by file name; otherwise the file is skipped and reported). Images not yet in the document are
    added (missing files reported).
    """
    source, root = Path(source), Path(image_root).resolve()
    report = ImportReport()
    parsed: list[tuple[Path, dict, list[tuple[str, dict, dict]]]] = []  # masks kept as RLE: little memory
    for file in _labelme_files(source):
        data = _read(file)
        if data is None:
            report.skipped.append((str(file), "not a labelme file (no 'shapes')"))
            continue
        height, width = data["imageHeight"], data["imageWidth"]
        objects: dict[tuple[str, Any], np.ndarray] = {}
        fields: dict[tuple[str, Any], dict[str, Any]] = {}
        for n, shape in enumerate(data["shapes"]):
            where = f"shapes[{n}]"
            group, found = shape_metadata(shape, file, where)
            mask = shape_to_mask(shape, height, width, file, where)
            if mask is None:
                report.skipped.append((f"{file.name} {where}",
                                       f"shape type {shape.get('shape_type')!r} has no area; not imported"))
                continue
            key = (shape["label"], group if group is not None else ("shape", n))
            objects[key] = objects[key] | mask if key in objects else mask
            _unite(fields.setdefault(key, {}), found)
        parsed.append((file, data, [(label, masks.encode(mask), fields[label, group])
                                    for (label, group), mask in objects.items()]))
    finder = ImageFinder(document)
    for file, data, objects in parsed:
        image = _image_for(document, finder, file, data, root, report)
        if image is None:
            continue
        for label, rle, found in objects:
            if masks.area(rle) == 0:
                report.skipped.append((f"{file.name} {label}", "empty shape; not imported"))
                continue
            category = document.category_by_name(label)
            if category is None:
                category = Category(document.allocate_id("category"), label,
                                    document.colour_for_new_category())
                document.add_category(category)
                report.categories_added.append(label)
            if any(i.category_id == category.id and i.rle["counts"] == rle["counts"]
                   for i in document.instances_of(image.id)):
                report.duplicates += 1
                continue
            instance_id = document.allocate_id("instance")
            document.add_instance(Instance.from_rle(instance_id, image.id, category.id, rle, **found))
            report.instances_added += 1
    return report


def _image_for(
    document: Document, finder: ImageFinder, file: Path, data: dict, root: Path, report: ImportReport
) -> ImageRecord | None:
    size = (data["imageWidth"], data["imageHeight"])
    raw = data["imagePath"].replace("\\", "/")
    # imagePath is relative to the labelme file; absolute ones (this system's or another's) stay as they are
    named = raw if raw.startswith("/") or PureWindowsPath(raw).anchor else str(file.parent.resolve() / raw)
    relative = relative_image_path(named, root)
    record = (document.image_by_path(relative) or finder.find(relative)) if relative else None
    if record is None and (relative is None or not (root / relative).is_file()):
        record = finder.find(PurePosixPath(raw).name)  # the JSON moved away from its image
    if record is None and relative is None:
        report.skipped.append((str(file), f"its image {data['imagePath']} is outside the project folder "
                               f"{root}"))
        return None
    if record is None:
        absolute = root / relative
        if absolute.is_file():
            try:
                found = image_io.read_image_size(absolute)
            except ImageLoadError as exc:
                report.skipped.append((str(file), f"its image cannot be read: {exc}"))
                return None
            if tuple(found) != size:
                report.skipped.append((str(file), f"image {relative} is {found[0]}x{found[1]}, the file says "
                                       f"{size[0]}x{size[1]}; not imported"))
                return None
        else:
            report.missing_images.append(relative)
        record = ImageRecord(document.allocate_id("image"), relative, size[0], size[1])
        document.add_image(record)
        report.images_added.append(record)
    if (record.width, record.height) != size:
        report.skipped.append((str(file), f"image {record.path} is {record.width}x{record.height} in the "
                               f"project, the file says {size[0]}x{size[1]}; not imported"))
        return None
    return record
