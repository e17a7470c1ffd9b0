"""QUndoCommand adapters: the annotation core's commands and the AI tool's prompt edits.

Every edit the user makes goes through one ``QUndoStack``: document edits as
:class:`CoreCommand` (``redo`` = ``Command.do``, ``undo`` = ``Command.undo``), prompt edits as
:class:`PromptCommand`, and an accepted AI mask as :class:`AcceptCommand` (the instance is added and
the prompts cleared in one step, so undoing it brings the prompts and the preview back).

All of them are :class:`StudioCommand` objects: :meth:`Session.push` applies one itself (a refusal
arrives as the plain :class:`~efficientsam_studio.errors.StudioError`, and a refused edit never enters
the history), records the images it changed in :attr:`StudioCommand.image_ids`, and only then puts it
on the stack, whose first ``redo`` call is then skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from PySide6.QtGui import QUndoCommand

from efficientsam_studio.annotations.commands import Command
from efficientsam_studio.errors import StudioError
from efficientsam_studio.gui.prompts import PromptSet


class StudioCommand(QUndoCommand):
    """A step of the history: ``apply`` does it (the first time and on redo), ``revert`` undoes exactly
    what ``apply`` did.

    ``image_ids``: the images the step belongs to (filled by :meth:`Session.push`; empty for edits of
    the whole project such as categories). ``failure``: the error of the last failed ``redo``/``undo``,
    whose message the session shows without Qt's wording around it.
    """

    def __init__(self, text: str, apply: Callable[[], None], revert: Callable[[], None]) -> None:
        super().__init__(text)
        self.image_ids: frozenset[int] = frozenset()
        self.failure: StudioError | None = None
        self._apply, self._revert = apply, revert
        self._applied = False

    def apply_now(self) -> None:
        """Do the step before it is pushed; the stack's first ``redo`` is then skipped."""
        self._apply()
        self._applied = True

    def redo(self) -> None:
        if self._applied:
            self._applied = False
            return
        self._run(self._apply)

    def undo(self) -> None:
        self._run(self._revert)

    def _run(self, step: Callable[[], None]) -> None:
        self.failure = None
        try:
            step()
        except StudioError as exc:
            self.failure = exc
            raise


class CoreCommand(StudioCommand):
    """Wraps one :class:`efficientsam_studio.annotations.commands.Command`."""

    def __init__(self, command: Command) -> None:
        super().__init__(command.text, command.do, command.undo)
        self.command = command


class PromptHolder(Protocol):
    """What prompt commands act on (the AI tool): the prompts of image ``image_id``."""

    def restore_prompts(self, image_id: int, prompts: PromptSet) -> bool:
        """Show ``prompts`` if ``image_id`` is the current image; False if it no longer is."""
        ...


class PromptCommand(StudioCommand):
    """Replace the prompts of one image (add a point, a box, remove the last one, clear all).

    The session makes the command's image current before undoing or redoing it; if another image is
    current all the same, the step does nothing and leaves the history.
    """

    def __init__(
        self, holder: PromptHolder, image_id: int, old: PromptSet, new: PromptSet, text: str
    ) -> None:
        super().__init__(text, lambda: self._show(self._new), lambda: self._show(self._old))
        self._holder, self._image_id = holder, image_id
        self._old, self._new = old.copy(), new.copy()
        self.image_ids = frozenset({image_id})

    def _show(self, prompts: PromptSet) -> None:
        if not self._holder.restore_prompts(self._image_id, prompts):
            self.setObsolete(True)


class AcceptCommand(StudioCommand):
    """Add the accepted AI mask as an instance and clear the prompts, as one undo step.

    ``add``: the document edit (the instance, with the image's status change when there is one).
    """

    def __init__(self, holder: PromptHolder, image_id: int, prompts: PromptSet, add: Command) -> None:
        super().__init__(add.text, self._accept, self._take_back)
        self._holder, self._image_id = holder, image_id
        self._prompts = prompts.copy()
        self._add = add
        self.image_ids = frozenset({image_id})

    def _accept(self) -> None:
        self._add.do()
        self._holder.restore_prompts(self._image_id, PromptSet())

    def _take_back(self) -> None:
        self._add.undo()
        self._holder.restore_prompts(self._image_id, self._prompts)
