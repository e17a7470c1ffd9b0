"""Showing the current image: pixels on the canvas, the instance overlay, and the engine's encoder.

When the current image changes, its pixels are loaded (``annotations.images.load_image``), shown,
and sent to the engine worker to encode; the next ``ahead`` images of the list are queued for
background encoding through the embedding cache.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from efficientsam_studio.annotations.images import load_image
from efficientsam_studio.errors import StudioError
from efficientsam_studio.gui.canvas.instance_layer import InstanceLayer
from efficientsam_studio.gui.canvas.view import CanvasView
from efficientsam_studio.gui.engine_service import EngineService
from efficientsam_studio.gui.session import NONE, Session


class ImageController(QObject):
    """See the module docstring. ``pixels`` is the current image (H, W, 3) uint8 RGB or None."""

    status = Signal(str)

    def __init__(
        self, canvas: CanvasView, session: Session, engine: EngineService, layer: InstanceLayer, ahead: int
    ) -> None:
        super().__init__(canvas)
        self.canvas, self.session, self.engine, self.layer = canvas, session, engine, layer
        self.ahead = ahead
        self.pixels: np.ndarray | None = None
        session.image_changed.connect(self._on_image_changed)
        engine.loaded.connect(lambda _info: self.send_to_engine())

    def _on_image_changed(self, image_id: int) -> None:
        self.pixels = None
        if image_id == NONE:
            self.canvas.set_image(None)
            self.layer.rebuild()
            return
        path = self.session.image_path(image_id)
        try:
            self.pixels = load_image(path)
        except StudioError as exc:
            self.canvas.set_image(None)
            self.status.emit(str(exc))
            return
        record = self.session.document.image(image_id)
        if self.pixels.shape[:2] != (record.height, record.width):
            self.status.emit(
                f"{record.path}: the file is now {self.pixels.shape[1]}x{self.pixels.shape[0]} "
                "but the project "
                f"says {record.width}x{record.height}; its masks may not line up."
            )
        self.canvas.set_image(self.pixels)
        self.layer.rebuild()
        self.send_to_engine()

    def send_to_engine(self) -> None:
        """Ask the worker to encode the current image, then to precompute the next ones."""
        image_id = self.session.current_image_id
        if self.pixels is None or image_id is None or self.engine.info is None:
            return
        self.engine.set_image(self.session.image_key(image_id), self.pixels)
        images = self.session.document.images
        ids = [image.id for image in images]
        start = ids.index(image_id) + 1
        upcoming = [image.id for image in images[start : start + self.ahead]]
        self.engine.precompute([(self.session.image_key(i), self.session.image_path(i)) for i in upcoming])
