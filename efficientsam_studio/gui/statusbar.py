"""The status bar: messages, model / backend / device, encoder progress, zoom and cursor position.

A message too long for the bar is cut at its edge; the whole text is the bar's tooltip. A
read-only project shows a banner on the left of the permanent widgets.
"""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QWidget

from efficientsam_studio.gui.engine_service import EngineInfo

READ_ONLY_BANNER = "Read-only: edits cannot be saved"


class StudioStatusBar(QStatusBar):
    """Permanent widgets on the right; tool and error messages on the left."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model_label = QLabel("Model: none")
        self.busy_label = QLabel("")  # a busy bar draws no text, so the label says what runs
        self.busy_label.hide()
        self.encoder = QProgressBar()
        self.encoder.setMaximumWidth(100)
        self.encoder.setMaximumHeight(14)
        self.encoder.setTextVisible(False)
        self.encoder.setRange(0, 0)
        self.encoder.hide()
        self._encoding = False
        self._waiting_for = ""
        self.precompute_label = QLabel("")
        self.zoom_label = QLabel("")
        self.position_label = QLabel("")
        self.read_only_label = QLabel(READ_ONLY_BANNER)
        self.read_only_label.setStyleSheet("QLabel { background: #f5c542; color: black; padding: 0 6px; }")
        self.read_only_label.setToolTip(
            "The project's folder cannot be written. View and export work; to edit, copy the folder to a "
            "place you can write to and open the copy."
        )
        self.read_only_label.hide()
        self.addPermanentWidget(self.read_only_label)  # permanent: messages never hide it
        self.messageChanged.connect(self._show_full_text)
        for widget in (
            self.position_label,
            self.zoom_label,
            self.precompute_label,
            self.busy_label,
            self.encoder,
            self.model_label,
        ):
            self.addPermanentWidget(widget)

    def set_read_only(self, read_only: bool) -> None:
        """Show or hide the read-only banner."""
        self.read_only_label.setVisible(read_only)

    def _show_full_text(self, text: str) -> None:
        """The message is also the bar's tooltip, so the end of one the bar cuts can be read."""
        self.setToolTip(text)

    def set_model(self, info: EngineInfo | None, note: str = "") -> None:
        if info is None:
            self.model_label.setText(f"Model: {note or 'none'}")
        else:
            self.model_label.setText(f"Model: {info.model} | backend: {info.backend} | device: {info.device}")

    def set_encoding(self, busy: bool) -> None:
        """The engine encodes the shown image: a busy bar saying so (the duration is not known)."""
        self._encoding = busy
        self._show_busy()

    def encoding_started(self, _key: str) -> None:
        self.set_encoding(True)

    def encoding_ended(self, *_: object) -> None:
        self.set_encoding(False)

    def set_waiting_for(self, text: str) -> None:
        """What the AI tool waits for ("Computing the mask…"), "" for nothing; the encoder goes first."""
        self._waiting_for = text
        self._show_busy()

    @property
    def busy_text(self) -> str:
        """The busy indicator's text, "" while it is hidden."""
        return "Encoding the image…" if self._encoding else self._waiting_for

    def _show_busy(self) -> None:
        text = self.busy_text
        self.busy_label.setText(text)
        self.busy_label.setVisible(bool(text))
        self.encoder.setVisible(bool(text))

    def set_precompute(self, done: int, total: int) -> None:
        self.precompute_label.setText("" if done >= total else f"Precomputing {done}/{total}")

    def set_zoom(self, scale: float) -> None:
        self.zoom_label.setText(f"{scale * 100:.0f}%")

    def set_position(self, x: float, y: float) -> None:
        self.position_label.setText(f"x {x:.0f}, y {y:.0f}")

    def clear_view(self) -> None:
        """No image is shown: zoom and cursor position are blank."""
        self.zoom_label.setText("")
        self.position_label.setText("")
