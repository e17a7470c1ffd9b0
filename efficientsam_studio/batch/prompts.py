"""Prompts read from files for batch labelling, and how they are matched to the images of a project.

A prompt file names images by a *key*: a path relative to the image folder (``sub/a.jpg``), a file name
(``a.jpg``), a file stem (``a``, YOLO label files) or a numeric COCO image id (``42``, detections without an
image list). :meth:`PromptSet.match` maps keys to the project's images: exact relative path first, then file
name, then stem (for keys without an extension), then a numeric stem equal to the id (``000000000042.jpg`` for
42). A key that fits several images is an error; keys that fit no image are reported, never guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from efficientsam_studio.annotations.document import ImageRecord
from efficientsam_studio.errors import StudioError

KeyKind = Literal["path", "stem", "id"]


class PromptFileError(StudioError):
    """A prompt file (boxes or points) is missing, malformed or does not fit the project's images."""


@dataclass(frozen=True)
class BoxPrompt:
    """One box to turn into one mask.

    Attributes:
        box: ``(x0, y0, x1, y1)``, ``x0 <= x1`` and ``y0 <= y1``: pixels of the original image, or fractions
            of its width and height when ``normalized`` (YOLO files). It may be a line; one outside the
            image is reported as skipped by the run.
        category: category name the mask gets.
        score: detector confidence, when the file has one.
        origin: where the box came from, for messages (``"dets.json[12]"``, ``"a.txt:3"``).
        image_id: the image's id in the COCO file the box came from (an integer), else None; the
            labelled image keeps it as its ``coco_id`` (:mod:`.coco_ids`).
    """

    box: tuple[float, float, float, float]
    category: str
    score: float | None = None
    origin: str = ""
    normalized: bool = False
    image_id: int | None = None

    def in_pixels(self, width: int, height: int) -> tuple[float, float, float, float]:
        """The box in pixels of a ``width x height`` image, corners in order; not clipped (the engine's
        :func:`~efficientsam_studio.engine.prompts.fit_to_image` fits it to the image)."""
        x0, y0, x1, y1 = self.box
        if self.normalized:
            x0, x1, y0, y1 = x0 * width, x1 * width, y0 * height, y1 * height
        return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


@dataclass(frozen=True)
class PointPrompt:
    """Points that together prompt one object.

    Attributes:
        points: ``((x, y), ...)`` in pixels of the original image.
        labels: ``1`` = positive (on the object), ``0`` = negative (not on it), one per point; negative
            points alone are a valid prompt.
        category: category name the mask gets.
        object_id: the object's id in the file (or the row number when the file has none).
    """

    points: tuple[tuple[float, float], ...]
    labels: tuple[int, ...]
    category: str
    object_id: str = ""
    origin: str = ""


Prompt = BoxPrompt | PointPrompt


@dataclass
class PromptSet:
    """Prompts of a file, grouped by image key.

    Attributes:
        kind: ``"boxes"`` or ``"points"``.
        by_key: prompts per image key, in file order.
        key_kind: what the keys are: ``"path"`` (relative path or file name), ``"stem"`` or ``"id"``.
        categories: category names in the order the file defines or first uses them.
        source: the file or folder read.
        below_min_score: image keys whose boxes were all left out for their scores (see
            :func:`~.prompts_io.read_box_prompts`), with how many each had; they are not in ``by_key``.
        category_ids: the COCO id of each category name, for files that have them (the categories a
            run creates or uses keep them for COCO export: :mod:`.coco_ids`).
    """

    kind: Literal["boxes", "points"]
    by_key: dict[str, list[Prompt]] = field(default_factory=dict)
    key_kind: KeyKind = "path"
    categories: list[str] = field(default_factory=list)
    source: Path | None = None
    below_min_score: dict[str, int] = field(default_factory=dict)
    category_ids: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, prompt: Prompt) -> None:
        self.by_key.setdefault(key, []).append(prompt)
        if prompt.category not in self.categories:
            self.categories.append(prompt.category)

    @property
    def prompt_count(self) -> int:
        return sum(len(v) for v in self.by_key.values())

    def images_below_min_score(self, images: Sequence[ImageRecord]) -> dict[int, int]:
        """Image id -> number of boxes left out, for the images whose boxes all scored too low."""
        keys_by_image, _ = self._keys_by_image(self.below_min_score, images)
        return {
            image_id: sum(self.below_min_score[k] for k in keys) for image_id, keys in keys_by_image.items()
        }

    def match(self, images: Sequence[ImageRecord]) -> tuple[dict[int, list[Prompt]], list[str]]:
        """Prompts per image id, and the keys that fit no image (see the module docstring for the rules).

        Raises:
            PromptFileError: a key fits several images (give relative paths in the file to tell them apart).
        """
        keys_by_image, unmatched = self._keys_by_image(self.by_key, images)
        matched = {
            image_id: [p for key in keys for p in self.by_key[key]]
            for image_id, keys in keys_by_image.items()
        }
        return matched, unmatched

    def keys_naming(self, keys: Iterable[str], paths: Sequence[str]) -> list[str]:
        """The keys among ``keys`` that name one of the files ``paths`` (relative to the image folder) by
        the rules of :meth:`match`; a key that fits several of them counts too. For files that are not
        images of the project, such as unreadable ones, so that their keys are not reported as naming no
        image."""
        candidates = self._lookup([ImageRecord(-1 - n, path, 0, 0) for n, path in enumerate(paths)])
        return [key for key in keys if candidates(key)]

    def _keys_by_image(
        self, keys: Iterable[str], images: Sequence[ImageRecord]
    ) -> tuple[dict[int, list[str]], list[str]]:
        """The image id each key names (keys in their order), and the keys that fit no image."""
        candidates_of = self._lookup(images)
        matched: dict[int, list[str]] = {}
        unmatched: list[str] = []
        for key in keys:
            candidates = candidates_of(key)
            if not candidates:
                unmatched.append(key)
                continue
            if len(candidates) > 1:
                paths = ", ".join(img.path for img in candidates[:4])
                raise PromptFileError(
                    f"{self.source}: image {key!r} fits several images of the project ({paths}); "
                    "name images by their path relative to the image folder"
                )
            matched.setdefault(candidates[0].id, []).append(key)
        return matched, unmatched

    def _lookup(self, images: Sequence[ImageRecord]) -> Callable[[str], list[ImageRecord]]:
        """A function giving the images a key fits (see the module docstring for the rules)."""
        by_path = {img.path: img for img in images}
        by_name: dict[str, list[ImageRecord]] = {}
        by_stem: dict[str, list[ImageRecord]] = {}
        by_number: dict[int, list[ImageRecord]] = {}
        for img in images:
            pure = PurePosixPath(img.path)
            by_name.setdefault(pure.name, []).append(img)
            by_stem.setdefault(pure.stem, []).append(img)
            if pure.stem.isdigit():
                by_number.setdefault(int(pure.stem), []).append(img)

        def candidates(key: str) -> list[ImageRecord]:
            pure = PurePosixPath(key.replace("\\", "/").removeprefix("./"))
            if self.key_kind == "id":
                return by_number.get(int(key), []) if key.isdigit() else []
            if self.key_kind == "path" and pure.as_posix() in by_path:
                return [by_path[pure.as_posix()]]
            if self.key_kind == "path" and pure.suffix:
                return by_name.get(pure.name, [])
            return by_stem.get(pure.name, [])  # a stem, or a path without an extension

        return candidates
