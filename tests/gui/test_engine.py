"""The real engine behind the GUI: the tiny random-weight model end to end, the first run without
weights, and the event loop's responsiveness while the encoder runs in the worker."""

from __future__ import annotations

import threading
import time

from PySide6.QtCore import QElapsedTimer, Qt, QTimer
from PySide6.QtWidgets import QDialog, QPushButton

from efficientsam_studio.gui.dialogs import weights as weights_dialog
from efficientsam_studio.gui.settings import StudioSettings, load_settings
from tests.gui.conftest import FakePredictor, wait_shown


def tiny_settings(checkpoint) -> StudioSettings:
    return StudioSettings(
        model="tiny", checkpoint=str(checkpoint), backend="torch", device="cpu", autosave_seconds=0.2
    )


def click(qtbot, window, x, y, button=Qt.MouseButton.LeftButton):
    canvas = window.workspace.canvas
    qtbot.mouseClick(canvas.viewport(), button, pos=canvas.mapFromScene(x, y))


def test_tiny_model_open_click_preview_cycle_accept(qtbot, make_window, image_folder, tiny_checkpoint):
    progress = []
    window = make_window(settings=tiny_settings(tiny_checkpoint))
    assert window.engine.info is not None, window.model.last_error
    window.engine.precompute_progress.connect(lambda done, total: progress.append((done, total)))
    assert window.open_path(image_folder)
    wait_shown(qtbot, window)
    assert window.engine.info.model == "tiny"
    ws = window.workspace
    ws.categories.add("object")
    click(qtbot, window, 48, 32)
    click(qtbot, window, 10, 10, Qt.MouseButton.RightButton)
    ai = ws.ai
    qtbot.waitUntil(lambda: ai.prediction is not None and not ai.waiting, timeout=30_000)
    masks, scores = ai.prediction.masks, ai.prediction.scores
    assert masks.shape == (3, 64, 96) and masks.dtype == bool
    assert list(scores) == sorted(scores, reverse=True)
    nonempty = [i for i in range(3) if masks[i].any()]
    assert nonempty, "the random model gave three empty masks"
    while ai.candidate != nonempty[0]:
        window.action("cycle").trigger()
    window.action("accept").trigger()
    (instance,) = ws.session.current_instances()
    assert instance.area == int(masks[nonempty[0]].sum()) and instance.source == "ai"
    qtbot.waitUntil(lambda: (2, 2) in progress, timeout=30_000)  # both next images went through the cache
    window.action("next_image").trigger()
    wait_shown(qtbot, window)
    qtbot.waitUntil(
        lambda: window.engine.is_ready_for(ws.session.image_key(ws.session.current_image_id)), timeout=30_000
    )
    click(qtbot, window, 30, 30)
    qtbot.waitUntil(lambda: ai.prediction is not None and not ai.waiting, timeout=30_000)
    assert ai.prediction.image_key == ws.session.image_key(ws.session.current_image_id)


def test_event_loop_never_stalls_while_the_encoder_runs(qtbot, make_window, image_folder):
    predictor = FakePredictor(encode_seconds=1.5)
    window = make_window(loader=lambda cfg: predictor, path=image_folder)
    engine = window.engine
    gaps: list[float] = []
    clock = QElapsedTimer()
    timer = QTimer()
    timer.setInterval(10)

    def tick() -> None:
        gaps.append(clock.restart())

    timer.timeout.connect(tick)
    qtbot.waitUntil(lambda: predictor.encoded >= 1, timeout=10_000)  # first image encoded on open
    before = predictor.encoded
    clock.start()
    timer.start()
    started = time.perf_counter()
    window.action("next_image").trigger()  # loads in a thread, then a new 1.5 s encode starts in the worker
    wait_shown(qtbot, window)
    click(qtbot, window, 40, 30)  # the prompt queues behind the encode without blocking
    qtbot.waitUntil(
        lambda: (
            predictor.encoded > before
            and engine.is_ready_for(
                window.workspace.session.image_key(window.workspace.session.current_image_id)
            )
        ),
        timeout=10_000,
    )
    encode_wall = time.perf_counter() - started
    timer.stop()
    assert encode_wall >= 1.4  # the measurement covered the whole encode
    assert len(gaps) > 50
    assert max(gaps[1:]) < 100, f"the GUI thread stalled for {max(gaps[1:])} ms"
    qtbot.waitUntil(lambda: window.workspace.ai.prediction is not None, timeout=10_000)


def test_no_weights_offers_download_and_manual_tools_still_work(
    qtbot, make_window, image_folder, monkeypatch
):
    offers = []

    def fake_exec(dialog):
        offers.append(dialog)
        return QDialog.DialogCode.Rejected

    monkeypatch.setattr(weights_dialog.WeightsOfferDialog, "exec", fake_exec)
    window = make_window(path=image_folder, settings=StudioSettings(model="vit_t", autosave_seconds=0))
    assert window.engine.info is None
    assert "vit_t" in window.model.last_error and "download" in window.model.last_error.lower()
    assert "Model: not loaded" in window.status.model_label.text()
    ws = window.workspace
    click(qtbot, window, 40, 30)  # the AI tool without a model
    assert len(offers) == 1 and offers[0].download_button.text() == "Download vit_t"
    ws.categories.add("manual")
    window.set_tool("polygon")
    for x, y in ((10, 10), (50, 10), (50, 40)):
        click(qtbot, window, x, y)
    window.action("accept").trigger()
    assert len(ws.session.current_instances()) == 1


def test_download_runs_in_a_worker_and_can_be_cancelled(qtbot, make_window, monkeypatch):
    from efficientsam_studio.engine import weights
    from efficientsam_studio.engine.download import DownloadCancelled

    gui_thread = threading.get_ident()
    seen = {}

    def fake_download(name, progress=None, cancel=None, **kwargs):
        seen["thread"] = threading.get_ident()
        for done in range(0, 1000):
            if cancel.is_set():
                raise DownloadCancelled(f"download of {name} cancelled")
            progress(done * 100, 100_000)
            time.sleep(0.01)
        raise AssertionError("the download was not cancelled")

    monkeypatch.setattr(weights, "download", fake_download)
    window = make_window(settings=StudioSettings(model="vit_t"), load=False)
    download = window.model.start_download("vit_t")
    qtbot.waitUntil(lambda: download.dialog.value() > 0, timeout=5000)
    with qtbot.waitSignal(download.cancelled, timeout=5000):
        download.dialog.findChild(QPushButton).click()  # the user presses Cancel
    assert seen["thread"] != gui_thread
    assert window.model.download is None


def test_picking_a_checkpoint_file_loads_it_and_is_remembered(qtbot, make_window, tiny_checkpoint):
    window = make_window(settings=StudioSettings(model="tiny", device="cpu", backend="torch"))
    assert window.engine.info is None
    window.model.use_file(str(tiny_checkpoint))
    qtbot.waitUntil(lambda: window.engine.info is not None, timeout=30_000)
    assert load_settings().checkpoint == str(tiny_checkpoint)


def test_picking_an_onnx_file_switches_to_an_onnx_backend_keeping_int8(qtbot, make_window, tmp_path):
    encoder = tmp_path / "vit_t_encoder.onnx"
    encoder.write_bytes(b"not a model")  # the load fails in the worker; the choice of backend is what counts
    for before, after in (("torch", "onnx"), ("torch-bf16", "onnx"), ("onnx-int8", "onnx-int8")):
        asked = []

        def refuse(cfg, asked=asked):
            asked.append(cfg)
            raise OSError("not a model")

        window = make_window(
            loader=refuse, settings=StudioSettings(model="vit_t", backend=before), load=False
        )
        window.model.use_file(str(encoder))
        qtbot.waitUntil(lambda w=window: not w.engine.is_loading, timeout=30_000)
        assert asked[-1].backend == after and asked[-1].checkpoint == str(encoder)
        # the file did not load: the settings keep their backend
        assert window.model.settings.backend == before and load_settings().checkpoint == ""
