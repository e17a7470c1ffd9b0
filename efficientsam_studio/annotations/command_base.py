"""The command interface shared by every undoable edit, and helpers the commands share."""

from __future__ import annotations

import abc
from collections.abc import Sequence

from efficientsam_studio.annotations.document import Document
from efficientsam_studio.annotations.records import Instance


class Command(abc.ABC):
    """Base class: ``text`` for menus, ``do()`` applies, ``undo()`` reverts."""

    text: str = ""

    @abc.abstractmethod
    def do(self) -> None:
        """Apply the edit (also used for redo)."""

    @abc.abstractmethod
    def undo(self) -> None:
        """Revert exactly what :meth:`do` did."""


def plural(count: int, word: str) -> str:
    """``"1 instance"``, ``"3 instances"`` (for command texts)."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class InstanceRemoval:
    """Removes instances and puts them back at their exact z positions."""

    def __init__(self, document: Document, instance_ids: Sequence[int]) -> None:
        self.document = document
        unique = list(dict.fromkeys(instance_ids))
        for instance_id in unique:
            document.instance(instance_id)
        self.ids = unique
        self.removed: list[tuple[Instance, int]] = []

    def remove(self) -> None:
        """Remove the instances, recording their z positions."""
        doc = self.document
        ordered = sorted(self.ids, key=lambda i: (doc.instance(i).image_id, -doc.z_index(i)))
        self.removed = [doc.remove_instance(i) for i in ordered]

    def restore(self) -> None:
        """Put the removed instances back where they were."""
        for instance, index in reversed(self.removed):
            self.document.add_instance(instance, index)
        self.removed = []


class CompoundCommand(Command):
    """Several commands applied as one undo step (e.g. a batch of AI masks)."""

    def __init__(self, text: str, commands: Sequence[Command]) -> None:
        self.text = text
        self.commands = list(commands)

    def do(self) -> None:
        for command in self.commands:
            command.do()

    def undo(self) -> None:
        for command in reversed(self.commands):
            command.undo()
