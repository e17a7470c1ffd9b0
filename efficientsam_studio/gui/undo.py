"""QUndoCommand adapters: the annotation core's commands and the AI tool's prompt edits.

Every edit the user makes goes through one ``QUndoStack``: document edits as
:class:`CoreCommand` (``redo`` = ``Command.do``, ``undo`` = ``Command.undo``), prompt edits as
:class:`PromptCommand`, and an accepted AI mask as :class:`AcceptCommand` (the instance is added and
the prompts cleared in one step, so undoing it brings the prompts and the preview back).
"""

from __future__ import annotations

from typing import Protocol

from PySide6.QtGui import QUndoCommand

from efficientsam_studio.annotations.commands import Command
from efficientsam_studio.gui.prompts import PromptSet


class CoreCommand(QUndoCommand):
    """Wraps one :class:`efficientsam_studio.annotations.commands.Command`."""

    def __init__(self, command: Command) -> None:
        super().__init__(command.text)
        self.command = command

    def redo(self) -> None:
        self.command.do()

    def undo(self) -> None:
        self.command.undo()


class PromptHolder(Protocol):
    """What prompt commands act on (the AI tool): the prompts of image ``image_id``."""

    def restore_prompts(self, image_id: int, prompts: PromptSet) -> bool:
        """Show ``prompts`` if ``image_id`` is the current image; False if it no longer is."""
        ...


class PromptCommand(QUndoCommand):
    """Replace the prompts of one image (add a point, a box, remove the last one, clear all).

    Undoing it after the user moved to another image does nothing and drops the step from the history.
    """

    def __init__(
        self, holder: PromptHolder, image_id: int, old: PromptSet, new: PromptSet, text: str
    ) -> None:
        super().__init__(text)
        self._holder, self._image_id = holder, image_id
        self._old, self._new = old.copy(), new.copy()

    def redo(self) -> None:
        if not self._holder.restore_prompts(self._image_id, self._new):
            self.setObsolete(True)

    def undo(self) -> None:
        if not self._holder.restore_prompts(self._image_id, self._old):
            self.setObsolete(True)


class AcceptCommand(QUndoCommand):
    """Add the accepted AI mask as an instance and clear the prompts, as one undo step."""

    def __init__(self, holder: PromptHolder, image_id: int, prompts: PromptSet, add: Command) -> None:
        super().__init__(add.text)
        self._holder, self._image_id = holder, image_id
        self._prompts = prompts.copy()
        self._add = add

    def redo(self) -> None:
        self._add.do()
        self._holder.restore_prompts(self._image_id, PromptSet())

    def undo(self) -> None:
        self._add.undo()
        self._holder.restore_prompts(self._image_id, self._prompts)
