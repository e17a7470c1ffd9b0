"""The model's life next to the window's: closing while a model loads, and a file picked for the model."""

from __future__ import annotations

import threading

from tests.gui.conftest import FakePredictor


def _gated_loader(gate: threading.Event):
    """The first load answers at once; later loads wait for ``gate`` (a model still loading)."""
    calls = []

    def load(cfg):
        calls.append(cfg)
        if len(calls) > 1:
            gate.wait(5)
        return FakePredictor()

    return load


def test_closing_while_the_model_loads_is_quiet(qtbot, make_window, image_folder):
    """The answer of a load that ends after the window closed reaches no deleted part of the window
    (pytest-qt fails the test on an exception raised in a slot)."""
    gate = threading.Event()
    window = make_window(loader=_gated_loader(gate), path=image_folder)
    window.model.load()  # still loading when the window closes
    threading.Timer(0.3, gate.set).start()
    window.close()  # closes the project (its canvas and tools go away) and waits for the worker
    qtbot.wait(300)  # deletes the project's widgets and delivers the late answer
    assert window.workspace is None


def test_closing_while_a_load_fails_is_quiet(qtbot, make_window, image_folder):
    gate = threading.Event()
    calls = []

    def load(cfg):
        calls.append(cfg)
        if len(calls) > 1:
            gate.wait(5)
            raise OSError("gone")
        return FakePredictor()

    window = make_window(loader=load, path=image_folder)
    window.model.load()
    threading.Timer(0.3, gate.set).start()
    window.close()
    qtbot.wait(300)
    assert window.workspace is None


# ----- a file picked in the weights dialog -----
def test_a_picked_file_that_fails_leaves_the_settings_alone(qtbot, make_window, image_folder, message_boxes):
    from efficientsam_studio.errors import CheckpointError
    from efficientsam_studio.gui.settings import StudioSettings, load_settings, save_settings

    def load(cfg):
        if cfg.checkpoint:
            raise CheckpointError(f"{cfg.checkpoint}: is corrupt, not a readable checkpoint")
        return FakePredictor()

    save_settings(StudioSettings(autosave_seconds=0.2))
    window = make_window(loader=load, path=image_folder)
    assert window.engine.info is not None
    window.model.use_file("/nowhere/photo.pt")
    qtbot.waitUntil(lambda: window.engine.info is not None and not window.engine.is_loading, timeout=10_000)
    assert window.settings.checkpoint == "" and load_settings().checkpoint == ""
    assert message_boxes.titles("warning") == ["Cannot use this file"]
    assert "photo.pt" in message_boxes.calls[-1][2] and "unchanged" in message_boxes.calls[-1][2]


def test_a_picked_checkpoint_of_another_model_switches_the_model(qtbot, make_window, tiny_checkpoint):
    from efficientsam_studio.gui.settings import StudioSettings, load_settings

    window = make_window(settings=StudioSettings(model="vit_t", device="cpu", autosave_seconds=0.2))
    assert window.engine.info is None  # no vit_t weights in the test's home
    messages = []
    window.model.status.connect(messages.append)
    window.model.use_file(str(tiny_checkpoint))
    qtbot.waitUntil(lambda: window.engine.info is not None, timeout=30_000)
    assert window.engine.info.model == "tiny"
    saved = load_settings()
    assert (saved.model, saved.checkpoint) == ("tiny", str(tiny_checkpoint))
    assert window.settings.model == "tiny"
    assert "model setting is now tiny" in messages[-1]
