"""Where finetuning images and their masks come from: SA-1B folders and tar shards, COCO instances.

A *source* is a list of images; ``read(index)`` returns an :class:`ImageRecord` with the RGB image and its
annotations (dicts holding at least ``segmentation``: a COCO RLE or COCO polygons, and ``area``; SA-1B
adds ``stability_score`` and ``predicted_iou``). Masks are not decoded here: the dataset decodes only
the ones it samples, after :func:`annotation_problem` has checked them (cheaply: structure, polygon length
and finiteness, RLE size and run total, without decoding), so a bad annotation is skipped and reported
instead of failing a run partway through.

- :class:`Sa1bFolder`: ``sa_<id>.jpg`` + ``sa_<id>.json`` pairs anywhere under a folder (SA-1B extracted).
- :class:`Sa1bTar`: one or more ``sa_NNNNNN.tar`` shards, read in place (no extraction): the archive's
  headers are indexed once and every member is read with one seek.
- :class:`CocoInstances`: a COCO instances JSON (RLE or polygon segmentations, crowd regions skipped) and
  the image folder its ``file_name`` fields are relative to; the studio's COCO exports are of this kind.
  Its annotations are checked when the file is indexed (the whole file is read then anyway); SA-1B keeps
  one JSON per image, read with the image, so its annotations are checked when they are sampled.
"""

from __future__ import annotations

import json
import math
import os
import tarfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from efficientsam_studio.annotations import masks as mask_ops
from efficientsam_studio.annotations.images import load_image
from efficientsam_studio.errors import ImageLoadError, StudioError

SA1B_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class DatasetError(StudioError):
    """A finetuning dataset is missing, empty or not in the layout its format needs."""


@dataclass
class ImageRecord:
    """One image: ``image`` RGB uint8 ``(H, W, 3)``, its ``annotations`` and a ``name`` for messages.

    ``extra`` may hold ``annotation_file`` (where the annotations are, when not at ``name``), ``image_id``
    (COCO) and ``invalid_annotations`` (annotations of the image left out when the source was indexed).
    """

    image: np.ndarray
    annotations: list[dict]
    name: str
    extra: dict = field(default_factory=dict)


class ImageSource(Protocol):
    """A sized, indexable collection of :class:`ImageRecord`."""

    def __len__(self) -> int: ...

    def read(self, index: int) -> ImageRecord: ...


def decode_segmentation(segmentation: dict | list, height: int, width: int, where: str = "") -> np.ndarray:
    """A COCO segmentation (RLE dict, compressed or not, or a list of polygons) as bool ``(H, W)``."""
    if isinstance(segmentation, dict):
        size = [int(v) for v in segmentation.get("size", ())]
        if size != [height, width]:
            raise DatasetError(
                f"{where}: an RLE mask has size {size} but its image is {[height, width]} (H, W)"
            )
        return mask_ops.decode(segmentation)
    if isinstance(segmentation, list):
        return mask_ops.polygons_to_mask(segmentation, height, width)
    raise DatasetError(f"{where}: 'segmentation' must be a COCO RLE dict or a list of polygons")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def segmentation_problem(segmentation: object, height: int, width: int) -> str | None:
    """Why ``segmentation`` is not a mask of an ``(height, width)`` image, or None when it is one.

    An RLE dict must pass :func:`~efficientsam_studio.annotations.masks.check_rle` (``size`` is the
    image's, the runs are non-negative integers covering ``height * width`` pixels); a polygon list must
    hold lists of an even number (at least 6) of numbers that pass
    :func:`~efficientsam_studio.annotations.masks.check_polygon` (finite, near the image). Nothing is
    decoded, so this is cheap enough to run on every annotation of a dataset.
    """
    if isinstance(segmentation, dict):
        try:
            mask_ops.check_rle(segmentation, height, width)
        except (ValueError, TypeError) as exc:
            return f"invalid RLE: {exc}"
        return None
    if isinstance(segmentation, list):
        if not segmentation:
            return "an empty polygon list"
        for ring in segmentation:
            if not isinstance(ring, list) or not all(_is_number(v) for v in ring):
                return "a polygon is not a list of numbers"
            if len(ring) % 2 or len(ring) < 6:
                return f"a polygon has {len(ring)} coordinates; it needs an even number, at least 6"
            try:
                mask_ops.check_polygon(ring, height, width)
            except ValueError as exc:
                return f"invalid polygon: {exc}"
        return None
    if segmentation is None:
        return "no 'segmentation'"
    return f"'segmentation' is a {type(segmentation).__name__}, not a COCO RLE dict or a list of polygons"


def segmentation_area(segmentation: dict | list, height: int, width: int) -> float:
    """Foreground pixels of a segmentation that passed :func:`segmentation_problem` (for annotations
    without the optional ``area`` field)."""
    if isinstance(segmentation, dict):
        return float(mask_ops.area(segmentation))
    return float(mask_ops.area(mask_ops.polygons_to_rle(segmentation, height, width)))


SCORE_FIELDS = ("area", "stability_score", "predicted_iou")


def record_problem(annotation: object) -> str | None:
    """Why ``annotation`` is not an annotation record at all (not a JSON object, no ``segmentation``, a
    non-numeric ``area`` / ``stability_score`` / ``predicted_iou``), or None; see
    :func:`annotation_problem` for the segmentation itself."""
    if not isinstance(annotation, dict):
        return f"a {type(annotation).__name__}, not a JSON object"
    if annotation.get("segmentation") is None:
        return "no 'segmentation'"
    for key in SCORE_FIELDS:
        if key in annotation and not (_is_number(annotation[key]) and math.isfinite(annotation[key])):
            return f"{key!r} is {annotation[key]!r}, not a finite number"
    return None


def annotation_problem(annotation: object, height: int, width: int) -> str | None:
    """Why ``annotation`` cannot be trained on or scored on an ``(height, width)`` image, or None:
    :func:`record_problem`, then :func:`segmentation_problem`."""
    return record_problem(annotation) or segmentation_problem(annotation["segmentation"], height, width)


def annotation_name(annotation: object, position: int) -> str:
    """``"annotation <id>"`` for messages (``"annotation #<position>"`` when it has no id)."""
    if isinstance(annotation, dict) and "id" in annotation:
        return f"annotation {annotation['id']}"
    return f"annotation #{position}"


def report_invalid(where: str, name: str, problem: str) -> None:
    """Warn that one annotation is skipped: ``"<file>: <annotation id>: <problem>; skipped"``."""
    warnings.warn(f"{where}: {name}: {problem}; skipped", stacklevel=3)


def _decode_jpeg(data: bytes, where: str) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageLoadError(f"{where}: not a decodable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _sa1b_annotations(document: dict, where: str) -> list[dict]:
    annotations = document.get("annotations")
    if not isinstance(annotations, list):
        raise DatasetError(f"{where}: an SA-1B JSON needs an 'annotations' list")
    return annotations


class Sa1bFolder:
    """Extracted SA-1B: every ``sa_<id>.json`` under ``root`` with its image (same stem, .jpg/.jpeg/.png)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(
                f"{self.root}: not a folder; give the folder holding sa_<id>.jpg + sa_<id>.json"
            )
        self.items: list[tuple[Path, Path]] = []
        for json_path in sorted(self.root.rglob("*.json")):
            for suffix in SA1B_IMAGE_SUFFIXES:
                image_path = json_path.with_suffix(suffix)
                if image_path.exists():
                    self.items.append((image_path, json_path))
                    break
        if not self.items:
            raise DatasetError(f"{self.root}: no image + JSON pairs (sa_<id>.jpg with sa_<id>.json) found")

    def __len__(self) -> int:
        return len(self.items)

    def read(self, index: int) -> ImageRecord:
        image_path, json_path = self.items[index]
        try:
            document = json.loads(json_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{json_path}: unreadable SA-1B JSON ({exc})") from exc
        return ImageRecord(
            load_image(image_path),
            _sa1b_annotations(document, str(json_path)),
            str(image_path),
            {"annotation_file": str(json_path)},
        )


@dataclass(frozen=True)
class _Member:
    shard: int
    offset: int
    size: int


class Sa1bTar:
    """SA-1B tar shards read in place. ``paths``: tar files, or folders whose ``*.tar`` files are used.

    Member names may carry directories or a leading ``./``; images and JSONs pair by file stem.
    """

    def __init__(self, paths: str | Path | Sequence[str | Path]) -> None:
        given = [Path(paths)] if isinstance(paths, str | os.PathLike) else [Path(p) for p in paths]
        shards: list[Path] = []
        for path in given:
            if path.is_dir():
                shards.extend(sorted(path.glob("*.tar")))
            elif path.is_file():
                shards.append(path)
            else:
                raise DatasetError(f"{path}: no such tar shard or folder")
        if not shards:
            raise DatasetError(f"{', '.join(map(str, given))}: no .tar shards found")
        self.shards = shards
        self.items: list[tuple[str, _Member, _Member]] = []
        for shard_index, shard in enumerate(shards):
            self.items.extend(self._index(shard_index, shard))
        if not self.items:
            raise DatasetError(
                f"{', '.join(map(str, shards))}: the shards hold no sa_<id>.jpg + sa_<id>.json pairs"
            )

    @staticmethod
    def _index(shard_index: int, shard: Path) -> list[tuple[str, _Member, _Member]]:
        images: dict[str, _Member] = {}
        jsons: dict[str, _Member] = {}
        try:
            with tarfile.open(shard, "r:") as archive:
                for member in archive:
                    if not member.isfile():
                        continue
                    base = os.path.basename(member.name)
                    stem, suffix = os.path.splitext(base)
                    entry = _Member(shard_index, member.offset_data, member.size)
                    if suffix.lower() == ".json":
                        jsons[stem] = entry
                    elif suffix.lower() in SA1B_IMAGE_SUFFIXES:
                        images[stem] = entry
        except (OSError, tarfile.TarError) as exc:
            raise DatasetError(f"{shard}: not a readable uncompressed tar archive ({exc})") from exc
        return [
            (f"{shard.name}:{stem}", images[stem], jsons[stem]) for stem in sorted(images) if stem in jsons
        ]

    def __len__(self) -> int:
        return len(self.items)

    def _read_member(self, member: _Member) -> bytes:
        with open(self.shards[member.shard], "rb") as handle:
            handle.seek(member.offset)
            data = handle.read(member.size)
        if len(data) != member.size:
            raise DatasetError(f"{self.shards[member.shard]}: truncated member at byte {member.offset}")
        return data

    def read(self, index: int) -> ImageRecord:
        name, image_member, json_member = self.items[index]
        try:
            document = json.loads(self._read_member(json_member))
        except ValueError as exc:
            raise DatasetError(f"{name}: unreadable SA-1B JSON ({exc})") from exc
        image = _decode_jpeg(self._read_member(image_member), name)
        return ImageRecord(image, _sa1b_annotations(document, name), name)


class CocoInstances:
    """COCO instance annotations (``annotations_file``) with images under ``images_dir``.

    Crowd regions (``iscrowd`` 1) are not used as training masks. Images without annotations are kept
    (evaluation scores nothing on them; the finetuning dataset uses the next image with a usable mask
    instead). Categories are ignored: segment-anything is class-agnostic.

    Every annotation is checked when the file is read (:func:`annotation_problem`, against the image's
    ``height`` and ``width`` when the image entry gives them, and its ``image_id`` against the images):
    an invalid one is left out and reported by a warning naming the file and the annotation id;
    ``invalid`` lists these messages and a record's ``extra["invalid_annotations"]`` counts those of its
    image. A file with no valid annotation at all is a DatasetError. An annotation without the optional
    ``area`` gets it from its segmentation here, once, when the image entry gives the size.
    """

    def __init__(
        self, annotations_file: str | Path, images_dir: str | Path, include_crowd: bool = False
    ) -> None:
        self.annotations_file = Path(annotations_file)
        self.images_dir = Path(images_dir)
        try:
            coco = json.loads(self.annotations_file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise DatasetError(f"{self.annotations_file}: no such COCO annotations file") from exc
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{self.annotations_file}: unreadable COCO JSON ({exc})") from exc
        if (
            not isinstance(coco, dict)
            or not isinstance(coco.get("images"), list)
            or not isinstance(coco.get("annotations"), list)
        ):
            raise DatasetError(
                f"{self.annotations_file}: a COCO instances file needs 'images' and 'annotations' lists"
            )
        if not self.images_dir.is_dir():
            raise DatasetError(
                f"{self.images_dir}: the COCO image folder does not exist (give it with --images)"
            )
        self.images: list[dict] = [
            image
            for image in coco["images"]
            if isinstance(image, dict)
            and isinstance(image.get("id"), int | str)
            and isinstance(image.get("file_name"), str)
        ]
        if not self.images:
            raise DatasetError(f"{self.annotations_file}: the COCO file lists no images")
        self.invalid: list[str] = []
        self.rejected: dict[int | str, int] = {}
        self.annotations = self._index_annotations(coco["annotations"], include_crowd)
        first = self.images_dir / self.images[0]["file_name"]
        if not first.exists():
            raise DatasetError(
                f"{first}: the first image of {self.annotations_file.name} is not under "
                f"{self.images_dir}; is --images the folder the file names are relative to?"
            )

    def _index_annotations(self, annotations: list, include_crowd: bool) -> dict[int | str, list[dict]]:
        """The valid annotations of every image; invalid ones are reported and counted."""
        by_image: dict[int | str, list[dict]] = {image["id"]: [] for image in self.images}
        sizes = {image["id"]: (image.get("height"), image.get("width")) for image in self.images}
        where = str(self.annotations_file)
        used = 0
        for position, annotation in enumerate(annotations):
            image_id = None
            problem = None
            if isinstance(annotation, dict):
                if annotation.get("iscrowd", 0) and not include_crowd:
                    continue
                image_id = annotation.get("image_id")
                if not isinstance(image_id, int | float | str) or image_id not in by_image:
                    problem = f"its image_id {image_id!r} is not among the file's images"
                    image_id = None
            used += 1
            problem = problem or record_problem(annotation)
            if problem is None:
                height, width = sizes[image_id]
                if _is_number(height) and _is_number(width):
                    problem = segmentation_problem(annotation["segmentation"], int(height), int(width))
            if problem is None:
                if "area" not in annotation and _is_number(height) and _is_number(width):
                    area = segmentation_area(annotation["segmentation"], int(height), int(width))
                    annotation = {**annotation, "area": area}
                by_image[image_id].append(annotation)
                continue
            name = annotation_name(annotation, position)
            self.invalid.append(f"{where}: {name}: {problem}")
            report_invalid(where, name, problem)
            if image_id is not None:
                self.rejected[image_id] = self.rejected.get(image_id, 0) + 1
        if not any(by_image.values()):
            if self.invalid:
                raise DatasetError(
                    f"{where}: none of its {used} annotations is valid (each is reported above); "
                    "there is nothing to use"
                )
            raise DatasetError(f"{where}: the COCO file has no (non-crowd) annotations of its images")
        return by_image

    def __len__(self) -> int:
        return len(self.images)

    def read(self, index: int) -> ImageRecord:
        info = self.images[index]
        path = self.images_dir / info["file_name"]
        extra = {"image_id": info["id"], "invalid_annotations": self.rejected.get(info["id"], 0)}
        return ImageRecord(load_image(path), self.annotations[info["id"]], str(path), extra)
