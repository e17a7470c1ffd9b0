"""The canvas widget and the items drawn on it."""

from efficientsam_studio.gui.canvas.view import CanvasView

__all__ = ["CanvasView"]
