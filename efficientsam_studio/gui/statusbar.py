"""The status bar: messages, model / backend / device, encoder progress, zoom and cursor position."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QWidget

from efficientsam_studio.gui.engine_service import EngineInfo


class StudioStatusBar(QStatusBar):
    """Permanent widgets on the right; tool and error messages on the left."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model_label = QLabel("Model: none")
        self.encoder = QProgressBar()
        self.encoder.setMaximumWidth(140)
        self.encoder.setTextVisible(True)
        self.encoder.hide()
        self.precompute_label = QLabel("")
        self.zoom_label = QLabel("")
        self.position_label = QLabel("")
        for widget in (
            self.position_label,
            self.zoom_label,
            self.precompute_label,
            self.encoder,
            self.model_label,
        ):
            self.addPermanentWidget(widget)

    def set_model(self, info: EngineInfo | None, note: str = "") -> None:
        if info is None:
            self.model_label.setText(f"Model: {note or 'none'}")
        else:
            self.model_label.setText(f"Model: {info.model} | backend: {info.backend} | device: {info.device}")

    def set_encoding(self, busy: bool, text: str = "Encoding…") -> None:
        """A busy bar while the encoder runs (its duration is not known in advance)."""
        if busy:
            self.encoder.setRange(0, 0)
            self.encoder.setFormat(text)
            self.encoder.show()
        else:
            self.encoder.hide()

    def set_precompute(self, done: int, total: int) -> None:
        self.precompute_label.setText("" if done >= total else f"Precomputing {done}/{total}")

    def set_zoom(self, scale: float) -> None:
        self.zoom_label.setText(f"{scale * 100:.0f}%")

    def set_position(self, x: float, y: float) -> None:
        self.position_label.setText(f"x {x:.0f}, y {y:.0f}")
