"""The export dialog: every format of the annotation core, with its polygon choices.

The dialog only collects choices; :func:`run_export` calls the annotation core's exporter, so the
GUI writes exactly what ``efsam-studio export`` writes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QWidget,
)

from efficientsam_studio.annotations.formats.common import POLYGON_POLICIES, ExportReport
from efficientsam_studio.annotations.project import Project
from efficientsam_studio.errors import StudioError
from efficientsam_studio.gui.settings import StudioSettings


@dataclass(frozen=True)
class ExportFormat:
    """``key`` as in ``efsam-studio export --format``; ``target``: "file" (a .json) or "folder";
    ``options``: which of ``polygons``, ``tolerance``, ``image_root`` the exporter takes."""

    key: str
    label: str
    module: str
    function: str
    target: str
    options: tuple[str, ...] = ()

    @property
    def polygons(self) -> bool:
        return "polygons" in self.options


FORMATS: tuple[ExportFormat, ...] = (
    ExportFormat(
        "coco", "COCO instance segmentation (.json)", "coco", "export_coco", "file", ("polygons", "tolerance")
    ),
    ExportFormat(
        "labelme",
        "labelme JSON (one file per image)",
        "labelme",
        "export_labelme",
        "folder",
        ("polygons", "tolerance", "image_root"),
    ),
    ExportFormat(
        "yolo",
        "YOLO segmentation (txt + data.yaml)",
        "yolo",
        "export_yolo",
        "folder",
        ("tolerance", "image_root"),
    ),
    ExportFormat("masks", "PNG masks (semantic and instance)", "png_masks", "export_png_masks", "folder"),
)


MIN_DESTINATION_WIDTH, MAX_DESTINATION_WIDTH = 320, 900  # pixels of the destination field


def _exporter(fmt: ExportFormat) -> Callable[..., ExportReport] | None:
    try:
        module = importlib.import_module(f"efficientsam_studio.annotations.formats.{fmt.module}")
    except ImportError:
        return None
    return getattr(module, fmt.function, None)


def available_formats() -> list[ExportFormat]:
    """The formats whose exporter is installed in the annotation core."""
    return [fmt for fmt in FORMATS if _exporter(fmt) is not None]


def run_export(
    project: Project, key: str, out: str | Path, polygons: str = "auto", tolerance: float = 1.0
) -> ExportReport:
    """Export ``project`` in format ``key`` to ``out`` (a file for COCO, a folder otherwise)."""
    fmt = next((f for f in FORMATS if f.key == key), None)
    exporter = _exporter(fmt) if fmt is not None else None
    if fmt is None or exporter is None:
        raise StudioError(
            f"unknown export format {key!r}; choose one of: {', '.join(f.key for f in available_formats())}"
        )
    values = {"polygons": polygons, "tolerance": tolerance, "image_root": project.folder}
    options = {name: values[name] for name in fmt.options}
    return exporter(project.document, Path(out), **options)


class ExportDialog(QDialog):
    """Choose a format, a destination and the polygon policy; Export runs :func:`run_export`."""

    def __init__(self, project: Project, settings: StudioSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export annotations")
        self.project = project
        self.report: ExportReport | None = None
        self.format = QComboBox()
        for fmt in available_formats():
            self.format.addItem(fmt.label, fmt.key)
        self.format.currentIndexChanged.connect(lambda _: self._suggest_destination())
        self.destination = QLineEdit()
        self.destination.textChanged.connect(self._fit_destination)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.destination, 1)
        row.addWidget(browse)
        self.polygons = QComboBox()
        self.polygons.addItems(list(POLYGON_POLICIES))
        self.polygons.setToolTip("auto: polygons unless a mask has holes or several parts (then RLE)")
        self.tolerance = QDoubleSpinBox(
            minimum=0.0, maximum=50.0, value=settings.polygon_tolerance, singleStep=0.5, suffix=" px"
        )
        form = QFormLayout(self)
        form.addRow("Format", self.format)
        form.addRow("Destination", row)
        form.addRow("Polygons", self.polygons)
        form.addRow("Simplification", self.tolerance)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.export)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self._suggest_destination()

    def _fit_destination(self, text: str) -> None:
        """Widen the destination field to show the whole path (up to MAX_DESTINATION_WIDTH pixels; a
        longer one scrolls), and give the full path as its tooltip."""
        self.destination.setToolTip(text)
        metrics = self.destination.fontMetrics()
        wanted = metrics.horizontalAdvance(text) + 4 * metrics.averageCharWidth()  # frame and cursor
        self.destination.setMinimumWidth(min(max(wanted, MIN_DESTINATION_WIDTH), MAX_DESTINATION_WIDTH))

    def _fmt(self) -> ExportFormat:
        return next(f for f in FORMATS if f.key == self.format.currentData())

    def _suggest_destination(self) -> None:
        fmt = self._fmt()
        stem = self.project.path.name.removesuffix(".efsam.json")
        name = f"{stem}_coco.json" if fmt.target == "file" else f"{stem}_{fmt.key}"
        self.destination.setText(str(self.project.folder / "exports" / name))
        self.polygons.setEnabled(fmt.polygons)
        self.tolerance.setEnabled("tolerance" in fmt.options)

    def _browse(self) -> None:
        if self._fmt().target == "file":
            path, _ = QFileDialog.getSaveFileName(self, "Export to", self.destination.text(), "JSON (*.json)")
        else:
            path = QFileDialog.getExistingDirectory(self, "Export into folder", self.destination.text())
        if path:
            self.destination.setText(path)

    def export(self) -> bool:
        """Run the export; shows the summary (or the error) and closes on success."""
        try:
            self.report = run_export(
                self.project,
                self._fmt().key,
                self.destination.text(),
                self.polygons.currentText(),
                self.tolerance.value(),
            )
        except (StudioError, OSError, ValueError) as exc:
            QMessageBox.critical(self, "Export failed", str(exc))
            return False
        QMessageBox.information(self, "Export done", self.report.summary())
        self.accept()
        return True
