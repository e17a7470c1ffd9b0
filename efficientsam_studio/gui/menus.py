"""Menus and the main toolbar, built from the action table."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMainWindow, QSpinBox, QToolBar

from efficientsam_studio.gui.actions import ACTIONS

# toolbar actions by key, "|" = separator; the brush size box sits between the two halves
TOOLBAR_LEFT = "open save export | undo redo | tool_ai tool_polygon tool_brush tool_eraser"
TOOLBAR_RIGHT = "| previous_image next_image accept | zoom_in zoom_out fit actual_size | settings help"


def build_menus_and_toolbar(
    window: QMainWindow, actions: dict[str, QAction], brush: int
) -> tuple[QActionGroup, QSpinBox]:
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
    brush_size = QSpinBox(minimum=1, maximum=500, value=brush, suffix=" px")
    brush_size.setToolTip("Brush and eraser size ([ and ])")
    bar.addWidget(brush_size)
    bar.addSeparator()
    for key in TOOLBAR_RIGHT.split():
        bar.addSeparator() if key == "|" else bar.addAction(actions[key])
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
    return tool_group, brush_size
