"""What the app says when the model cannot load: the kind of problem, in the app's own words."""

from __future__ import annotations

import re

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog

from efficientsam_studio.gui import model_loading
from efficientsam_studio.gui.dialogs import weights as weights_dialog
from efficientsam_studio.gui.dialogs.settings_dialog import SettingsDialog
from efficientsam_studio.gui.engine_worker import EngineConfig
from efficientsam_studio.gui.settings import StudioSettings

CLI = re.compile(r"efsam-studio|(^|\s)--[a-z]")


def click(qtbot, window, x, y):
    canvas = window.workspace.canvas
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=canvas.mapFromScene(x, y))


@pytest.fixture
def offers(monkeypatch):
    shown = []

    def fake_exec(dialog):
        shown.append(dialog)
        return QDialog.DialogCode.Rejected

    monkeypatch.setattr(weights_dialog.WeightsOfferDialog, "exec", fake_exec)
    return shown


def assert_gui_sentences(text: str) -> None:
    assert text[0].isupper() and text.endswith("."), text
    assert not CLI.search(text), text


def test_a_device_problem_points_to_settings_not_to_a_download(
    qtbot, make_window, image_folder, offers, message_boxes
):
    from efficientsam_studio.engine.device import DeviceError

    def load(cfg):
        raise DeviceError("unknown device 'tpu'; choose one of: auto, cpu, cuda")

    window = make_window(loader=load, path=image_folder, settings=StudioSettings(device="cpu"))
    click(qtbot, window, 40, 30)
    assert offers == []
    assert message_boxes.titles("warning") == ["Model not loaded"]
    text = message_boxes.calls[-1][2]
    assert "Settings" in text and "device" in text
    assert_gui_sentences(text)


def test_an_onnx_backend_with_a_checkpoint_says_so(qtbot, make_window, image_folder, tiny_checkpoint, offers):
    settings = StudioSettings(model="tiny", checkpoint=str(tiny_checkpoint), backend="onnx", device="cpu")
    window = make_window(path=image_folder, settings=settings)
    assert window.engine.info is None and window.engine.failure_kind == "backend"
    text = window.model.last_error
    assert "PyTorch checkpoint" in text and "Settings" in text
    assert_gui_sentences(text)
    click(qtbot, window, 40, 30)
    assert offers == []


def test_missing_weights_still_offer_the_download_in_gui_words(qtbot, make_window, image_folder, offers):
    window = make_window(path=image_folder, settings=StudioSettings(model="vit_t", device="cpu"), load=False)
    messages = []
    window.model.status.connect(messages.append)
    window.model.load()
    qtbot.waitUntil(lambda: not window.engine.is_loading, timeout=30_000)
    assert window.engine.failure_kind == "missing"
    assert_gui_sentences(window.model.last_error)
    assert messages[-1].startswith("No model: No vit_t weights") and ". The polygon" in messages[-1]
    click(qtbot, window, 40, 30)
    assert len(offers) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_saved_cuda_device_falls_back_to_the_cpu(qtbot, make_window, image_folder, tiny_checkpoint):
    settings = StudioSettings(model="tiny", checkpoint=str(tiny_checkpoint), backend="torch", device="cuda")
    window = make_window(settings=settings, load=False)
    messages = []
    window.model.status.connect(messages.append)
    window.model.load()
    qtbot.waitUntil(lambda: window.engine.info is not None, timeout=30_000)
    assert window.engine.info.device == "cpu"
    assert "CUDA is not available" in messages[-1] and "Settings" in messages[-1]


def test_the_settings_dialog_greys_out_cuda_without_it(qtbot, monkeypatch):
    monkeypatch.setattr(model_loading, "cuda_available", lambda: False)
    dialog = SettingsDialog(StudioSettings())
    qtbot.addWidget(dialog)
    index = dialog.device.findText("cuda")
    assert not dialog.device.model().item(index).isEnabled()
    monkeypatch.setattr(model_loading, "cuda_available", lambda: True)
    dialog = SettingsDialog(StudioSettings())
    qtbot.addWidget(dialog)
    assert dialog.device.model().item(dialog.device.findText("cuda")).isEnabled()


def test_engine_messages_become_gui_sentences():
    config = EngineConfig(model="vit_t", device="cuda")
    raw = (
        "device 'cuda' was requested but CUDA is not available to torch 2.5.1 on this machine (no NVIDIA "
        "GPU, or a CPU-only torch build); use --device cpu or auto"
    )
    text = model_loading.gui_failure_text("device", raw, config)
    assert "CUDA is not available" in text and "Settings" in text
    assert_gui_sentences(text)
    raw = (
        "x.pt: holds an EfficientSAM vit_s checkpoint, but model 'vit_t' was requested; "
        "choose model 'vit_s' (e.g. --model vit_s)"
    )
    text = model_loading.gui_failure_text("file", raw, EngineConfig(checkpoint="x.pt"))
    assert "holds an EfficientSAM vit_s checkpoint" in text and "(e" not in text
    assert "choose model vit_s in Settings" in text
    assert_gui_sentences(text)


def test_download_errors_speak_of_the_download_button():
    raw = (
        "http://x/efficient_sam_vitt.pt: download failed after 5 failed attempts in a row (URLError: no "
        "route); check the network connection and run the command again; the 1,024 bytes received so far "
        "are kept in /w/efficient_sam_vitt.pt.part and the next run resumes from there"
    )
    text = model_loading.gui_download_text(raw)
    assert "click Download again" in text and "next download resumes" in text
    assert_gui_sentences(text)
