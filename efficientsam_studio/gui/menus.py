"""Menus and the main toolbar, built from the action table."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeyEvent, QMouseEvent
from PySide6.QtWidgets import QMainWindow, QSpinBox, QToolBar, QWidget

from efficientsam_studio.gui.actions import ACTIONS

# toolbar actions by key, "|" = separator; the brush size box sits between the two halves
TOOLBAR_LEFT = "open save export | undo redo | tool_ai tool_polygon tool_brush tool_eraser"
TOOLBAR_RIGHT = "| previous_image next_image accept | zoom_in zoom_out fit actual_size | settings help"

ENDING_KEYS = (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Escape)


class BrushSizeBox(QSpinBox):
    """The toolbar's brush size in pixels.

    It takes the keyboard focus only when clicked (never by Tab or at startup), and gives it back to
    the window's central widget, the canvas, once a size is entered (Enter, Esc) or stepped with the
    arrow buttons: the single-key shortcuts (1-9, D/A, tool letters) are then the canvas's again."""

    def __init__(self, size: int, parent: QWidget | None = None) -> None:
        super().__init__(parent, minimum=1, maximum=500, value=size, suffix=" px")
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.setToolTip("Brush and eraser size ([ and ])")
        self.editingFinished.connect(self.give_back_focus)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and event.key() in ENDING_KEYS:
            event.accept()  # Enter ends the typing here instead of accepting a mask in the window
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt API)
        if event.key() == Qt.Key.Key_Escape:
            self.give_back_focus()
            return
        super().keyPressEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        super().mouseReleaseEvent(event)
        if not self.lineEdit().geometry().contains(event.position().toPoint()):
            self.give_back_focus()  # an arrow button, not the text: nothing is being typed

    def give_back_focus(self) -> None:
        if not self.hasFocus():
            return
        window = self.window()
        target = window.centralWidget() if isinstance(window, QMainWindow) else None
        if target is not None and target.focusPolicy() != Qt.FocusPolicy.NoFocus:
            target.setFocus(Qt.FocusReason.OtherFocusReason)
        else:
            self.clearFocus()


def build_menus_and_toolbar(
    window: QMainWindow, actions: dict[str, QAction], brush: int
) -> tuple[QActionGroup, BrushSizeBox]:
    """One menu per action group, the toolbar, and the brush size box (``brush`` px); returns the
    exclusive group of the tool actions and the size box."""
    menus = {}
    for spec in ACTIONS:
        if spec.group not in menus:
            menus[spec.group] = window.menuBar().addMenu(f"&{spec.group}")
        menus[spec.group].addAction(actions[spec.key])
    tool_group = QActionGroup(window)
    for key in ("tool_ai", "tool_polygon", "tool_brush", "tool_eraser"):
        tool_group.addAction(actions[key])
    bar = QToolBar("Main", window)
    bar.setObjectName("main-toolbar")
    for key in TOOLBAR_LEFT.split():
        bar.addSeparator() if key == "|" else bar.addAction(actions[key])
    brush_size = BrushSizeBox(brush)
    bar.addWidget(brush_size)
    bar.addSeparator()
    for key in TOOLBAR_RIGHT.split():
        bar.addSeparator() if key == "|" else bar.addAction(actions[key])
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
    return tool_group, brush_size
