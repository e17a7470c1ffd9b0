"""Import COCO instance segmentation files into a document (the export is in :mod:`.coco`).

Read: polygons, compressed and uncompressed RLE, ``iscrowd``, and the extra keys the exporter writes:
``source``, ``score``, ``attributes``, image ``status`` and category ``color``. ``score`` must be a number
from 0 to 1 (or null): anything else (a string such as ``"0.9"`` included) is a malformed file. An
annotation's ``source`` (``"ai"`` or ``"manual"``) says how the mask was made; without one (or with
another value) an annotation with a score is an AI mask and one without is manual, as labelme import
decides too (:func:`~.common.source_and_score`).

The whole file is checked before anything is added, and a malformed file raises :class:`FormatError`
naming the file, the field and the entry: among them an image, category or annotation id used twice
(which would send annotations to the wrong image or category), two images with one file name, a
``file_name`` that names no file, a category without a name, an RLE that is not the image's size, whose
``counts`` string is not valid, or whose runs do not cover exactly height x width pixels, and polygon
points that are not finite or lie far outside the image. Annotations without a segmentation (boxes only)
or with an empty mask are skipped and reported.

Images: ``file_name`` is a path relative to the project folder (``image_root``). It finds a project image
as :class:`~.common.ImageFinder` says: the image at that path, else the one image whose path ends with it
(a bare name finds the one image of that name); a folder never stands for another (``val/x.png`` does not
find ``train/x.png``). A project image is found by one entry of the file at most: the entry that names
its exact path, else the one with the longest name; the others are new images. New images are added,
with their size checked when the file is in the folder, and otherwise listed as missing. An image
outside the project folder (``../x.png``, or an absolute path that is not in it) is not added: it is
skipped with its annotations and reported.

Status: a valid ``status`` (``done``, ``skipped``...; others are ignored) is given to an image that has
none of its own yet: one added by the import, or a project image still ``unlabelled``. A status set in
the project is never changed, so importing never undoes a review; an image marked done without
instances (a true negative) comes back as one.

Categories are matched by name (the project's id, colour and supercategory are kept). Every category of
the file is imported, used or not, in file order (YOLO class indices follow that order), with its
``color`` when it is ``#rrggbb`` (otherwise the next default colour) and its ``supercategory``; a
category whose name an earlier one of the file has joins it. Each category keeps its id in the file as
its ``coco_id`` (a project category that has one already keeps it), which the export writes back as its
id, so that code that orders classes by id sees the file's order. Its project id is the file's id when
the project never handed that id out (the id is not below the project's next category id: always the
case for a project without categories) and it is positive (project ids are; COCO files that start at
0, often for a background class, have one that is not), and otherwise the next free id. A category of
the file that a COCO export would write under another id than the file's (it has another ``coco_id``
already, or another category has that id first; see :mod:`.coco_ids`) is listed in
``ImportReport.category_ids_changed``, and a category already in the project whose exported id the
import changes in ``ImportReport.category_ids_moved``; the summary shows both.
Annotation ids are the project's own.

Annotations already in the project are not added again: those identical to an instance (same image,
category and mask; ``ImportReport.duplicates``) and those recognised as the same object with an outline
that differs a little, as after a polygon export with a tolerance (``ImportReport.same_objects``; see
:mod:`.matching`). An image keeps the id it has in the file as its ``coco_id`` (a project image that has
one already keeps it), which the export writes back as its id.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from efficientsam_studio.annotations import images as image_io
from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.document import (
    COLOUR_PATTERN,
    Category,
    Document,
    ImageRecord,
    ImageStatus,
    Instance,
)
from efficientsam_studio.annotations.errors import FormatError
from efficientsam_studio.annotations.formats.coco_ids import export_category_ids
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
            if (
                not isinstance(polygon, list)
                or len(polygon) < 6
                or len(polygon) % 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in polygon)
            ):
                raise _fail(
                    source,
                    f"{where}: field 'segmentation[{n}]'",
                    "a polygon must be a list of at least 6 numbers (x0, y0, x1, y1, ...)",
                )
            try:
                masks.check_polygon(polygon, height, width)
            except ValueError as exc:
                raise _fail(source, f"{where}: field 'segmentation[{n}]'", str(exc)) from None
        return masks.polygons_to_rle(segmentation, height, width)
    if isinstance(segmentation, dict):
        size = segmentation.get("size")
        counts = segmentation.get("counts")
        if (
            not isinstance(size, list)
            or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)
        ):
            raise _fail(source, f"{where}: field 'segmentation.size'", "must be [height, width]")
        if size != [height, width]:
            raise _fail(
                source,
                f"{where}: field 'segmentation.size'",
                f"{size} differs from the image's [height, width] [{height}, {width}]",
            )
        try:  # counts: a string or non-negative integers covering the image
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
    progress: Progress | None = None,
) -> ImportReport:
    """Add the images, categories and annotations of a COCO file (or dict) to ``document``.

    ``image_root``: the project folder; COCO images not yet in the document are added when their file is
    there (size checked against the file) and otherwise added as missing and reported (see the module
    doc for how images and categories are matched). Nothing is added when the file is malformed
    (FormatError). ``progress(done, total)``: called as the annotations are checked, then added (twice
    the number of annotations in all); an exception it raises stops the import (what was
    added until then stays: the app imports into a copy of its document).
    """
    name = str(source) if not isinstance(source, dict) else "(dict)"
    data = source if isinstance(source, dict) else read_coco(source)
    if not isinstance(data, dict):
        raise FormatError(f"COCO file {name}: the top level must be a JSON object")
    raw_images = _field(data, "images", list, name, "top level")
    raw_categories = _field(data, "categories", list, name, "top level")
    raw_annotations = _field(data, "annotations", list, name, "top level")
    root = None if image_root is None else Path(image_root)
    images = _check_images(raw_images, root, name)
    categories = _check_categories(raw_categories, name)
    report = ImportReport()
    counter = ProgressCounter(progress, 2 * len(raw_annotations))
    parsed = _check_annotations(raw_annotations, images, categories, name, report, counter)
    image_map = _add_images(document, images, report, root)
    category_map = _add_categories(document, categories, report)
    counter.skip(len(raw_annotations) - len(parsed))  # annotations without a mask add nothing
    _add_instances(document, parsed, image_map, category_map, report, counter)
    counter.finish()
    return report


def _first_use(position: dict, entry_id: int | str, n: int, kind: str, source: str) -> None:
    """Note that entry ``n`` of the ``kind`` list has id ``entry_id``; FormatError when an earlier entry
    of that list has it (its annotations would go to the wrong image or category)."""
    entries = "categories" if kind == "category" else f"{kind}s"
    if entry_id in position:
        raise _fail(
            source,
            f"{entries}[{n}]",
            f"{kind} id {entry_id!r} is used twice ({entries}[{position[entry_id]}] and {entries}[{n}])",
        )
    position[entry_id] = n


def _check_images(raw_images: list, root: Path | None, source: str) -> dict[int, tuple[dict, str | None]]:
    """The images by COCO id: each entry and its project-relative path (None: outside the folder)."""
    images: dict[int, tuple[dict, str | None]] = {}
    position: dict[int, int] = {}
    by_path: dict[str, int] = {}
    for n, raw in enumerate(raw_images):
        where = f"images[{n}]"
        image_id = _field(raw, "id", int, source, where)
        _first_use(position, image_id, n, "image", source)
        for key in ("width", "height"):
            if _field(raw, key, int, source, where) <= 0:
                raise _fail(source, where, f"field '{key}' must be positive")
        file_name = _field(raw, "file_name", str, source, where)
        try:
            path = relative_image_path(file_name, root)
        except ValueError:
            raise _fail(source, f"{where}: field 'file_name'", f"{file_name!r} names no file") from None
        if path is not None and path in by_path:
            raise _fail(
                source,
                f"{where}: field 'file_name'",
                f"{file_name!r} is also the file of image {by_path[path]}",
            )
        if path is not None:
            by_path[path] = image_id
        images[image_id] = (raw, path)
    return images


def _check_categories(raw_categories: list, source: str) -> dict[int, dict]:
    categories: dict[int, dict] = {}
    position: dict[int, int] = {}
    for n, raw in enumerate(raw_categories):
        where = f"categories[{n}]"
        category_id = _field(raw, "id", int, source, where)
        _first_use(position, category_id, n, "category", source)
        if not _field(raw, "name", str, source, where).strip():
            raise _fail(source, f"{where}: field 'name'", "must not be empty")
        categories[category_id] = raw
    return categories


def _check_annotations(
    raw_annotations: list,
    images: dict[int, tuple[dict, str | None]],
    categories: dict[int, dict],
    source: str,
    report: ImportReport,
    counter: ProgressCounter,
) -> list[tuple[dict, dict]]:
    """The annotations to add with their RLE; those without a mask are left out and reported."""
    parsed: list[tuple[dict, dict]] = []
    position: dict[int | str, int] = {}
    for n, raw in enumerate(raw_annotations):
        counter.step()
        where = f"annotations[{n}]"
        annotation_id = _field(raw, "id", (int, str), source, where)
        _first_use(position, annotation_id, n, "annotation", source)
        where = f"annotation id {annotation_id} (annotations[{n}])"
        image_id = _field(raw, "image_id", int, source, where)
        category_id = _field(raw, "category_id", int, source, where)
        if image_id not in images:
            raise _fail(source, f"{where}: field 'image_id'", f"image {image_id} is not in 'images'")
        if category_id not in categories:
            raise _fail(
                source, f"{where}: field 'category_id'", f"category {category_id} is not in 'categories'"
            )
        if raw.get("iscrowd", 0) not in (0, 1, True, False):
            raise _fail(source, f"{where}: field 'iscrowd'", "must be 0 or 1")
        score = raw.get("score")
        if score is not None and not (
            isinstance(score, (int, float)) and not isinstance(score, bool) and 0 <= score <= 1
        ):  # NaN fails the range test too
            raise _fail(
                source, f"{where}: field 'score'", f"must be a number from 0 to 1 or null; got {score!r}"
            )
        rle = _segmentation_rle(raw, images[image_id][0], source, where)
        if rle is None:
            report.skipped.append(
                (f"annotation {annotation_id}", "no segmentation (a box only); not imported")
            )
            continue
        if masks.area(rle) == 0:
            report.skipped.append((f"annotation {annotation_id}", "empty mask; not imported"))
            continue
        parsed.append((raw, rle))
    return parsed


def _claimed_images(document: Document, images: dict[int, tuple[dict, str | None]]) -> dict[int, ImageRecord]:
    """The project image each COCO image finds, by COCO id; a project image goes to one entry at most
    (the one naming its exact path, else the longest name)."""
    finder = ImageFinder(document)
    owner: dict[int, tuple[tuple[bool, int], int]] = {}  # project image id -> (claim, COCO id)
    records: dict[int, ImageRecord] = {}
    for coco_id, (_, path) in images.items():
        record = None if path is None else finder.find(path)
        if record is None:
            continue
        claim = (record.path == path, len(path))
        if record.id not in owner or claim > owner[record.id][0]:
            owner[record.id] = (claim, coco_id)
            records[record.id] = record
    return {coco_id: records[record_id] for record_id, (_, coco_id) in owner.items()}


def _add_images(
    document: Document, images: dict[int, tuple[dict, str | None]], report: ImportReport, root: Path | None
) -> dict[int, int | None]:
    """Find or add the image of each COCO image; returns the project image id by COCO id (None: its
    annotations are skipped)."""
    claimed = _claimed_images(document, images)
    image_map: dict[int, int | None] = {}
    for coco_id, (raw, relative) in images.items():
        size = (raw["width"], raw["height"])
        status = image_status(raw.get("status"))  # unknown ones: none from the file
        record = claimed.get(coco_id)
        image_map[coco_id] = None
        if relative is None:
            report.skipped.append(
                (f"image {raw['file_name']}", "outside the project folder; its annotations skipped")
            )
            continue
        if record is None:
            file = None if root is None else root / relative
            if file is not None and file.is_file():
                try:
                    size = image_io.read_image_size(file)
                except ImageLoadError as exc:
                    report.skipped.append(
                        (f"image {relative}", f"unreadable ({exc}); its annotations skipped")
                    )
                    continue
            else:
                report.missing_images.append(relative)
            if size != (raw["width"], raw["height"]):
                report.skipped.append(
                    (
                        f"image {relative}",
                        f"the file is {size[0]}x{size[1]} but the COCO file says "
                        f"{raw['width']}x{raw['height']}; its annotations skipped",
                    )
                )
                continue
            record = ImageRecord(
                document.allocate_id("image"),
                relative,
                raw["width"],
                raw["height"],
                status or ImageStatus.UNLABELLED,
                coco_id,
            )
            document.add_image(record)
            report.images_added.append(record)
        elif (record.width, record.height) != size:
            report.skipped.append(
                (
                    f"image {record.path}",
                    f"the project has it as {record.width}x{record.height} but the COCO "
                    f"file says {size[0]}x{size[1]}; its annotations skipped",
                )
            )
            continue
        else:
            changes: dict = {}
            if status is not None and record.status == ImageStatus.UNLABELLED:
                changes["status"] = status
            if record.coco_id is None:
                changes["coco_id"] = coco_id
            if changes:
                document.replace_image(dataclasses.replace(record, **changes))
        image_map[coco_id] = record.id
    return image_map


def _add_categories(document: Document, categories: dict[int, dict], report: ImportReport) -> dict[int, int]:
    """Find or add every category of the file; returns the project category id by COCO id."""
    exported_before = export_category_ids(document.categories)
    first_new = document.next_ids["category"]  # at least 1: ids below it (0 too) cannot be kept
    new: dict[str, int] = {}  # name -> COCO id of the file's first category of a name the project lacks
    for coco_id, raw in categories.items():
        if document.category_by_name(raw["name"]) is None:
            new.setdefault(raw["name"], coco_id)
    kept = [coco_id for coco_id in new.values() if coco_id >= first_new]
    if kept:  # fresh ids come after the kept ones
        document.restore_next_ids({"category": max(kept) + 1})
    category_map: dict[int, int] = {}
    for coco_id, raw in categories.items():
        category = document.category_by_name(raw["name"])
        if category is None:
            colour = raw.get("color")
            if not isinstance(colour, str) or not COLOUR_PATTERN.match(colour):
                colour = document.colour_for_new_category()
            category_id = coco_id if coco_id >= first_new else document.allocate_id("category")
            supercategory = str(raw.get("supercategory") or "")
            category = Category(category_id, raw["name"], colour, supercategory, coco_id)
            document.add_category(category)
            report.categories_added.append(category.name)
        elif category.coco_id is None:
            document.replace_category(dataclasses.replace(category, coco_id=coco_id))
        category_map[coco_id] = category.id
    exported = export_category_ids(document.categories)
    for coco_id, raw in categories.items():
        if exported[category_map[coco_id]] != coco_id:
            report.category_ids_changed.append((raw["name"], coco_id, exported[category_map[coco_id]]))
    for category in document.categories:
        before = exported_before.get(category.id)
        if before is not None and before != exported[category.id]:
            report.category_ids_moved.append((category.name, before, exported[category.id]))
    return category_map


def _add_instances(
    document: Document,
    parsed: list[tuple[dict, dict]],
    image_map: dict[int, int | None],
    category_map: dict[int, int],
    report: ImportReport,
    counter: ProgressCounter,
) -> None:
    present = PresentInstances(document)
    for raw, rle in parsed:
        counter.step()
        image_id = image_map[raw["image_id"]]
        if image_id is None:
            continue
        category_id = category_map[raw["category_id"]]
        found = present.find(image_id, category_id, rle)
        if found is not None:
            if found == "identical":
                report.duplicates += 1
            else:
                report.same_objects += 1
            continue
        source, score = source_and_score(raw.get("source"), raw.get("score"))
        attributes = raw.get("attributes") if isinstance(raw.get("attributes"), dict) else {}
        instance = Instance.from_rle(
            document.allocate_id("instance"),
            image_id,
            category_id,
            rle,
            score=score,
            source=source,
            iscrowd=bool(raw.get("iscrowd", 0)),
            attributes=attributes,
        )
        document.add_instance(instance)
        present.added(instance)
        report.instances_added += 1
