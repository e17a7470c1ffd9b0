"""The settings dialog: model, backend, device, cache size, polygon mode and simplification, autosave,
images encoded ahead, the AI tool's hover preview and box refinement."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from efficientsam_studio.engine.loader import BACKEND_DESCRIPTIONS
from efficientsam_studio.gui import model_loading
from efficientsam_studio.gui.settings import BACKENDS, DEVICES, MODELS, POLYGON_MODES, StudioSettings


def _combo(values: tuple[str, ...], current: str) -> QComboBox:
    box = QComboBox()
    box.addItems(list(values))
    box.setCurrentText(current)
    return box


class SettingsDialog(QDialog):
    """Edits a :class:`StudioSettings`; read the result with :meth:`values` after ``accept``."""

    def __init__(self, settings: StudioSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.model = _combo(MODELS, settings.model)
        self.checkpoint = QLineEdit(settings.checkpoint)
        self.checkpoint.setPlaceholderText("installed weights of the model")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.checkpoint, 1)
        row.addWidget(browse)
        self.backend = _combo(BACKENDS, settings.backend)
        for index, name in enumerate(BACKENDS):
            self.backend.setItemData(index, BACKEND_DESCRIPTIONS.get(name, ""), Qt.ItemDataRole.ToolTipRole)
        self.backend.setToolTip(
            "torch-bf16 and onnx-int8 are faster and move the masks slightly; hover an entry for details"
        )
        self.device = _combo(DEVICES, settings.device)
        if not model_loading.cuda_available():  # offered greyed out, saying why
            item = self.device.model().item(DEVICES.index("cuda"))
            item.setEnabled(False)
            item.setToolTip("CUDA is not available on this machine; the model runs on the CPU")
        self.cache_mb = QSpinBox(minimum=0, maximum=65536, value=settings.cache_mb, suffix=" MiB")
        self.polygon_mode = _combo(POLYGON_MODES, settings.polygon_mode)
        self.tolerance = QDoubleSpinBox(
            minimum=0.0, maximum=50.0, value=settings.polygon_tolerance, singleStep=0.5, suffix=" px"
        )
        self.autosave = QDoubleSpinBox(
            minimum=0.0, maximum=3600.0, value=settings.autosave_seconds, singleStep=1.0, suffix=" s"
        )
        self.autosave.setSpecialValueText("off")
        self.ahead = QSpinBox(minimum=0, maximum=50, value=settings.precompute_ahead)
        self.hover = QCheckBox("Preview the mask under the cursor")
        self.hover.setChecked(settings.hover_preview)
        self.hover.setToolTip("Before the first click, the AI tool shows the mask a click would give")
        self.refine = QCheckBox("Segment small boxes again at full resolution")
        self.refine.setChecked(settings.refine_boxes)
        self.refine.setToolTip(
            "A box on a small part of a large image is segmented again in a cut around it (one more "
            "encoder run); the finer mask replaces the first one"
        )
        form = QFormLayout(self)
        form.addRow("Model", self.model)
        form.addRow("Checkpoint / ONNX file", row)
        form.addRow("Backend", self.backend)
        form.addRow("Device", self.device)
        form.addRow("Embedding cache in memory", self.cache_mb)
        form.addRow("Polygon mode", self.polygon_mode)
        form.addRow("Polygon simplification", self.tolerance)
        form.addRow("Autosave after the last edit", self.autosave)
        form.addRow("Images encoded ahead", self.ahead)
        form.addRow("AI tool", self.hover)
        form.addRow("", self.refine)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self._base = settings

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Model weights", "", "Weights (*.pt *.pth *.onnx *.zip);;All (*)"
        )
        if path:
            self.checkpoint.setText(path)

    def values(self) -> StudioSettings:
        """The edited settings (validated)."""
        return StudioSettings(
            model=self.model.currentText(),
            checkpoint=self.checkpoint.text().strip(),
            backend=self.backend.currentText(),
            device=self.device.currentText(),
            cache_mb=self.cache_mb.value(),
            polygon_mode=self.polygon_mode.currentText(),
            polygon_tolerance=self.tolerance.value(),
            autosave_seconds=self.autosave.value(),
            precompute_ahead=self.ahead.value(),
            brush_size=self._base.brush_size,
            hover_preview=self.hover.isChecked(),
            refine_boxes=self.refine.isChecked(),
        ).validated()
