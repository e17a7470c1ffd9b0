"""A linear undo/redo history of :class:`~efficientsam_studio.annotations.command_base.Command` objects."""

from __future__ import annotations

from efficientsam_studio.annotations.command_base import Command
from efficientsam_studio.annotations.errors import DocumentError


class UndoStack:
    """A linear undo/redo history for scripts and tests (the GUI uses QUndoStack instead).

    ``limit``: the most commands kept (0 = no limit); ``is_clean`` compares with :meth:`set_clean`.
    """

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self._commands: list[Command] = []
        self._index = 0
        self._clean_index: int | None = 0

    def push(self, command: Command) -> None:
        """Apply ``command`` and record it; drops the redo history."""
        command.do()
        del self._commands[self._index:]
        if self._clean_index is not None and self._clean_index > self._index:
            self._clean_index = None
        self._commands.append(command)
        self._index += 1
        if self.limit and len(self._commands) > self.limit:
            drop = len(self._commands) - self.limit
            del self._commands[:drop]
            self._index -= drop
            if self._clean_index is not None:
                self._clean_index = self._clean_index - drop if self._clean_index >= drop else None

    def undo(self) -> None:
        """Undo the last applied command (DocumentError when there is none)."""
        if not self.can_undo:
            raise DocumentError("nothing to undo")
        self._index -= 1
        self._commands[self._index].undo()

    def redo(self) -> None:
        """Re-apply the last undone command (DocumentError when there is none)."""
        if not self.can_redo:
            raise DocumentError("nothing to redo")
        self._commands[self._index].do()
        self._index += 1

    @property
    def can_undo(self) -> bool:
        """True when there is a command to undo."""
        return self._index > 0

    @property
    def can_redo(self) -> bool:
        """True when there is a command to redo."""
        return self._index < len(self._commands)

    @property
    def undo_text(self) -> str:
        """Text of the command :meth:`undo` would revert ("" when none)."""
        return self._commands[self._index - 1].text if self.can_undo else ""

    @property
    def redo_text(self) -> str:
        """Text of the command :meth:`redo` would apply ("" when none)."""
        return self._commands[self._index].text if self.can_redo else ""

    def set_clean(self) -> None:
        """Mark the current position as saved."""
        self._clean_index = self._index

    @property
    def is_clean(self) -> bool:
        """True when the stack is at the position marked by :meth:`set_clean`."""
        return self._clean_index == self._index

    def clear(self) -> None:
        """Forget every command (the document is left as it is)."""
        self._commands.clear()
        self._index = 0
        self._clean_index = 0
