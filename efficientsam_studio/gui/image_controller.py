"""Showing the current image: pixels on the canvas, the instance overlay, and the engine's encoder.

When the current image changes, the canvas is cleared, the engine's background queue is dropped, and
the file is decoded in the image loader's thread (``annotations.images.load_image`` plus the display
pyramid); when it arrives it is shown and sent to the engine worker to encode, and the next ``ahead``
images of the list are queued for background encoding through the embedding cache. ``load_result``
tells whether each requested image could be read, so the file list can mark the unreadable ones.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from efficientsam_studio.gui.canvas.instance_layer import InstanceLayer
from efficientsam_studio.gui.canvas.raster import Pyramid
from efficientsam_studio.gui.canvas.view import CanvasView
from efficientsam_studio.gui.engine_service import EngineService
from efficientsam_studio.gui.image_loader import ImageLoader
from efficientsam_studio.gui.session import NONE, Session


class ImageController(QObject):
    """See the module docstring. ``pixels`` is the current image (H, W, 3) uint8 RGB or None."""

    status = Signal(str)
    load_result = Signal(int, str)  # image id, "" when it was read, else why it could not be

    def __init__(
        self, canvas: CanvasView, session: Session, engine: EngineService, layer: InstanceLayer, ahead: int
    ) -> None:
        super().__init__(canvas)
        self.canvas, self.session, self.engine, self.layer = canvas, session, engine, layer
        self.ahead = ahead
        self.pixels: np.ndarray | None = None
        self.shown_id: int | None = None  # the image whose pixels are on the canvas
        self.loader = ImageLoader(self)
        self.loader.loaded.connect(self._on_loaded)
        self.loader.failed.connect(self._on_failed)
        session.image_changed.connect(self._on_image_changed)
        engine.loaded.connect(self._on_model_loaded)  # a bound slot: it ends with this object

    def _on_image_changed(self, image_id: int) -> None:
        self.pixels = None
        self.shown_id = None
        self.engine.precompute([])  # no background job starts while the user waits for the new image
        self.canvas.show_pyramid(None)
        self.layer.rebuild()
        if image_id != NONE:
            self.status.emit(f"Loading {self.session.document.image(image_id).path}…")
            self.loader.request(image_id, self.session.image_path(image_id))

    def _on_failed(self, image_id: int, message: str) -> None:
        self.load_result.emit(image_id, message)
        if image_id == self.session.current_image_id:
            self.status.emit(message)

    def _on_loaded(self, image_id: int, pixels: np.ndarray, pyramid: Pyramid) -> None:
        self.load_result.emit(image_id, "")
        if image_id != self.session.current_image_id:
            return
        record = self.session.document.image(image_id)
        self.pixels, self.shown_id = pixels, image_id
        self.canvas.show_pyramid(pyramid)
        self.layer.rebuild()
        if pixels.shape[:2] != (record.height, record.width):
            self.status.emit(
                f"{record.path}: the file is now {pixels.shape[1]}x{pixels.shape[0]} "
                f"but the project says {record.width}x{record.height}; its masks may not line up."
            )
        else:
            self.status.emit(f"{record.path}: {record.width}x{record.height}")
        self.send_to_engine()

    def _on_model_loaded(self, _info: object) -> None:
        self.send_to_engine()

    def shutdown(self) -> None:
        self.loader.shutdown()

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
