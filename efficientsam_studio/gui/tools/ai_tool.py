"""The AI tool: clicks and boxes become prompts, the worker answers with candidate masks.

Mouse: left click = positive point; right click or Shift + left click = negative point; left drag =
box (a new box replaces the previous one). Keys (routed by the main window): Tab cycles the
candidates best first, Enter accepts the shown candidate as an instance of the current category (an
unlabelled image becomes in progress, in the same undo step), Esc clears the prompts, Backspace
removes the last prompt. A mask whose size differs from the image's record (its file was replaced by
one of another size) is refused. Every prompt change is an undo step and sends one request to the
engine worker; the preview changes when the answer arrives, and answers to superseded requests are
dropped. Until the answer arrives the status text (and ``busy_changed``) says what the tool waits for:
the encoder ("Encoding the image…") or the decoder ("Computing the mask…").

Before the first prompt, the mask a click would give under the resting cursor is shown lightly
(:mod:`hover_preview`; settings: "Preview the mask under the cursor"), and a click there takes it at
once. A box that marks a small part of the image is segmented again in a cut around it, at the model's
full resolution (``engine/crop_refine.py``; settings: "Segment small boxes again at full
resolution"): its first mask shows at once and the finer one replaces it when it is ready.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPen
from PySide6.QtWidgets import QGraphicsRectItem

from efficientsam_studio.annotations.commands import AddInstance
from efficientsam_studio.engine.crop_refine import refine_crop
from efficientsam_studio.gui.canvas.overlays import PromptMarkers
from efficientsam_studio.gui.canvas.view import CanvasView
from efficientsam_studio.gui.engine_service import EngineService
from efficientsam_studio.gui.prediction import Prediction
from efficientsam_studio.gui.prompts import BoxPrompt, PointPrompt, PromptSet
from efficientsam_studio.gui.session import Session
from efficientsam_studio.gui.tools.base import Tool
from efficientsam_studio.gui.tools.hover_preview import HoverPreview
from efficientsam_studio.gui.undo import AcceptCommand, PromptCommand

DRAG_THRESHOLD = 5.0  # screen pixels before a press becomes a box
PREVIEW_ALPHA = 140
HOVER_ALPHA = 80  # the hover preview is lighter than the candidate of a click
ENCODING_TEXT = "Encoding the image…"
COMPUTING_TEXT = "Computing the mask…"
REFINING_TEXT = "segmenting the box again at full resolution…"


class AiTool(Tool):
    """Prompts, candidates and accept; see the module docstring."""

    name = "ai"
    model_needed = Signal()  # the user prompted while no model is loaded
    candidates_changed = Signal()
    busy_changed = Signal(str)  # what the tool waits for (ENCODING_TEXT or COMPUTING_TEXT), "" for nothing

    def __init__(self, canvas: CanvasView, session: Session, engine: EngineService) -> None:
        super().__init__(canvas, session)
        self.engine = engine
        self.prompts = PromptSet()
        self.prediction: Prediction | None = None
        self.candidate = 0
        self._markers = PromptMarkers(canvas.scene())
        self._press: tuple[QPointF, Qt.MouseButton, bool] | None = None
        self._rubber: QGraphicsRectItem | None = None
        self._waiting = False
        self.refine_boxes = True  # segment small boxes again in a cut (settings)
        self._refining = False
        self._cursor: QPointF | None = None  # where the cursor rests on the image, for the hover preview
        self.hover = HoverPreview(engine, self)
        self.hover.changed.connect(self._show_hover)
        canvas.left.connect(self._cursor_left)
        session.image_changed.connect(self._on_image_changed)
        session.category_changed.connect(lambda _: self._show_candidate())
        engine.image_ready.connect(self._on_image_ready)
        engine.prediction_ready.connect(self._on_prediction)
        engine.refined_ready.connect(self._on_refined)
        engine.failed.connect(self._on_failed)

    # ----- mouse -----
    def press(self, pos: QPointF, event: QMouseEvent) -> None:
        negative = event.button() == Qt.MouseButton.RightButton or bool(
            event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        )
        if event.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            self._press = (pos, event.button(), negative)

    def move(self, pos: QPointF, event: QMouseEvent) -> None:
        if self._press is None and event.buttons() == Qt.MouseButton.NoButton:
            self._hover_at(pos)
            return
        if self._press is None or self._press[1] != Qt.MouseButton.LeftButton or self._press[2]:
            return
        start = self._press[0]
        if self._rubber is None and self.screen_distance(pos, start) < DRAG_THRESHOLD:
            return
        if self._rubber is None:
            self._rubber = QGraphicsRectItem()
            pen = QPen(QColor(255, 220, 0), 2, Qt.PenStyle.DashLine)
            pen.setCosmetic(True)
            self._rubber.setPen(pen)
            self._rubber.setZValue(20)
            self.canvas.scene().addItem(self._rubber)
        self._rubber.setRect(QRectF(start, pos).normalized())

    def release(self, pos: QPointF, event: QMouseEvent) -> None:
        if self._press is None:
            return
        start, _, negative = self._press
        self._press = None
        if self._rubber is not None:
            self.canvas.scene().removeItem(self._rubber)
            self._rubber = None
            self.add_prompt(BoxPrompt.from_corners(*self._clamp(start), *self._clamp(pos)))
            return
        x, y = self._clamp(start)
        self.add_prompt(PointPrompt(x, y, 0 if negative else 1))

    def _hover_at(self, pos: QPointF) -> None:
        image_id = self.session.current_image_id
        if not self.active or image_id is None or not self.prompts.is_empty():
            return
        w, h = self.canvas.image_size
        if not (0.0 <= pos.x() < w and 0.0 <= pos.y() < h):
            self._cursor = None
            self.hover.clear()
            return
        self._cursor = QPointF(pos)
        self.hover.move_to(self.session.image_key(image_id), *self._clamp(pos))

    def _cursor_left(self) -> None:
        self._cursor = None
        if self.prompts.is_empty():
            self.hover.clear()

    def _clamp(self, pos: QPointF) -> tuple[float, float]:
        w, h = self.canvas.image_size
        return min(max(pos.x(), 0.0), w - 1.0), min(max(pos.y(), 0.0), h - 1.0)

    # ----- prompts (public: also used by keyboard actions and tests) -----
    def add_prompt(self, prompt: PointPrompt | BoxPrompt) -> None:
        """Add a prompt as an undo step and ask the worker for new candidates."""
        image_id = self.session.current_image_id
        if image_id is None:
            return
        kind = (
            "box" if isinstance(prompt, BoxPrompt) else "positive point" if prompt.label else "negative point"
        )
        self.session.push(
            PromptCommand(self, image_id, self.prompts, self.prompts.with_added(prompt), f"Add {kind}")
        )

    def remove_last(self) -> bool:
        image_id = self.session.current_image_id
        if image_id is None or self.prompts.is_empty():
            return False
        return self.session.push(
            PromptCommand(self, image_id, self.prompts, self.prompts.without_last(), "Remove last prompt")
        )

    def cancel(self) -> bool:
        image_id = self.session.current_image_id
        if image_id is None or self.prompts.is_empty():
            return False
        return self.session.push(PromptCommand(self, image_id, self.prompts, PromptSet(), "Clear prompts"))

    def restore_prompts(self, image_id: int, prompts: PromptSet) -> bool:
        """Show ``prompts`` on image ``image_id`` if it is current (undo/redo of prompt steps)."""
        if image_id != self.session.current_image_id:
            return False
        self.prompts = prompts.copy()
        self._markers.show(self.prompts)
        self._request()
        return True

    def _request(self) -> None:
        self.prediction = None
        self.candidate = 0
        self._refining = False
        image_id = self.session.current_image_id
        key = None if image_id is None else self.session.image_key(image_id)
        hovered = None if key is None else self.hover.answer_for(key, self.prompts)
        self.hover.clear()
        if hovered is not None and self.engine.is_ready_for(key):  # the click's answer is there already
            self.engine.cancel_predictions()
            self._waiting = False
            self.prediction = hovered
            self._show_candidate()
            return
        if self.prompts.is_empty() or image_id is None:
            self.engine.cancel_predictions()
            self._waiting = False
            self._show_candidate()
            if self._cursor is not None:  # back to no prompt (Esc, undo, accept): the resting cursor again
                self._hover_at(self._cursor)
            return
        if self.engine.info is None:
            self._show_candidate()
            if self.engine.is_loading:
                self.status.emit("The model is still loading; the mask appears when it is ready.")
            else:
                self.status.emit("No model is loaded.")
                self.model_needed.emit()
            return
        self._waiting = True
        if self.engine.is_ready_for(key):
            self.engine.predict(key, self.prompts.predict_kwargs())
        self._show_candidate()

    # ----- engine answers -----
    def _on_image_changed(self, image_id: int) -> None:
        self.hover.clear()
        self._refining = False
        self.prompts = PromptSet()
        self.prediction = None
        self._waiting = False
        self._markers.clear()
        self.canvas.set_preview(None, QColor())
        self.candidates_changed.emit()
        self.busy_changed.emit("")
        if self._cursor is not None:  # the cursor rests on the next image: its preview once it is encoded
            self._hover_at(self._cursor)

    def _on_image_ready(self, key: str) -> None:
        image_id = self.session.current_image_id
        if image_id is not None and key == self.session.image_key(image_id) and not self.prompts.is_empty():
            self._waiting = True
            self.engine.predict(key, self.prompts.predict_kwargs())
            self._report()

    def _on_prediction(self, prediction: Prediction) -> None:
        image_id = self.session.current_image_id
        if image_id is None or prediction.image_key != self.session.image_key(image_id):
            return
        self._waiting = False
        self.prediction = prediction
        self.candidate = 0
        self._refine(prediction.image_key)
        self._show_candidate()

    def _refine(self, key: str) -> None:
        """Ask for the current prompts again in a cut around their box, if the box is small enough."""
        box = self.prompts.box
        if not self.refine_boxes or box is None:
            return
        width, height = self.canvas.image_size
        points, _ = self.prompts.used_points()
        positives = [(p.x, p.y) for p in points if p.label == 1]
        crop = refine_crop((box.x0, box.y0, box.x1, box.y1), (height, width), positives)
        if crop is not None:
            self._refining = True
            self.engine.refine(key, self.prompts.predict_kwargs(), crop)

    def _on_refined(self, prediction: Prediction) -> None:
        image_id = self.session.current_image_id
        if not self._refining or image_id is None or prediction.image_key != self.session.image_key(image_id):
            return
        self._refining = False
        self.prediction = prediction
        self.candidate = min(self.candidate, len(prediction.scores) - 1)  # the one the user chose with Tab
        self._show_candidate()

    def _on_failed(self, message: str) -> None:
        self._refining = False
        self._waiting = False
        self.busy_changed.emit("")
        self.status.emit(f"The model failed: {message}")

    # ----- candidates -----
    @property
    def refining(self) -> bool:
        """True while a finer answer for the current box is on its way (the first one is shown)."""
        return self._refining

    @property
    def waiting(self) -> bool:
        """True while an answer for the current prompts is outstanding."""
        return self._waiting

    def waiting_for(self) -> str:
        """What the outstanding answer waits for: ENCODING_TEXT, COMPUTING_TEXT, or "" when none is."""
        image_id = self.session.current_image_id
        if not self._waiting or image_id is None:
            return ""
        return COMPUTING_TEXT if self.engine.is_ready_for(self.session.image_key(image_id)) else ENCODING_TEXT

    def cycle(self) -> bool:
        """Show the next candidate mask (wrapping around); candidates are sorted best first."""
        if self.prediction is None or len(self.prediction.scores) < 2:
            return False
        self.candidate = (self.candidate + 1) % len(self.prediction.scores)
        self._show_candidate()
        return True

    def has_pending(self) -> bool:
        return self.prediction is not None

    def accept(self) -> bool:
        """Add the shown candidate as an instance of the current category (one undo step)."""
        image_id = self.session.current_image_id
        category = self.session.current_category
        if self.prediction is None or image_id is None:
            return False
        if category is None:
            self.status.emit("Add a category first (Categories panel) to accept a mask.")
            return False
        mask = self.prediction.mask(self.candidate)
        if not mask.any():
            self.status.emit("This candidate is empty; add prompts or press Tab for another one.")
            return False
        image = self.session.document.image(image_id)
        if mask.shape != (image.height, image.width):
            self.status.emit(
                f"The mask is not added: the file {image.path} is now {mask.shape[1]}x{mask.shape[0]} "
                f"but the project's masks of it are {image.width}x{image.height}. "
                "Put the original file back to label this image."
            )
            return False
        add = AddInstance.from_mask(
            self.session.document,
            image_id,
            category.id,
            mask,
            score=float(self.prediction.scores[self.candidate]),
            source="ai",
        )
        step = AcceptCommand(self, image_id, self.prompts, self.session.labelling_step(add))
        if self.session.push(step):
            self.session.select_instance(add.instance.id)
            return True
        return False

    def _show_candidate(self) -> None:
        prediction = self.prediction
        if prediction is None:
            self._show_hover()
        else:
            self.canvas.set_preview(prediction.mask(self.candidate), self.category_colour(PREVIEW_ALPHA))
        self.candidates_changed.emit()
        self._report()

    def _show_hover(self) -> None:
        """The hover preview on the canvas while there is no prompt (nothing otherwise)."""
        if self.prediction is not None or self._waiting:
            return
        hovered = self.hover.prediction if self.active and self.prompts.is_empty() else None
        if hovered is None:
            self.canvas.set_preview(None, QColor())
        else:
            self.canvas.set_preview(hovered.mask(0), self.category_colour(HOVER_ALPHA))
        self.status.emit(self.describe())

    def _report(self) -> None:
        self.busy_changed.emit(self.waiting_for())
        self.status.emit(self.describe())

    def describe(self) -> str:
        """Status text: candidate number and predicted IoU (or what the tool waits for), point limit."""
        parts = []
        waiting_for = self.waiting_for()
        if self.prediction is not None:
            scores = self.prediction.scores
            parts.append(
                f"Candidate {self.candidate + 1}/{len(scores)}, predicted IoU {scores[self.candidate]:.2f} "
                "(Tab: next, Enter: accept, Esc: clear)"
            )
            if self._refining:
                parts.append(REFINING_TEXT)
        elif waiting_for == ENCODING_TEXT:
            parts.append(f"{ENCODING_TEXT} the mask appears when it is done.")
        elif waiting_for:
            parts.append(waiting_for)
        elif self.prompts.is_empty():
            hovered = self.hover.prediction if self.active else None
            if hovered is not None:
                parts.append(f"Under the cursor: predicted IoU {hovered.scores[0]:.2f}, click to take it")
                parts.append("right-click or Shift+click: negative point, drag: box")
            else:
                parts.append("Click: positive point, right-click or Shift+click: negative point, drag: box")
        limit = self.prompts.limit_message()
        if limit:
            parts.append(limit)
        return "  |  ".join(parts)

    def deactivate(self) -> None:
        super().deactivate()
        self._press = None
        self.hover.clear()

    @property
    def marker_count(self) -> int:
        return self._markers.count
