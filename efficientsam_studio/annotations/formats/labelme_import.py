"""labelme JSON import (the export, and how labelme places and rasterises shapes, are in :mod:`.labelme`).

Shapes: ``polygon``, ``rectangle``, ``circle`` and ``mask`` (labelme), and the four-corner boxes
``oriented_rectangle`` (labelme 6) and ``rotation`` (X-AnyLabeling), which are filled as polygons, as
labelme fills them. Shapes with the same label and ``group_id`` (an integer or null) are united into one
instance, which takes the ``source``, ``score`` (a number in [0, 1]) and ``attributes`` (an object)
read back from its shapes (the first shape's, for a source or score), and is a crowd region when a
shape's ``flags`` hold ``"iscrowd": true``. ``source`` (``"ai"`` or ``"manual"``) says how the mask was
made; without one (or with another value) a shape with a score is an AI mask, as X-AnyLabeling's AI
shapes are, and one without is manual, as COCO import decides too (:func:`~.common.source_and_score`).
Shapes without an area (point, points, line, linestrip) are skipped and reported as such, and shape
types this importer does not know as not supported. JSON files that are not labelme files (no
``shapes``) are skipped; a labelme file with a bad field raises :class:`FormatError` naming the file and
shape, before anything is added: among them points that are not finite or lie far outside the image, a
``mask`` shape not inside the image or whose PNG is not the size of the box its points span, and
top-level ``flags`` that are not an object.

Image status: the top-level ``flags`` (an object) may set one image status to true (``{"done": true}``,
as the export writes it); the image gets that status when it has none of its own yet (an image the
import adds, or a project image still ``unlabelled``), also when the file has no shapes (a true
negative). Flags that are not statuses, or several statuses set at once, give no status.

Images: ``imagePath`` (relative to the labelme file, or absolute) must name an image file: empty, or
naming a folder, is a FormatError. The image is found, in this order: at that path when it lies in the
project folder (``image_root``), as :class:`~.common.ImageFinder` says (the project image at that path,
else the one whose path ends with it), or as a new image when the file is there; else, as the labelme
file moved away from its image (an export written outside the project, say), at the labelme file's
place among the files imported (``sub/b.json`` of ``--from`` stands for ``sub/b.jpg`` of the
project, with the image's own file name); else the one project image of that file name. An image
inside the project folder whose file is not there is added and listed as missing; one outside it that
none of these finds is skipped and reported as not found.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import posixpath
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import cv2
import numpy as np

from efficientsam_studio.annotations import images as image_io
from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.document import (
    SOURCES,
    Category,
    Document,
    ImageRecord,
    ImageStatus,
    Instance,
)
from efficientsam_studio.annotations.errors import FormatError
from efficientsam_studio.annotations.formats.common import (
    ImageFinder,
    ImportReport,
    Progress,
    ProgressCounter,
    image_status,
    relative_image_path,
    source_and_score,
)
from efficientsam_studio.annotations.formats.matching import PresentInstances
from efficientsam_studio.errors import ImageLoadError


def _points(
    shape: dict, size: tuple[int, int], file: Path, where: str, least: int, exact: bool = False
) -> np.ndarray:
    """The shape's points as a float ``(N, 2)`` array, checked: finite, and not farther outside the
    ``size = (height, width)`` image than its own size (see :func:`masks.check_polygon`)."""
    points = shape.get("points")
    valid = isinstance(points, list) and all(
        isinstance(p, (list, tuple))
        and len(p) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p)
        for p in points
    )
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


CORNER_BOXES = ("oriented_rectangle", "rotation")
"""Shape types that are boxes given by their four corners (labelme 6, X-AnyLabeling): polygons."""
NO_AREA = ("point", "points", "line", "linestrip")
"""Shape types that mark points or lines: they cover no area, so they make no mask."""


def shape_to_mask(shape: dict, height: int, width: int, file: Path, where: str) -> np.ndarray | None:
    """Rasterise one labelme shape to a ``bool (height, width)`` mask; None for types without an area
    (:data:`NO_AREA`) and types this importer does not know.

    A ``mask`` shape must lie inside the image, its PNG as large as the box its two points span (both
    corner pixels included), as labelme itself requires; otherwise FormatError.
    """
    kind = shape.get("shape_type") or "polygon"
    size = (height, width)
    if kind == "polygon":
        return polygon_mask(_points(shape, size, file, where, 3), height, width)
    if kind in CORNER_BOXES:
        return polygon_mask(_points(shape, size, file, where, 4, exact=True), height, width)
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
            raise FormatError(
                f"labelme file {file}: {where}: field 'mask' is {crop.shape[1]}x"
                f"{crop.shape[0]} pixels but 'points' span {x1 - x0 + 1}x{y1 - y0 + 1}"
            )
        if x0 < 0 or y0 < 0 or x1 >= width or y1 >= height:
            raise FormatError(
                f"labelme file {file}: {where}: the mask at [{x0}, {y0}]-[{x1}, {y1}] is not "
                f"inside the {width}x{height} image"
            )
        canvas[y0 : y1 + 1, x0 : x1 + 1] = crop
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
        raise FormatError(
            f"labelme file {file} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
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
    if (
        PurePosixPath(image_path).name in ("", ".", "..")
        or image_path.endswith("/")
        or (file.parent / image_path).is_dir()
    ):
        raise FormatError(
            f"labelme file {file}: field 'imagePath' must name an image file; got {data['imagePath']!r}"
        )
    for n, shape in enumerate(data["shapes"]):
        label = shape.get("label") if isinstance(shape, dict) else None
        if not isinstance(label, str) or not label.strip():
            raise FormatError(f"labelme file {file}: shapes[{n}]: field 'label' is missing or empty")
    return data


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def shape_metadata(shape: dict, file: Path, where: str) -> tuple[Any, dict[str, Any]]:
    """A shape's ``group_id`` and the instance fields it carries (``source``, ``score``, ``attributes``,
    ``iscrowd``; those it leaves out are absent), checked: FormatError naming the file and shape. A
    ``source`` other than ``"ai"`` or ``"manual"`` is left out (the instance's source is then derived)."""

    def bad(field: str, rule: str, value: Any) -> FormatError:
        return FormatError(f"labelme file {file}: {where}: field '{field}' must be {rule}; got {value!r}")

    group = shape.get("group_id")
    if group is not None and not (isinstance(group, int) and not isinstance(group, bool)):
        raise bad("group_id", "an integer or null", group)
    fields: dict[str, Any] = {}
    if shape.get("source") in SOURCES:
        fields["source"] = shape["source"]
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
    """Add the fields of one more shape of an object: the first source and score are kept, attributes are
    merged (the first shape's value wins) and a crowd flag on any shape makes the object a crowd region."""
    for key in ("source", "score"):
        if key in found:
            fields.setdefault(key, found[key])
    if "attributes" in found:
        fields["attributes"] = {**found["attributes"], **fields.get("attributes", {})}
    if found.get("iscrowd"):
        fields["iscrowd"] = True


def _status(data: dict, file: Path) -> ImageStatus | None:
    """The image status the top-level ``flags`` set (see the module doc), or None."""
    flags = data.get("flags")
    if flags is None:
        return None
    if not isinstance(flags, dict):
        raise FormatError(f"labelme file {file}: field 'flags' must be an object; got {flags!r}")
    chosen = [status for key, value in flags.items() if value is True and (status := image_status(key))]
    return chosen[0] if len(chosen) == 1 else None


def import_labelme(
    document: Document,
    source: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str],
    progress: Progress | None = None,
) -> ImportReport:
    """Add the shapes of labelme JSON files (a file, or a folder searched recursively) to ``document``.

    ``image_root``: the project folder; each file's image is looked for as the module doc says (a file
    whose image is not found is skipped and reported). Images not yet in the document are added (missing
    files reported). Masks the document already holds are not added again (see :mod:`.matching`).
    ``progress(done, total)``: called as the files are read, then added (twice the number of files in
    all); an exception it raises stops the import (what was
    added until then stays: the app imports into a copy of its document).
    """
    source, root = Path(source), Path(image_root).resolve()
    base = (source if source.is_dir() else source.parent).resolve()
    report = ImportReport()
    parsed: list[tuple[Path, dict, ImageStatus | None, list[tuple[str, dict, dict]]]] = []  # masks as RLE
    files = _labelme_files(source)
    counter = ProgressCounter(progress, 2 * len(files))
    for file in files:
        counter.step()
        data = _read(file)
        if data is None:
            report.skipped.append((str(file), "not a labelme file (no 'shapes')"))
            continue
        height, width = data["imageHeight"], data["imageWidth"]
        status = _status(data, file)  # checked before anything is added
        objects: dict[tuple[str, Any], np.ndarray] = {}
        fields: dict[tuple[str, Any], dict[str, Any]] = {}
        for n, shape in enumerate(data["shapes"]):
            where = f"shapes[{n}]"
            group, found = shape_metadata(shape, file, where)
            mask = shape_to_mask(shape, height, width, file, where)
            if mask is None:
                kind = shape.get("shape_type")
                why = "has no area" if kind in NO_AREA else "is not supported"
                report.skipped.append((f"{file.name} {where}", f"shape type {kind!r} {why}; not imported"))
                continue
            key = (shape["label"], group if group is not None else ("shape", n))
            objects[key] = objects[key] | mask if key in objects else mask
            _unite(fields.setdefault(key, {}), found)
        parsed.append(
            (
                file,
                data,
                status,
                [
                    (label, masks.encode(mask), fields[label, group])
                    for (label, group), mask in objects.items()
                ],
            )
        )
    finder = ImageFinder(document)
    present = PresentInstances(document)
    counter.skip(len(files) - len(parsed))  # files that were not labelme files add nothing
    for file, data, status, objects in parsed:
        counter.step()
        image = _image_for(document, finder, file, data, (root, base), report)
        if image is not None and status is not None and image.status == ImageStatus.UNLABELLED:
            image = dataclasses.replace(image, status=status)  # a status set in the project is kept
            document.replace_image(image)
        if image is None:
            continue
        for label, rle, found in objects:
            if masks.area(rle) == 0:
                report.skipped.append((f"{file.name} {label}", "empty shape; not imported"))
                continue
            category = document.category_by_name(label)
            if category is None:
                category = Category(
                    document.allocate_id("category"), label, document.colour_for_new_category()
                )
                document.add_category(category)
                report.categories_added.append(label)
            match = present.find(image.id, category.id, rle)
            if match is not None:
                if match == "identical":
                    report.duplicates += 1
                else:
                    report.same_objects += 1
                continue
            source_of, score = source_and_score(found.pop("source", None), found.pop("score", None))
            instance = Instance.from_rle(
                document.allocate_id("instance"),
                image.id,
                category.id,
                rle,
                score=score,
                source=source_of,
                **found,
            )
            document.add_instance(instance)
            present.added(instance)
            report.instances_added += 1
    counter.finish()
    return report


def _beside(file: Path, base: Path, name: str) -> str:
    """The project path that a labelme file's place among the imported files gives its image: the
    file's folder relative to ``base`` (the folder imported, or the file's own) and the image's name."""
    try:
        folder = file.parent.resolve().relative_to(base).as_posix()
    except ValueError:
        folder = "."
    return posixpath.normpath(f"{folder}/{name}")


def _image_for(
    document: Document,
    finder: ImageFinder,
    file: Path,
    data: dict,
    folders: tuple[Path, Path],
    report: ImportReport,
) -> ImageRecord | None:
    """The project image of a labelme file, found or added as the module doc says; None when skipped.
    ``folders``: the project folder and the folder imported (see :func:`_beside`)."""
    root, base = folders
    size = (data["imageWidth"], data["imageHeight"])
    raw = data["imagePath"].replace("\\", "/")
    name = PurePosixPath(raw).name
    beside = name
    # imagePath is relative to the labelme file; absolute ones (this system's or another's) stay as they are
    named = raw if raw.startswith("/") or PureWindowsPath(raw).anchor else str(file.parent.resolve() / raw)
    relative = relative_image_path(named, root)
    record = (document.image_by_path(relative) or finder.find(relative)) if relative else None
    if record is None and (relative is None or not (root / relative).is_file()):
        beside = _beside(file, base, name)  # the labelme file moved away from its image
        record = document.image_by_path(beside) or finder.find(beside)
        if record is None and (root / beside).is_file():
            relative = beside
        elif record is None:
            record = finder.find(name)
    if record is None and relative is None:
        report.skipped.append(
            (
                str(file),
                f"its image {data['imagePath']} was not found: that path is "
                f"outside the project folder {root}, which has no {beside} and no one "
                f"image named {name}",
            )
        )
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
                report.skipped.append(
                    (
                        str(file),
                        f"image {relative} is {found[0]}x{found[1]}, the file says "
                        f"{size[0]}x{size[1]}; not imported",
                    )
                )
                return None
        else:
            report.missing_images.append(relative)
        record = ImageRecord(document.allocate_id("image"), relative, size[0], size[1])
        document.add_image(record)
        report.images_added.append(record)
    if (record.width, record.height) != size:
        report.skipped.append(
            (
                str(file),
                f"image {record.path} is {record.width}x{record.height} in the "
                f"project, the file says {size[0]}x{size[1]}; not imported",
            )
        )
        return None
    return record
