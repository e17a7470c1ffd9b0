"""Undoable edits of a :class:`~efficientsam_studio.annotations.document.Document`.

Each command checks its input when it is built (so a GUI can refuse an edit before pushing it), applies
itself with :meth:`Command.do` and reverts exactly with :meth:`Command.undo`; ``do`` after ``undo`` is a
redo. This module holds the instance and image commands and re-exports the category commands
(:mod:`.category_commands`), the base class (:mod:`.command_base`) and :class:`UndoStack`
(:mod:`.undo_stack`), so ``from efficientsam_studio.annotations.commands import ...`` reaches them all.
``text`` is a short description for an Edit menu ("Undo Merge 3 instances"). The GUI wraps each
command in a ``QUndoCommand`` whose ``redo()`` calls ``do()`` and whose ``undo()`` calls ``undo()``;
scripts use :class:`UndoStack`. Commands assume the document is only changed through commands between
their ``do`` and ``undo`` (the usual undo-stack discipline).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.category_commands import (
    AddCategory,
    RecolourCategory,
    RemoveCategory,
    RenameCategory,
)
from efficientsam_studio.annotations.command_base import Command, CompoundCommand, InstanceRemoval, plural
from efficientsam_studio.annotations.document import Document
from efficientsam_studio.annotations.errors import DocumentError
from efficientsam_studio.annotations.records import ImageStatus, Instance
from efficientsam_studio.annotations.undo_stack import UndoStack

__all__ = [
    "AddCategory",
    "AddInstance",
    "Command",
    "CompoundCommand",
    "Merge",
    "RecolourCategory",
    "Relabel",
    "RemoveCategory",
    "RemoveInstance",
    "RemoveInstances",
    "RenameCategory",
    "Reorder",
    "SetImageStatus",
    "Subtract",
    "UndoStack",
    "UpdateInstance",
]

_KEEP: Any = object()


class AddInstance(Command):
    """Add an instance on top of its image (or at z position ``index``)."""

    def __init__(self, document: Document, instance: Instance, index: int | None = None) -> None:
        document.image(instance.image_id)
        document.category(instance.category_id)
        if document.has_instance(instance.id):
            raise DocumentError(f"instance id {instance.id} is already used")
        self.document, self.instance, self.index = document, instance, index
        self.text = f"Add {document.category(instance.category_id).name}"

    @classmethod
    def from_mask(
        cls,
        document: Document,
        image_id: int,
        category_id: int,
        mask: np.ndarray,
        *,
        score: float | None = None,
        source: str = "manual",
        iscrowd: bool = False,
        attributes: dict | None = None,
    ) -> AddInstance:
        """Allocate an id and build the instance from an ``(H, W)`` mask (EmptyMaskError if empty)."""
        rle = masks.encode(mask)
        return cls.from_rle(
            document,
            image_id,
            category_id,
            rle,
            score=score,
            source=source,
            iscrowd=iscrowd,
            attributes=attributes,
        )

    @classmethod
    def from_rle(
        cls,
        document: Document,
        image_id: int,
        category_id: int,
        rle: dict,
        *,
        score: float | None = None,
        source: str = "manual",
        iscrowd: bool = False,
        attributes: dict | None = None,
    ) -> AddInstance:
        """Allocate an id and build the instance from an RLE (EmptyMaskError if it is empty)."""
        document.image(image_id)
        document.category(category_id)
        instance = Instance.from_rle(
            document.allocate_id("instance"),
            image_id,
            category_id,
            rle,
            score=score,
            source=source,
            iscrowd=iscrowd,
            attributes=attributes,
        )
        return cls(document, instance)

    def do(self) -> None:
        self.document.add_instance(self.instance, self.index)

    def undo(self) -> None:
        self.document.remove_instance(self.instance.id)


class RemoveInstances(Command):
    """Remove instances (of one or several images); undo restores them at their z positions."""

    def __init__(self, document: Document, instance_ids: Sequence[int]) -> None:
        if not instance_ids:
            raise DocumentError("nothing to remove: no instance selected")
        self._removal = InstanceRemoval(document, instance_ids)
        self.text = f"Delete {plural(len(self._removal.ids), 'instance')}"

    def do(self) -> None:
        self._removal.remove()

    def undo(self) -> None:
        self._removal.restore()


class RemoveInstance(RemoveInstances):
    """Remove one instance."""

    def __init__(self, document: Document, instance_id: int) -> None:
        super().__init__(document, [instance_id])


class UpdateInstance(Command):
    """Replace fields of one instance: its mask (``mask`` array or ``rle``), category, score, source,
    iscrowd or attributes. A new mask recomputes bbox and area (EmptyMaskError if it is empty)."""

    def __init__(
        self,
        document: Document,
        instance_id: int,
        *,
        mask: np.ndarray | None = None,
        rle: dict | None = None,
        category_id: int | None = None,
        score: float | None = _KEEP,
        source: str | None = None,
        iscrowd: bool | None = None,
        attributes: dict | None = None,
        text: str | None = None,
    ) -> None:
        old = document.instance(instance_id)
        new = old
        if mask is not None:
            rle = masks.encode(mask)
        if rle is not None:
            new = new.with_rle(rle)
        changes: dict[str, Any] = {}
        if category_id is not None:
            document.category(category_id)
            changes["category_id"] = category_id
        if score is not _KEEP:
            changes["score"] = None if score is None else float(score)
        if source is not None:
            changes["source"] = source
        if iscrowd is not None:
            changes["iscrowd"] = bool(iscrowd)
        if attributes is not None:
            changes["attributes"] = dict(attributes)
        new = dataclasses.replace(new, **changes)
        if new.rle["size"] != old.rle["size"]:
            raise DocumentError(f"instance {instance_id}: the new mask has another size than the image")
        self.document, self.old, self.new = document, old, new
        self.text = text or ("Edit mask" if rle is not None else "Edit instance")

    def do(self) -> None:
        self.document.replace_instance(self.new)

    def undo(self) -> None:
        self.document.replace_instance(self.old)


class Relabel(Command):
    """Give instances another category. The user has judged them, so they become ``"manual"`` (an AI
    instance keeps its mask and score), and batch labelling keeps them as it keeps hand-made ones."""

    def __init__(self, document: Document, instance_ids: Sequence[int], category_id: int) -> None:
        category = document.category(category_id)
        self.document = document
        self.old = [document.instance(i) for i in dict.fromkeys(instance_ids)]
        self.new = [dataclasses.replace(inst, category_id=category_id, source="manual") for inst in self.old]
        self.text = f"Relabel {plural(len(self.old), 'instance')} as {category.name}"

    def do(self) -> None:
        for instance in self.new:
            self.document.replace_instance(instance)

    def undo(self) -> None:
        for instance in reversed(self.old):
            self.document.replace_instance(instance)


class Merge(Command):
    """Unite the masks of instances of one image into the first one; the others are removed.

    The merged instance keeps the first instance's id, category, z position and attributes; its score
    becomes None (the union is no prediction) and its source ``"manual"`` (a hand edit, even of AI
    instances, which batch labelling then keeps).
    """

    def __init__(self, document: Document, instance_ids: Sequence[int]) -> None:
        ids = list(dict.fromkeys(instance_ids))
        if len(ids) < 2:
            raise DocumentError("merging needs at least two instances")
        parts = [document.instance(i) for i in ids]
        if len({p.image_id for p in parts}) != 1:
            raise DocumentError("only instances of the same image can be merged")
        target = parts[0]
        union = masks.merge([p.rle for p in parts])
        self.document = document
        self.old = target
        self.new = dataclasses.replace(target.with_rle(union), score=None, source="manual")
        self._removal = InstanceRemoval(document, ids[1:])
        self.text = f"Merge {plural(len(ids), 'instance')}"

    def do(self) -> None:
        self.document.replace_instance(self.new)
        self._removal.remove()

    def undo(self) -> None:
        self._removal.restore()
        self.document.replace_instance(self.old)


class Subtract(Command):
    """Cut the masks of other instances (of the same image) out of the target instance's mask."""

    def __init__(self, document: Document, target_id: int, other_ids: Sequence[int]) -> None:
        target = document.instance(target_id)
        others = [document.instance(i) for i in other_ids if i != target_id]
        if not others:
            raise DocumentError("subtracting needs at least one other instance")
        if any(o.image_id != target.image_id for o in others):
            raise DocumentError("only instances of the same image can be subtracted")
        cut = masks.decode(masks.merge([o.rle for o in others]))
        remaining = target.mask() & ~cut
        self.document = document
        self.old = target
        self.new = dataclasses.replace(target.with_rle(masks.encode(remaining)), score=None, source="manual")
        self.text = "Subtract from instance"

    def do(self) -> None:
        self.document.replace_instance(self.new)

    def undo(self) -> None:
        self.document.replace_instance(self.old)


class Reorder(Command):
    """Set the z-order of one image's instances (``order``: their ids, bottom first)."""

    def __init__(
        self, document: Document, image_id: int, order: Sequence[int], text: str = "Reorder"
    ) -> None:
        self.document = document
        self.image_id = image_id
        self.old = [inst.id for inst in document.instances_of(image_id)]
        self.new = list(order)
        if sorted(self.new) != sorted(self.old):
            raise DocumentError(f"the new order of image {image_id} must hold exactly its instances")
        self.text = text

    @classmethod
    def move(cls, document: Document, instance_id: int, index: int) -> Reorder:
        """Move one instance to z position ``index`` (0 = bottom, -1 = top)."""
        image_id = document.instance(instance_id).image_id
        order = [inst.id for inst in document.instances_of(image_id)]
        order.remove(instance_id)
        order.insert(len(order) + 1 + index if index < 0 else index, instance_id)
        return cls(document, image_id, order)

    @classmethod
    def to_front(cls, document: Document, instance_id: int) -> Reorder:
        """Move an instance to the top of its image."""
        command = cls.move(document, instance_id, -1)
        command.text = "Bring to front"
        return command

    @classmethod
    def to_back(cls, document: Document, instance_id: int) -> Reorder:
        """Move an instance to the bottom of its image."""
        command = cls.move(document, instance_id, 0)
        command.text = "Send to back"
        return command

    def do(self) -> None:
        self.document.set_order(self.image_id, self.new)

    def undo(self) -> None:
        self.document.set_order(self.image_id, self.old)


class SetImageStatus(Command):
    """Set the workflow status of one or several images."""

    def __init__(self, document: Document, image_ids: Sequence[int] | int, status: ImageStatus | str) -> None:
        status = ImageStatus(status)
        ids = [image_ids] if isinstance(image_ids, int) else list(dict.fromkeys(image_ids))
        self.document = document
        self.old = [document.image(i) for i in ids]
        self.new = [dataclasses.replace(image, status=status) for image in self.old]
        self.text = f"Mark {plural(len(ids), 'image')} {status.value.replace('_', ' ')}"

    def do(self) -> None:
        for image in self.new:
            self.document.replace_image(image)

    def undo(self) -> None:
        for image in reversed(self.old):
            self.document.replace_image(image)
