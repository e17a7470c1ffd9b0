"""What the format modules share: their reports and the mask -> polygon decision."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.document import Document, ImageRecord, ImageStatus, Instance

PolygonPolicy = Literal["auto", "always", "never"]
Progress = Callable[[int, int], None]
"""``progress(done, total)``: called by exporters after each image (for a progress bar)."""
POLYGON_POLICIES: tuple[str, ...] = ("auto", "always", "never")


@dataclass
class ExportReport:
    """What an export wrote. ``skipped``: ``(instance id, reason)``; ``holes_lost`` / ``parts_split``:
    ids of instances whose holes could not be written / whose parts became separate polygons."""

    files: list[Path] = field(default_factory=list)
    images: int = 0
    instances: int = 0
    polygons: int = 0
    rle: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)
    holes_lost: list[int] = field(default_factory=list)
    parts_split: list[int] = field(default_factory=list)

    def summary(self) -> str:
        """One paragraph for a status bar or the command line."""
        text = (f"{self.instances} instances on {self.images} images "
                f"({self.polygons} as polygons, {self.rle} as masks), "
                f"{len(self.files)} file{'' if len(self.files) == 1 else 's'}")
        if self.skipped:
            listed = "; ".join(f"instance {i}: {why}" for i, why in self.skipped[:5])
            more = " ..." if len(self.skipped) > 5 else ""
            text += f"; {len(self.skipped)} skipped ({listed}{more})"
        if self.holes_lost:
            text += (f"; holes could not be written for {len(self.holes_lost)} instances "
                     "(the format has no holes)")
        return text


@dataclass
class ImportReport:
    """What an import added. ``skipped``: ``(annotation id or file, reason)``; ``missing_images``: image
    files named by the import that are not in the project folder (their annotations are kept)."""

    images_added: list[ImageRecord] = field(default_factory=list)
    categories_added: list[str] = field(default_factory=list)
    instances_added: int = 0
    duplicates: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    missing_images: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One paragraph for a status bar or the command line."""
        text = (f"{self.instances_added} instances added, {len(self.images_added)} images added, "
                f"{len(self.categories_added)} categories added")
        if self.duplicates:
            text += f", {self.duplicates} identical instances already present (not added again)"
        if self.skipped:
            text += f"; {len(self.skipped)} skipped:\n" + "\n".join(
                f"  {what}: {why}" for what, why in self.skipped[:20])
            if len(self.skipped) > 20:
                text += f"\n  ... and {len(self.skipped) - 20} more"
        if self.missing_images:
            listed = ", ".join(self.missing_images[:10]) + (" ..." if len(self.missing_images) > 10 else "")
            text += (f"\n{len(self.missing_images)} images are not in the project folder "
                     f"(kept, listed as missing): {listed}")
        return text


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
    """
    if policy == "never" or (policy == "auto" and instance.iscrowd):
        return None
    mask = instance.mask()
    parts = masks.part_count(mask)
    holes = masks.has_holes(mask)
    if policy == "auto" and (parts > 1 or holes):
        return None
    rings = masks.mask_to_polygons(mask, "all", tolerance)
    if policy == "auto" and masks.area(masks.polygons_to_rle(rings, *mask.shape)) == 0:
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
    return [image for image in document.images
            if image.status == ImageStatus.DONE or document.instances_of(image.id)]


def with_progress(images: Sequence[ImageRecord], progress: Progress | None) -> Iterator[ImageRecord]:
    """Yield ``images``, calling ``progress(done, total)`` after each one (when given)."""
    total = len(images)
    for done, image in enumerate(images, start=1):
        yield image
        if progress is not None:
            progress(done, total)
