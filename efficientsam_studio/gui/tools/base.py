"""Common base of the canvas tools."""

from __future__ import annotations

from PySide6.QtCore import QObject, QPointF, Signal
from PySide6.QtGui import QColor, QMouseEvent

from efficientsam_studio.gui.canvas.view import CanvasView
from efficientsam_studio.gui.session import Session


class Tool(QObject):
    """A canvas tool. Mouse positions are image pixels (scene coordinates of :class:`CanvasView`).

    ``status`` carries a short text for the status bar (what the tool does next, limits, errors).
    """

    name = "tool"
    status = Signal(str)

    def __init__(self, canvas: CanvasView, session: Session) -> None:
        super().__init__(canvas)
        self.canvas = canvas
        self.session = session
        self.active = False

    def activate(self) -> None:
        self.active = True
        self.canvas.set_tool(self)

    def deactivate(self) -> None:
        self.active = False

    def press(self, pos: QPointF, event: QMouseEvent) -> None:
        pass

    def move(self, pos: QPointF, event: QMouseEvent) -> None:
        pass

    def release(self, pos: QPointF, event: QMouseEvent) -> None:
        pass

    def double_click(self, pos: QPointF, event: QMouseEvent) -> None:
        """Qt delivers the second press of a quick double click here instead of to :meth:`press`;
        tools that give double clicks no meaning treat it as a press, so fast clicks are never lost."""
        self.press(pos, event)

    # keyboard actions routed by the main window; each returns True when it did something
    def accept(self) -> bool:
        return False

    def has_pending(self) -> bool:
        """True when :meth:`accept` has something to add (a mask shown, a polygon drawn)."""
        return False

    def cancel(self) -> bool:
        return False

    def remove_last(self) -> bool:
        return False

    def category_colour(self, alpha: int) -> QColor:
        category = self.session.current_category
        colour = QColor(category.colour if category else "#e69f00")
        colour.setAlpha(alpha)
        return colour

    def screen_distance(self, a: QPointF, b: QPointF) -> float:
        """Distance between two image points in screen pixels at the current zoom."""
        d = (a - b) * self.canvas.current_scale()
        return (d.x() ** 2 + d.y() ** 2) ** 0.5
