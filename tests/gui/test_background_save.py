"""Saving off the GUI thread: Ctrl+S and autosave encode and write in a worker thread, one save at a
time; an edit made meanwhile stays unsaved; closing waits for the running save and keeps the last
edits; failures are reported as before."""

from __future__ import annotations

import json
import threading
import time

import pytest

from efficientsam_studio.annotations import project as project_module
from efficientsam_studio.annotations.errors import SaveError
from tests.gui.conftest import FakePredictor


class GatedEncode:
    """Replaces encode_project: each call waits until ``release`` (counts calls running at once)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real = project_module.encode_project
        self.gate = threading.Event()
        self.started = threading.Event()
        self.threads: list[threading.Thread] = []
        self.running = self.most_at_once = 0
        self._lock = threading.Lock()
        monkeypatch.setattr(project_module, "encode_project", self)

    def __call__(self, document, settings=None):
        with self._lock:
            self.threads.append(threading.current_thread())
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.started.set()
        try:
            assert self.gate.wait(10), "the test never released the save"
            return self.real(document, settings)
        finally:
            with self._lock:
                self.running -= 1

    def release(self) -> None:
        self.gate.set()


def _names_on_disk(ws) -> list[str]:
    return [c["name"] for c in json.loads(ws.project.path.read_text("utf-8"))["categories"]]


@pytest.fixture
def window(make_window, image_folder):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    window.workspace.autosave.set_delay(0)  # saves only when the test asks
    return window


def test_ctrl_s_encodes_and_writes_off_the_gui_thread(qtbot, window, monkeypatch):
    ws = window.workspace
    encode = GatedEncode(monkeypatch)
    ws.categories.add("cat")
    start = time.perf_counter()
    assert window.save()
    assert time.perf_counter() - start < 1.0  # returned while the encode is held
    assert encode.started.wait(5)
    assert encode.threads[0] is not threading.main_thread()
    assert ws.project.document.dirty  # not on disk yet
    encode.release()
    qtbot.waitUntil(lambda: not ws.project.document.dirty, timeout=5000)
    assert "cat" in _names_on_disk(ws)
    assert "Saved" in window.status.currentMessage()
    assert not window.windowTitle().startswith("*") and "*" not in window.windowTitle()


def test_an_edit_during_a_save_stays_unsaved_and_saves_never_overlap(qtbot, window, monkeypatch):
    ws = window.workspace
    encode = GatedEncode(monkeypatch)
    ws.categories.add("first")
    assert ws.autosave.save_in_background()
    assert encode.started.wait(5)
    ws.categories.add("second")  # while the first save runs
    assert ws.autosave.save_in_background()  # queued, not started
    assert ws.autosave.save_in_background()
    assert len(encode.threads) == 1
    encode.release()
    qtbot.waitUntil(lambda: not ws.autosave.saving and not ws.project.document.dirty, timeout=5000)
    assert encode.most_at_once == 1 and len(encode.threads) == 2  # the queued requests ran once, after
    assert _names_on_disk(ws)[-2:] == ["first", "second"]


def test_a_save_that_ends_after_an_edit_leaves_the_document_dirty(qtbot, window, monkeypatch):
    ws = window.workspace
    encode = GatedEncode(monkeypatch)
    ws.categories.add("first")
    assert ws.autosave.save_in_background()
    assert encode.started.wait(5)
    ws.categories.add("second")
    ws.autosave._again = False  # as if no second save had been asked for (timer not yet fired)
    encode.release()
    qtbot.waitUntil(lambda: not ws.autosave.saving, timeout=5000)
    assert ws.project.document.dirty
    assert "second" not in _names_on_disk(ws) and "first" in _names_on_disk(ws)


def test_closing_waits_for_the_running_save_and_keeps_the_last_edits(qtbot, window, monkeypatch):
    ws = window.workspace
    ws.autosave.set_delay(2.0)  # autosave on: closing saves
    encode = GatedEncode(monkeypatch)
    ws.categories.add("first")
    assert window.save()
    assert encode.started.wait(5)
    ws.categories.add("last")
    threading.Timer(0.3, encode.release).start()
    project = ws.project
    window.close()
    assert window.workspace is None
    names = [c["name"] for c in json.loads(project.path.read_text("utf-8"))["categories"]]
    assert names[-2:] == ["first", "last"]
    assert project.read_only  # unlocked only after the writes
    assert encode.most_at_once == 1


def test_a_failed_background_save_is_reported_and_keeps_the_edits(qtbot, window, monkeypatch):
    ws = window.workspace

    def refuse(*_args):
        raise SaveError("no space left on device")

    monkeypatch.setattr(ws.project, "write_save", refuse)
    ws.categories.add("cat")
    with qtbot.waitSignal(ws.autosave.failed, timeout=5000):
        assert window.save()
    assert ws.project.document.dirty
    assert "no space left" in window.status.currentMessage()
    monkeypatch.undo()
    assert ws.autosave.save_now() and not ws.project.document.dirty
    assert "cat" in _names_on_disk(ws)
