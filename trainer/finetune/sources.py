"""Where finetuning images and their masks come from: SA-1B folders and tar shards, COCO instances.

A *source* is a list of images; ``read(index)`` returns an :class:`ImageRecord` with the RGB image and its
annotations (dicts holding at least ``segmentation``: a COCO RLE or COCO polygons, and ``area``; SA-1B
adds ``stability_score`` and ``predicted_iou``). Masks are not decoded here: the dataset decodes only
the ones it samples.

- :class:`Sa1bFolder`: ``sa_<id>.jpg`` + ``sa_<id>.json`` pairs anywhere under a folder (SA-1B extracted).
- :class:`Sa1bTar`: one or more ``sa_NNNNNN.tar`` shards, read in place (no extraction): the archive's
  headers are indexed once and every member is read with one seek.
- :class:`CocoInstances`: a COCO instances JSON (RLE or polygon segmentations, crowd regions skipped) and
  the image folder its ``file_name`` fields are relative to; the studio's COCO exports are of this kind.
"""

from __future__ import annotations

import json
import os
import tarfile
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
    """One image: ``image`` RGB uint8 ``(H, W, 3)``, its ``annotations`` and a ``name`` for messages."""

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
            load_image(image_path), _sa1b_annotations(document, str(json_path)), str(image_path)
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
    (the dataset gives them no masks). Categories are ignored: segment-anything is class-agnostic.
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
            image for image in coco["images"] if "id" in image and "file_name" in image
        ]
        by_image: dict[int, list[dict]] = {image["id"]: [] for image in self.images}
        for annotation in coco["annotations"]:
            if annotation.get("iscrowd", 0) and not include_crowd:
                continue
            if "segmentation" in annotation and annotation.get("image_id") in by_image:
                by_image[annotation["image_id"]].append(annotation)
        self.annotations = by_image
        if not self.images:
            raise DatasetError(f"{self.annotations_file}: the COCO file lists no images")
        first = self.images_dir / self.images[0]["file_name"]
        if not first.exists():
            raise DatasetError(
                f"{first}: the first image of {self.annotations_file.name} is not under "
                f"{self.images_dir}; is --images the folder the file names are relative to?"
            )

    def __len__(self) -> int:
        return len(self.images)

    def read(self, index: int) -> ImageRecord:
        info = self.images[index]
        path = self.images_dir / info["file_name"]
        return ImageRecord(
            load_image(path), self.annotations[info["id"]], str(path), {"image_id": info["id"]}
        )
