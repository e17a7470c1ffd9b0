"""The document side of batch labelling: which images to label, and landing results as AI instances.

Rules (the same for the command line and the GUI):

- An image counts as *already labelled* when its status is ``done``, ``needs_review`` or ``skipped``, when
  someone is labelling it by hand (``in_progress``), or when it holds instances: AI ones from an earlier
  run, or hand-made ones (drawn, or imported from another tool) whatever its status.
  Already-labelled images are left alone unless ``overwrite``; then their AI instances are replaced.
- Images marked ``done`` have been reviewed: ``overwrite`` alone keeps them too; they are labelled again
  only with ``overwrite`` and ``replace_manual`` (the summary counts them).
- Hand-made instances (source ``manual``: drawn by hand, and AI masks that the user has since edited,
  relabelled or merged) are never removed or changed unless ``replace_manual``, which goes with
  ``overwrite`` only; new AI instances are added on top of them.
- Each result lands as one compound, undoable command (categories created as needed, a name that
  differs only in case taking the existing category; old AI instances removed, new ones added, the
  image marked ``needs_review``; the image and its categories take the COCO ids of its prompts as
  :mod:`.coco_ids` says). If anything
  fails or is interrupted while it is applied, the part already done is undone, so an image is either
  fully labelled or untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from efficientsam_studio.annotations.commands import (
    AddCategory,
    AddInstance,
    Command,
    CompoundCommand,
    RemoveInstances,
    SetImageStatus,
)
from efficientsam_studio.annotations.document import Category, Document, ImageRecord, ImageStatus, Instance
from efficientsam_studio.batch.coco_ids import CategoryIds
from efficientsam_studio.batch.results import ImageResult

LABELLED_STATUSES = (ImageStatus.DONE, ImageStatus.NEEDS_REVIEW, ImageStatus.SKIPPED, ImageStatus.IN_PROGRESS)
"""Statuses that mark an image as already handled (left alone unless ``overwrite``)."""


def skip_reason(
    document: Document, image: ImageRecord, overwrite: bool, replace_manual: bool = False
) -> str | None:
    """Why a run leaves ``image`` alone, or None when it should be labelled (module docstring)."""
    if image.status == ImageStatus.DONE and not (overwrite and replace_manual):
        return "marked done (reviewed); labelled again only with overwrite and replace-manual"
    if overwrite:
        return None
    if image.status in LABELLED_STATUSES:
        return f"already labelled (status {image.status.value}); use overwrite to label again"
    instances = document.instances_of(image.id)
    if any(inst.source == "ai" for inst in instances):
        return "holds AI instances from an earlier run; use overwrite to replace them"
    if instances:
        return (
            "holds hand-made instances (drawn or imported); use overwrite to add AI masks (the hand-made "
            "ones are kept unless replace-manual)"
        )
    return None


@dataclass
class ApplyCounts:
    """What applying one result changed."""

    added: int = 0
    removed_ai: int = 0
    removed_manual: int = 0
    reviewed: bool = False  # the image was marked done before


class _CategoryNames:
    """Category ids by name: the exact name, else the one category whose name differs only in case (a
    prompt file's "dog" labels the project's "Dog", as the app refuses "dog" beside "Dog"; where
    several differ only in case, only exact names match)."""

    def __init__(self, document: Document) -> None:
        self._exact: dict[str, int] = {}
        self._folded: dict[str, int | None] = {}
        for category in document.categories:
            self.add(category.name, category.id)

    def add(self, name: str, category_id: int) -> None:
        self._exact[name] = category_id
        folded = name.casefold()
        self._folded[folded] = None if folded in self._folded else category_id

    def find(self, name: str) -> int | None:
        found = self._exact.get(name)
        return found if found is not None else self._folded.get(name.casefold())


class ApplyResult(CompoundCommand):
    """One image's batch result as a single undoable command (see the module docstring).

    Build it on the thread that owns the document, then ``do()`` it (or push it on an undo stack).
    ``counts`` says what it changes.
    """

    def __init__(
        self,
        document: Document,
        result: ImageResult,
        replace_manual: bool = False,
        category_ids: CategoryIds | None = None,
    ) -> None:
        image = document.image(result.image_id)
        category_ids = category_ids or CategoryIds()
        old: list[Instance] = [
            inst
            for inst in document.instances_of(image.id)
            if inst.source == "ai" or (replace_manual and inst.source == "manual")
        ]
        commands: list[Command] = []
        categories = _CategoryNames(document)
        seen: set[int] = set()  # categories created or given their COCO id by this result
        for mask in result.masks:
            found = categories.find(mask.category)
            coco_id = category_ids.coco_id(mask.category)
            if found is None:
                new_id = category_ids.id_for(document, mask.category)
                add = _AddCategoryInTurn(document, mask.category, new_id, coco_id)
                commands.append(add)
                categories.add(mask.category, add.category.id)
                seen.add(add.category.id)
            elif coco_id is not None and found not in seen:
                seen.add(found)
                if document.category(found).coco_id is None:
                    commands.append(_GiveCocoId(document, found, coco_id))
        if old:
            commands.append(RemoveInstances(document, [inst.id for inst in old]))
        for mask in result.masks:
            instance = Instance.from_rle(
                document.allocate_id("instance"),
                image.id,
                categories.find(mask.category),
                mask.rle,
                score=mask.score,
                source="ai",
                attributes=dict(mask.attributes),
            )
            commands.append(_AddLater(document, instance))
        commands.append(_MarkForReview(document, image, result.coco_id))
        count = len(result.masks)
        super().__init__(f"Batch label {image.path} ({count} mask{'s' if count != 1 else ''})", commands)
        self.counts = ApplyCounts(
            added=len(result.masks),
            removed_ai=sum(1 for inst in old if inst.source == "ai"),
            removed_manual=sum(1 for inst in old if inst.source == "manual"),
            reviewed=image.status == ImageStatus.DONE,
        )

    def do(self) -> None:
        """Apply every part, or none: on any exception (KeyboardInterrupt included) undo what was done."""
        done: list[Command] = []
        try:
            for command in self.commands:
                command.do()
                done.append(command)
        except BaseException:
            for command in reversed(done):
                command.undo()
            raise


class _AddCategoryInTurn(AddCategory):
    """An AddCategory with a chosen id (:class:`~.coco_ids.CategoryIds`) that takes its default colour
    when it is first done, not when it is built: the categories one result creates are built together,
    and each must get the next colour of the palette (:meth:`Document.colour_for_new_category`, as in
    the app), counting those added before it."""

    def __init__(self, document: Document, name: str, category_id: int, coco_id: int | None = None) -> None:
        self.document = document
        self.category = Category(category_id, name, document.colour_for_new_category(), coco_id=coco_id)
        self.text = f"Add category {name}"
        self._coloured = False

    def do(self) -> None:
        if not self._coloured:
            self.category = dataclasses.replace(self.category, colour=self.document.colour_for_new_category())
            self._coloured = True
        super().do()


class _GiveCocoId(Command):
    """Give a category of the project the id its name has in the prompt file as its ``coco_id``, when it
    has none when the command is done; undo takes it away again."""

    def __init__(self, document: Document, category_id: int, coco_id: int) -> None:
        self.document, self.category_id, self.coco_id = document, category_id, coco_id
        self.text = f"Give category {document.category(category_id).name} COCO id {coco_id}"
        self._given = False

    def do(self) -> None:
        category = self.document.category(self.category_id)
        self._given = category.coco_id is None
        if self._given:
            self.document.replace_category(dataclasses.replace(category, coco_id=self.coco_id))

    def undo(self) -> None:
        if self._given:
            category = self.document.category(self.category_id)
            self.document.replace_category(dataclasses.replace(category, coco_id=None))
            self._given = False


class _AddLater(AddInstance):
    """An AddInstance whose category may be created by an earlier command of the same compound."""

    def __init__(self, document: Document, instance: Instance) -> None:
        self.document, self.instance, self.index = document, instance, None
        self.text = "Add AI instance"


class _MarkForReview(SetImageStatus):
    """Mark the image ``needs_review``, and give it ``coco_id`` when it has none."""

    def __init__(self, document: Document, image: ImageRecord, coco_id: int | None) -> None:
        super().__init__(document, image.id, ImageStatus.NEEDS_REVIEW)
        if coco_id is not None and image.coco_id is None:
            self.new = [dataclasses.replace(self.new[0], coco_id=coco_id)]


def apply_result(document: Document, result: ImageResult, replace_manual: bool = False) -> ApplyCounts:
    """Land one image's masks in ``document`` atomically; returns what changed."""
    command = ApplyResult(document, result, replace_manual)
    command.do()
    return command.counts


def images_to_label(
    document: Document, image_ids: Sequence[int] | None, overwrite: bool, replace_manual: bool = False
) -> tuple[list[ImageRecord], list[tuple[ImageRecord, str]]]:
    """Split the run's images (default: all, in project order) into ``(to_label, [(skipped, reason)])``."""
    records = document.images if image_ids is None else [document.image(i) for i in image_ids]
    todo: list[ImageRecord] = []
    skipped: list[tuple[ImageRecord, str]] = []
    for record in records:
        reason = skip_reason(document, record, overwrite, replace_manual)
        if reason is None:
            todo.append(record)
        else:
            skipped.append((record, reason))
    return todo, skipped
