"""The app's commands and their keyboard shortcuts, in one table.

The main window builds its ``QAction``s from :data:`ACTIONS`, and the shortcuts help dialog (F1)
lists the same table, so the help never disagrees with the keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget

from efficientsam_studio.gui.icons import icon


@dataclass(frozen=True)
class ActionSpec:
    """One command: ``key`` (handler name), menu ``text``, ``shortcuts``, ``group`` for menus and help."""

    key: str
    text: str
    shortcuts: tuple[str, ...] = ()
    group: str = "Edit"
    icon: str | None = None
    checkable: bool = False


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("open", "Open folder, image or project…", ("Ctrl+O",), "File", "open"),
    ActionSpec("save", "Save", ("Ctrl+S",), "File", "save"),
    ActionSpec("import", "Import annotations…", ("Ctrl+I",), "File", "import"),
    ActionSpec("export", "Export…", ("Ctrl+E",), "File", "export"),
    ActionSpec("settings", "Settings…", ("Ctrl+,",), "File", "settings"),
    ActionSpec("quit", "Quit", ("Ctrl+Q",), "File"),
    ActionSpec("undo", "Undo", ("Ctrl+Z",), "Edit", "undo"),
    ActionSpec("redo", "Redo", ("Ctrl+Shift+Z", "Ctrl+Y"), "Edit", "redo"),
    ActionSpec("accept", "Accept mask / close polygon", ("Return", "Enter"), "Edit", "accept"),
    ActionSpec("cycle", "Next candidate mask", ("Tab",), "Edit"),
    ActionSpec("cancel", "Clear prompts / drop the drawing", ("Escape",), "Edit"),
    ActionSpec("remove_last", "Remove the last prompt or vertex", ("Backspace",), "Edit"),
    ActionSpec("delete", "Delete the selected instances", ("Delete",), "Edit", "delete"),
    ActionSpec(
        "relabel", "Relabel the selected instances with the current category", ("L",), "Edit", "relabel"
    ),
    ActionSpec("merge", "Merge the selected instances", ("Ctrl+M",), "Edit"),
    ActionSpec("tool_ai", "AI tool (points and boxes)", ("Q",), "Tools", "ai", True),
    ActionSpec("tool_polygon", "Polygon tool", ("P",), "Tools", "polygon", True),
    ActionSpec("tool_brush", "Brush", ("B",), "Tools", "brush", True),
    ActionSpec("tool_eraser", "Eraser", ("E",), "Tools", "eraser", True),
    ActionSpec("batch", "Batch label images…", ("Ctrl+B",), "Tools", "ai"),
    ActionSpec("brush_smaller", "Smaller brush", ("[",), "Tools"),
    ActionSpec("brush_larger", "Larger brush", ("]",), "Tools"),
    ActionSpec("next_image", "Next image", ("D", "PgDown"), "Image", "next"),
    ActionSpec("previous_image", "Previous image", ("A", "PgUp"), "Image", "previous"),
    ActionSpec("mark_done", "Mark image done", ("Ctrl+Return",), "Image", "done"),
    ActionSpec("mark_review", "Mark image for review", ("Ctrl+R",), "Image", "needs_review"),
    ActionSpec("mark_skipped", "Mark image skipped", ("Ctrl+K",), "Image", "skipped"),
    ActionSpec("zoom_in", "Zoom in", ("Ctrl+=", "Ctrl++"), "View", "zoom_in"),
    ActionSpec("zoom_out", "Zoom out", ("Ctrl+-",), "View", "zoom_out"),
    ActionSpec("fit", "Fit image to window", ("F",), "View", "fit"),
    ActionSpec("actual_size", "Actual size (1:1)", ("Ctrl+0",), "View", "actual"),
    ActionSpec("help", "Keyboard shortcuts", ("F1",), "Help", "help"),
)

EXTRA_KEYS: tuple[tuple[str, str, str], ...] = (
    ("Categories", "1 … 9", "Make the n-th category current"),
    ("Canvas", "Left click", "AI: positive point; polygon: add a vertex"),
    ("Canvas", "Right click, Shift+click", "AI: negative point"),
    ("Canvas", "Left drag", "AI: box; brush and eraser: paint a stroke; polygon: move a vertex"),
    ("Instances", "Ctrl+click, Shift+click, Ctrl+A", "Select several instances in the Instances panel"),
    ("Canvas", "Ctrl+click", "Select the instance under the cursor"),
    ("Canvas", "Shift+click a vertex", "Polygon: delete that vertex of the selected instance"),
    ("Canvas", "Mouse wheel", "Zoom around the cursor"),
    ("Canvas", "Middle drag, Space+drag", "Pan"),
)


def build_actions(parent: QWidget, handlers: dict[str, Callable[[], object]]) -> dict[str, QAction]:
    """QActions for :data:`ACTIONS`, connected to ``handlers[key]`` and added to ``parent``."""
    actions: dict[str, QAction] = {}
    for spec in ACTIONS:
        action = QAction(spec.text, parent)
        if spec.icon:
            action.setIcon(icon(spec.icon))
        action.setShortcuts([QKeySequence(s) for s in spec.shortcuts])
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.setCheckable(spec.checkable)
        handler = handlers[spec.key]
        action.triggered.connect(lambda _checked=False, h=handler: h())
        parent.addAction(action)
        actions[spec.key] = action
    return actions


def shortcut_rows() -> list[tuple[str, str, str]]:
    """(group, keys, what) for the help dialog: every action with a shortcut, then mouse and number keys."""
    rows = [(spec.group, ", ".join(spec.shortcuts), spec.text) for spec in ACTIONS if spec.shortcuts]
    return rows + list(EXTRA_KEYS)
