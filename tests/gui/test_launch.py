"""Command line, settings persistence, the shortcuts help, keyboard-first use, icons."""

from __future__ import annotations

import qtawesome as qta
from PySide6.QtCore import Qt

from efficientsam_studio.cli.main import build_parser
from efficientsam_studio.gui.actions import ACTIONS, shortcut_rows
from efficientsam_studio.gui.app import LaunchOptions, effective_settings
from efficientsam_studio.gui.dialogs.settings_dialog import SettingsDialog
from efficientsam_studio.gui.dialogs.shortcuts import ShortcutsDialog
from efficientsam_studio.gui.icons import NAMES
from efficientsam_studio.gui.settings import StudioSettings, load_settings, save_settings, settings_path
from tests.gui.conftest import FakePredictor


def test_gui_subcommand_options():
    args = build_parser().parse_args(
        ["gui", "photos", "--model", "tiny", "--backend", "onnx", "--device", "cpu"]
    )
    assert (args.path, args.model, args.backend, args.device) == ("photos", "tiny", "onnx", "cpu")


def test_every_backend_of_the_engine_is_offered(qtbot, efsam_home):
    """The lower-precision backends are reachable from the app, not only from the engine."""
    for backend in ("torch-bf16", "onnx-int8"):
        assert build_parser().parse_args(["gui", "--backend", backend]).backend == backend
        label = ["label", "photos", "--out", "p", "--everything", "--backend", backend]
        assert build_parser().parse_args(label).backend == backend
    dialog = SettingsDialog(StudioSettings(backend="torch-bf16"))
    qtbot.addWidget(dialog)
    offered = [dialog.backend.itemText(i) for i in range(dialog.backend.count())]
    assert set(offered) == {"auto", "torch", "onnx", "torch-bf16", "onnx-int8"}
    assert dialog.values().backend == "torch-bf16"
    tip = dialog.backend.itemData(offered.index("torch-bf16"), Qt.ItemDataRole.ToolTipRole)
    assert "AMX" in tip
    save_settings(dialog.values())
    assert load_settings().backend == "torch-bf16"
    assert StudioSettings(backend="fast").validated().backend == "auto"


def test_settings_persist_under_efsam_home(efsam_home, qtbot):
    save_settings(StudioSettings(model="vit_s", cache_mb=512, polygon_mode="largest", autosave_seconds=5))
    assert settings_path().is_relative_to(efsam_home)
    loaded = load_settings()
    assert (loaded.model, loaded.cache_mb, loaded.polygon_mode, loaded.autosave_seconds) == (
        "vit_s",
        512,
        "largest",
        5.0,
    )
    options = effective_settings(LaunchOptions(model="tiny", device="cpu"))
    assert options.model == "tiny" and options.device == "cpu" and options.cache_mb == 512


def test_settings_dialog_round_trip(qtbot):
    dialog = SettingsDialog(StudioSettings(backend="onnx", polygon_tolerance=2.5))
    qtbot.addWidget(dialog)
    assert dialog.values().backend == "onnx" and dialog.values().polygon_tolerance == 2.5
    dialog.device.setCurrentText("cpu")
    dialog.autosave.setValue(0)
    values = dialog.values()
    assert values.device == "cpu" and values.autosave_seconds == 0


def test_shortcuts_help_lists_every_shortcut(qtbot):
    dialog = ShortcutsDialog()
    qtbot.addWidget(dialog)
    texts = {dialog.table.item(r, 2).text() for r in range(dialog.table.rowCount())}
    assert {spec.text for spec in ACTIONS if spec.shortcuts} <= texts
    keys = " ".join(row[1] for row in shortcut_rows())
    for key in ("Tab", "Return", "Escape", "Backspace", "D", "PgDown", "1 … 9", "F1"):
        assert key in keys


def test_icons_exist_in_the_installed_qtawesome(qtbot):
    for name in NAMES.values():
        assert not qta.icon(name).isNull(), name


def test_keyboard_first_labelling(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    ws.categories.add("a")
    ws.categories.add("b")
    canvas = ws.canvas
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_1)
    assert ws.session.current_category.name == "a"
    qtbot.waitUntil(lambda: window.engine.is_ready_for(ws.session.image_key(ws.session.current_image_id)))
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=canvas.mapFromScene(40, 30))
    qtbot.waitUntil(lambda: ws.ai.prediction is not None and not ws.ai.waiting)
    qtbot.keyClick(canvas, Qt.Key.Key_Tab)
    assert ws.ai.candidate == 1
    qtbot.keyClick(canvas, Qt.Key.Key_Return)
    assert len(ws.session.current_instances()) == 1
    first = ws.session.current_image_id
    qtbot.keyClick(canvas, Qt.Key.Key_D)
    assert ws.session.current_image_id != first
    qtbot.keyClick(canvas, Qt.Key.Key_PageUp)
    assert ws.session.current_image_id == first
    qtbot.keyClick(canvas, Qt.Key.Key_P)
    assert window.tool is ws.polygon
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert ws.session.current_instances() == []


def test_fast_clicks_are_never_lost(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    ws = window.workspace
    ws.categories.add("a")
    window.set_tool("polygon")
    viewport = ws.canvas.viewport()
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=ws.canvas.mapFromScene(10, 10))
    qtbot.mouseDClick(viewport, Qt.MouseButton.LeftButton, pos=ws.canvas.mapFromScene(50, 10))
    assert len(ws.polygon.vertices) == 2  # a quick second click elsewhere is a vertex
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=ws.canvas.mapFromScene(50, 40))
    qtbot.mouseDClick(viewport, Qt.MouseButton.LeftButton, pos=ws.canvas.mapFromScene(50, 40))
    assert len(ws.session.current_instances()) == 1  # double click on the last vertex closes it


def test_file_filter_by_name_and_status(qtbot, make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    files = window.workspace.files
    files.text_filter.setText("co")
    assert files.proxy.rowCount() == 1
    files.text_filter.clear()
    window.action("mark_done").trigger()
    files.status_filter.setCurrentIndex(files.status_filter.findData("done"))
    assert files.proxy.rowCount() == 1
    files.status_filter.setCurrentIndex(files.status_filter.findData("unlabelled"))
    assert files.proxy.rowCount() == 2


def test_the_gui_modules_import_neither_torch_nor_onnxruntime():
    import subprocess
    import sys

    code = (
        "import sys, efficientsam_studio.gui.app, efficientsam_studio.gui.main_window; "
        "print('torch' in sys.modules, 'onnxruntime' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
