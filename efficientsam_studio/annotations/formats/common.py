"""What the format modules share: their reports, the mask -> polygon decision and how an import finds
the project image a file names."""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Literal

import numpy as np

from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.document import SOURCES, Document, ImageRecord, ImageStatus, Instance

PolygonPolicy = Literal["auto", "always", "never"]
Progress = Callable[[int, int], None]
"""``progress(done, total)``: called by exporters after each image and by importers as they go (for a
progress bar); an exception it raises stops the export or import."""
POLYGON_POLICIES: tuple[str, ...] = ("auto", "always", "never")


@dataclass
class ExportReport:
    """What an export wrote. ``skipped``: ``(instance id, reason)``; ``holes_lost`` / ``parts_split``:
    ids of instances whose holes could not be written / whose parts became separate polygons;
    ``renamed``: ``(image path, output name)`` of images written under another name than their stem
    because another image shares it (see :func:`output_names`); ``notes``: what the user must know to
    use the output (one sentence each)."""

    files: list[Path] = field(default_factory=list)
    images: int = 0
    instances: int = 0
    polygons: int = 0
    rle: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)
    holes_lost: list[int] = field(default_factory=list)
    parts_split: list[int] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One paragraph for a status bar or the command line."""
        text = (
            f"{self.instances} instances on {self.images} images "
            f"({self.polygons} as polygons, {self.rle} as masks), "
            f"{len(self.files)} file{'' if len(self.files) == 1 else 's'}"
        )
        if self.skipped:
            listed = "; ".join(f"instance {i}: {why}" for i, why in self.skipped[:5])
            more = " ..." if len(self.skipped) > 5 else ""
            text += f"; {len(self.skipped)} skipped ({listed}{more})"
        if self.holes_lost:
            text += (
                f"; holes could not be written for {len(self.holes_lost)} instances (the format has no holes)"
            )
        if self.renamed:
            listed = ", ".join(f"{path} -> {name}" for path, name in self.renamed[:5])
            more = " ..." if len(self.renamed) > 5 else ""
            text += (
                f"; outputs of {len(self.renamed)} images renamed, as another image has the same name "
                f"without extension ({listed}{more})"
            )
        for note in self.notes:
            text += f"\nnote: {note}"
        return text


@dataclass
class ImportReport:
    """What an import added. ``duplicates``: masks identical to an instance already there (same image and
    category); ``same_objects``: masks recognised as an instance already there whose outline differs a
    little, as a simplified polygon's does (see :mod:`.matching`); neither is added again.
    ``category_ids_changed``: ``(name, id in the file, id a COCO export writes)`` of the file's categories
    that a COCO export writes under another id than the file's; ``category_ids_moved``: ``(name, id
    before, id now)`` of the categories already in the project whose id in a COCO export the import
    changed (they took the file's ids, or gave way to them); ``skipped``: ``(annotation id or file,
    reason)``; ``missing_images``: image files named by the import that are not in the project folder
    (their annotations are kept)."""

    images_added: list[ImageRecord] = field(default_factory=list)
    categories_added: list[str] = field(default_factory=list)
    instances_added: int = 0
    duplicates: int = 0
    same_objects: int = 0
    category_ids_changed: list[tuple[str, int, int]] = field(default_factory=list)
    category_ids_moved: list[tuple[str, int, int]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    missing_images: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One paragraph for a status bar or the command line."""
        text = (
            f"{self.instances_added} instances added, {len(self.images_added)} images added, "
            f"{len(self.categories_added)} categories added"
        )
        if self.duplicates:
            text += f", {self.duplicates} identical instances already present (not added again)"
        if self.same_objects:
            text += (
                f", {self.same_objects} instances recognised as objects already present with a slightly "
                "different outline (not added again)"
            )
        if self.category_ids_changed:
            text += (
                f"\ncategory ids not kept (file -> COCO export): {_id_changes(self.category_ids_changed)}. "
                "A category keeps the COCO id of the file it first came from, and two categories cannot "
                "share an id; code that orders classes by id may order them differently"
            )
        if self.category_ids_moved:
            text += (
                "\nCOCO export ids of categories already in the project changed (before -> now): "
                f"{_id_changes(self.category_ids_moved)}. A category takes its id in the COCO file it came "
                "from, and one whose id another category takes moves to a free id"
            )
        if self.skipped:
            text += f"; {len(self.skipped)} skipped:\n" + "\n".join(
                f"  {what}: {why}" for what, why in self.skipped[:20]
            )
            if len(self.skipped) > 20:
                text += f"\n  ... and {len(self.skipped) - 20} more"
        if self.missing_images:
            listed = ", ".join(self.missing_images[:10]) + (" ..." if len(self.missing_images) > 10 else "")
            text += (
                f"\n{len(self.missing_images)} images are not in the project folder "
                f"(kept, listed as missing): {listed}"
            )
        return text


def _id_changes(changes: list[tuple[str, int, int]]) -> str:
    listed = ", ".join(f"{name!r} {old} -> {new}" for name, old, new in changes[:10])
    return listed + (" ..." if len(changes) > 10 else "")


def check_policy(policy: str, tolerance: float) -> None:
    """Raise ValueError for an unknown polygon policy or a negative tolerance."""
    if policy not in POLYGON_POLICIES:
        raise ValueError(f"polygons must be one of {POLYGON_POLICIES}; got {policy!r}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 pixels; got {tolerance}")


def polygons_for(
    instance: Instance, policy: PolygonPolicy, tolerance: float, report: ExportReport
) -> list[masks.Ring] | None:
    """Outer polygon rings to write for an instance, or None to write its mask (RLE) instead.

    ``auto``: polygons only for a single part without holes (and not crowd) whose polygon is not empty;
    ``always``: one ring per part, holes dropped (recorded in ``report.holes_lost``); ``never``: None.
    The mask is traced within its bbox (:func:`~..masks.decode_crop`) and the rings moved to image
    coordinates, which gives the same rings as tracing the whole frame.
    """
    if policy == "never" or (policy == "auto" and instance.iscrowd):
        return None
    crop, x, y = masks.decode_crop(instance.rle)
    parts = masks.part_count(crop) if crop.size else 0
    holes = masks.has_holes(crop) if crop.size else False
    if policy == "auto" and (parts > 1 or holes):
        return None
    offset = np.array([x, y], dtype=np.float64)
    rings = (
        [
            masks.Ring(ring.points + offset, ring.hole, ring.parent)
            for ring in masks.mask_to_polygons(crop, "all", tolerance)
        ]
        if crop.size
        else []
    )
    height, width = (int(v) for v in instance.rle["size"])
    if policy == "auto" and masks.area(masks.polygons_to_rle(rings, height, width)) == 0:
        return None
    if holes:
        report.holes_lost.append(instance.id)
    if parts > 1:
        report.parts_split.append(instance.id)
    return rings


def exportable_instances(document: Document, image_id: int, report: ExportReport) -> list[Instance]:
    """The instances of an image in z-order, leaving out (and reporting) empty masks, which documents
    built by the app never hold but a hand-edited project file might."""
    kept = []
    for instance in document.instances_of(image_id):
        if instance.area <= 0 or masks.area(instance.rle) == 0:
            report.skipped.append((instance.id, "empty mask; not exported"))
        else:
            kept.append(instance)
    return kept


def images_to_export(document: Document, image_ids: list[int] | None) -> list[ImageRecord]:
    """The images named by ``image_ids``; by default the labelled ones: images with at least one
    instance or marked done (a done image without instances is a true negative)."""
    if image_ids is not None:
        return [document.image(i) for i in image_ids]
    return [
        image
        for image in document.images
        if image.status == ImageStatus.DONE or document.instances_of(image.id)
    ]


class ProgressCounter:
    """Counts the steps of an import for ``progress(done, total)`` (None: counts only), calling it every
    :attr:`EVERY` steps and once at the end rather than for each of many small steps."""

    EVERY = 64

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def step(self, count: int = 1) -> None:
        before, self.done = self.done, min(self.total, self.done + count)
        if self.progress is not None and self.done // self.EVERY != before // self.EVERY:
            self.progress(self.done, self.total)

    def skip(self, count: int) -> None:
        """Count ``count`` steps that need no work (as :meth:`step`)."""
        if count > 0:
            self.step(count)

    def finish(self) -> None:
        """The last call: ``progress(total, total)``."""
        self.done = self.total
        if self.progress is not None:
            self.progress(self.total, self.total)


def with_progress(images: Sequence[ImageRecord], progress: Progress | None) -> Iterator[ImageRecord]:
    """Yield ``images``, calling ``progress(done, total)`` after each one (when given)."""
    total = len(images)
    for done, image in enumerate(images, start=1):
        yield image
        if progress is not None:
            progress(done, total)


def _stem(image: ImageRecord) -> str:
    return PurePosixPath(image.path).with_suffix("").as_posix()


def shared_stems(images: Sequence[ImageRecord]) -> list[list[ImageRecord]]:
    """Groups of images whose relative paths without suffix are the same, ignoring case as the file
    systems of Windows and macOS do (``a/x.png`` and ``a/X.jpg``); in the order of ``images``."""
    groups: dict[str, list[ImageRecord]] = defaultdict(list)
    for image in images:
        groups[_stem(image).casefold()].append(image)
    return [group for group in groups.values() if len(group) > 1]


def output_names(images: Sequence[ImageRecord], report: ExportReport) -> dict[int, str]:
    """The name (relative path without suffix) under which each image's output files are written, by
    image id: ``sub/x`` for ``sub/x.png``, made distinct where images share a stem.

    Formats that write one file per image named after its stem (labelme, YOLO, PNG masks) would write
    both such images' labels to one file. Every image of a group found by :func:`shared_stems` is named
    ``<stem>_<extension>`` instead (``sub/x_png``, ``sub/x_jpg``; none of them keeps the bare stem, so a
    reader that pairs by stem finds no file rather than the wrong one), with ``_2``, ``_3``... added
    while the name is taken (ignoring case). Renamed images are recorded in ``report.renamed``.
    """
    shared = {image.id for group in shared_stems(images) for image in group}
    taken = {_stem(image).casefold() for image in images}
    names: dict[int, str] = {}
    for image in images:
        stem = _stem(image)
        if image.id not in shared:
            names[image.id] = stem
            continue
        suffix = PurePosixPath(image.path).suffix[1:]
        base = f"{stem}_{suffix}" if suffix else stem
        name, number = base, 1
        while name.casefold() in taken:
            number += 1
            name = f"{base}_{number}"
        taken.add(name.casefold())
        names[image.id] = name
        report.renamed.append((image.path, name))
    return names


# --------------------------------------------------------------------------------------------- import
def source_and_score(source: object, score: float | None) -> tuple[str, float | None]:
    """The ``source`` and ``score`` of an imported instance, decided the same way by every importer.

    ``source`` is the value the file gives (``"ai"`` or ``"manual"``; any other value, or none, counts as
    absent) and ``score`` the already checked number or None. A source the file gives is kept, with the
    score as it is; without one, an instance with a score is an AI mask and one without is manual.
    """
    if source not in SOURCES:
        source = "ai" if score is not None else "manual"
    return str(source), score


def image_status(value: object) -> ImageStatus | None:
    """The status named by ``value`` (``"done"``...), or None for anything else (a status this version
    does not know included)."""
    try:
        return ImageStatus(value) if isinstance(value, str) else None
    except ValueError:
        return None


def relative_image_path(name: str, root: Path | None = None) -> str | None:
    """The project-relative POSIX path under which an import file names an image: backslashes read as
    slashes, ``.`` and ``folder/..`` folded (``a/./b/../x.png`` is ``a/x.png``).

    None for a path outside the project folder ``root``: one that climbs out of it (``../x.png``), or
    an absolute one (``/data/x.png``, ``C:/x.png``) unless it lies inside ``root`` (then it is made
    relative to it). Importers skip and report such images: the project only holds images of its
    folder. ValueError for a name that names no file (empty, ``.``, ``a/..``).
    """
    text = name.replace("\\", "/")
    if text.startswith("/") or PureWindowsPath(text).anchor:
        absolute = Path(text)
        if root is None or not absolute.is_absolute():  # no folder to compare, or another system's path
            return None
        try:
            text = absolute.resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            return None
    relative = posixpath.normpath(text)
    if relative == ".":
        raise ValueError(f"{name!r} names no file")
    if relative == ".." or relative.startswith("../"):
        return None
    return relative


class ImageFinder:
    """Finds the project image that an import file names by a relative path (see :meth:`find`).

    Built once per import from the document as it is before the import adds anything, so lookups take
    constant time and an image added by the import is never taken for another entry of the file.
    """

    def __init__(self, document: Document) -> None:
        self._by_path = {image.path: image for image in document.images}
        self._by_name: dict[str, list[ImageRecord]] = defaultdict(list)
        for image in document.images:
            self._by_name[PurePosixPath(image.path).name].append(image)

    def find(self, path: str) -> ImageRecord | None:
        """The image at exactly ``path``; else the one image whose path ends with ``/`` + ``path`` (the
        file was written from a folder above or below the project's: ``val/x.png`` finds
        ``data/val/x.png``, and a bare ``x.png`` the one ``x.png`` of any folder); else None, also when
        several images end so. A path with folders never finds an image in another folder
        (``val/x.png`` is not ``train/x.png``); the importer adds it as a new image."""
        record = self._by_path.get(path)
        if record is not None:
            return record
        tail = "/" + path
        found = [
            image for image in self._by_name.get(PurePosixPath(path).name, ()) if image.path.endswith(tail)
        ]
        return found[0] if len(found) == 1 else None
