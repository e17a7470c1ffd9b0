"""Image files are decoded, and their display pyramids built, in a worker thread.

A 48-megapixel photo takes a good part of a second to decode and shrink; doing it here keeps the
GUI thread free. Requests carry ids; a request superseded by a newer one (the user pressed D again)
is skipped before decoding when possible and its answer dropped otherwise.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot

from efficientsam_studio.annotations.images import load_image
from efficientsam_studio.errors import StudioError
from efficientsam_studio.gui.canvas.raster import Pyramid
from efficientsam_studio.gui.engine_service import RequestTracker


class _LoadWorker(QObject):
    loaded = Signal(int, int, object, object)  # request id, image id, rgb (H, W, 3) uint8, Pyramid
    failed = Signal(int, int, str)

    def __init__(self, tracker: RequestTracker) -> None:
        super().__init__()
        self._tracker = tracker

    @Slot(int, int, str)
    def load(self, request_id: int, image_id: int, path: str) -> None:
        if not self._tracker.is_current("load", request_id):
            return
        try:
            rgb = load_image(Path(path))
        except StudioError as exc:
            self.failed.emit(request_id, image_id, str(exc))
            return
        if self._tracker.is_current("load", request_id):
            self.loaded.emit(request_id, image_id, rgb, Pyramid.of_rgb(rgb))


class ImageLoader(QObject):
    """GUI-thread facade: :meth:`request` an image, get ``loaded(image_id, rgb, pyramid)`` or
    ``failed(image_id, message)`` for the newest request only."""

    loaded = Signal(int, object, object)
    failed = Signal(int, str)
    _do_load = Signal(int, int, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tracker = RequestTracker()
        self._thread = QThread()
        self._thread.setObjectName("efsam-image-loader")
        self._worker = _LoadWorker(self._tracker)
        self._worker.moveToThread(self._thread)
        self._thread.finished.connect(self._worker.deleteLater)
        self._do_load.connect(self._worker.load)
        self._worker.loaded.connect(self._on_loaded)
        self._worker.failed.connect(self._on_failed)
        self._thread.start()

    def request(self, image_id: int, path: Path) -> int:
        request_id = self._tracker.new("load")
        self._do_load.emit(request_id, image_id, str(path))
        return request_id

    def shutdown(self) -> None:
        if self._thread.isRunning():
            self._tracker.new("load")
            self._thread.quit()
            self._thread.wait()

    @Slot(int, int, object, object)
    def _on_loaded(self, request_id: int, image_id: int, rgb: object, pyramid: object) -> None:
        if self._tracker.is_current("load", request_id):
            self.loaded.emit(image_id, rgb, pyramid)

    @Slot(int, int, str)
    def _on_failed(self, request_id: int, image_id: int, message: str) -> None:
        if self._tracker.is_current("load", request_id):
            self.failed.emit(image_id, message)
