"""The mask under the resting cursor, before the first click (the AI tool's hover preview).

While the AI tool has no prompts and the image is encoded, the cursor resting for
:data:`HOVER_DWELL_MS` on a pixel sends that pixel to the engine as the positive point a click there
would make. The answer is shown lightly; a click on that same pixel then takes the answer that is
already there instead of asking the engine again (a point anywhere in one pixel gives the masks the
user sees), so the first mask of an object appears with the click. A cursor resting on an image that
is still being encoded is decoded as soon as the image is ready. Moving the cursor on restarts the
wait, so a fast sweep across the image decodes nothing; the engine drops requests the cursor has left
behind, and a click, a new image or another model goes before any of them.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QObject, QTimer, Signal

from efficientsam_studio.gui.engine_service import EngineService
from efficientsam_studio.gui.prediction import Prediction
from efficientsam_studio.gui.prompts import PointPrompt, PromptSet

HOVER_DWELL_MS = 40  # the cursor rests this long before its pixel is decoded


def _same_pixel(a: tuple[str, float, float], b: tuple[str, float, float]) -> bool:
    """Whether two (image key, x, y) points fall in the same pixel of the same image."""
    return a[0] == b[0] and math.floor(a[1]) == math.floor(b[1]) and math.floor(a[2]) == math.floor(b[2])


def hover_prompts(x: float, y: float) -> PromptSet:
    """The prompts a left click at image pixel ``(x, y)`` makes on an empty prompt set."""
    return PromptSet([PointPrompt(x, y, 1)])


class HoverPreview(QObject):
    """Decodes the resting cursor's pixel and keeps the newest answer; see the module docstring.

    ``changed`` is emitted when :attr:`prediction` is replaced or cleared. The owner decides when the
    cursor counts (no prompts, no button down) and calls :meth:`move_to` and :meth:`clear`.
    """

    changed = Signal()

    def __init__(self, engine: EngineService, parent: QObject | None = None, dwell_ms: int = HOVER_DWELL_MS):
        super().__init__(parent)
        self.engine = engine
        self.enabled = True
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(dwell_ms)
        self._timer.timeout.connect(self._send)
        self._target: tuple[str, float, float] | None = None  # image key and pixel waiting for the dwell
        self._sent: tuple[str, float, float] | None = None  # the newest pixel sent to the engine
        self._result: tuple[str, float, float, Prediction] | None = None
        engine.hover_ready.connect(self._on_ready)
        engine.image_ready.connect(self._on_image_ready)
        # bound slots: the connections end with this object (the engine outlives the window's parts)
        engine.loaded.connect(self._on_model_changed)  # an answer of the previous model is not taken
        engine.load_failed.connect(self._on_model_changed)

    @property
    def prediction(self) -> Prediction | None:
        """The newest answer (for the pixel the cursor rested on), or None."""
        return None if self._result is None else self._result[3]

    def move_to(self, key: str, x: float, y: float) -> None:
        """The cursor rests at image pixel ``(x, y)`` of image ``key`` (restarts the dwell)."""
        if not self.enabled:
            return
        target = (key, float(x), float(y))
        if self._result is not None and _same_pixel(self._result[:3], target):
            self._timer.stop()
            self._target = None
            return
        self._target = target
        self._timer.start()

    def clear(self) -> None:
        """Forget the cursor and the answer; answers still on their way are dropped."""
        self._timer.stop()
        self._target = None
        if self._sent is not None:
            self.engine.cancel_hover()
        self._sent = None
        if self._result is not None:
            self._result = None
            self.changed.emit()

    def answer_for(self, key: str, prompts: PromptSet) -> Prediction | None:
        """The answer for ``prompts`` on image ``key`` if it is the hovered point's, else None."""
        if self._result is None or self._result[0] != key:
            return None
        points = prompts.points
        if len(prompts.prompts) != 1 or len(points) != 1 or points[0].label != 1:
            return None
        return self._result[3] if _same_pixel(self._result[:3], (key, points[0].x, points[0].y)) else None

    def request(self, key: str, x: float, y: float) -> None:
        """Ask the engine for pixel ``(x, y)`` of image ``key`` now, without the dwell (if enabled and
        the image is encoded)."""
        self._timer.stop()
        self._target = None
        if not self.enabled:
            return
        if not self.engine.is_ready_for(key):
            self._target = (key, float(x), float(y))  # sent when the image is ready
            return
        self._sent = (key, float(x), float(y))
        self.engine.hover(key, hover_prompts(x, y).predict_kwargs())

    def _on_model_changed(self, *_: object) -> None:
        self.clear()

    def _send(self) -> None:
        if self._target is not None:
            self.request(*self._target)

    def _on_image_ready(self, key: str) -> None:
        if self._target is not None and self._target[0] == key and not self._timer.isActive():
            self.request(*self._target)

    def _on_ready(self, prediction: Prediction) -> None:
        # the engine delivers only the answer to its newest hover request, the one for _sent
        sent = self._sent
        if sent is None or prediction.image_key != sent[0]:
            return
        self._result = (*sent, prediction)
        self.changed.emit()
