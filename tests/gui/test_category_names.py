"""Category names asked in dialogs: refused names come back with the reason; the first category."""

from __future__ import annotations

from PySide6.QtWidgets import QInputDialog

from tests.gui.conftest import FakePredictor, ready_window
from tests.gui.test_workflow import click, wait_prediction


class ScriptedInput:
    """Stands in for ``QInputDialog.getText``: answers from ``answers`` and records each call."""

    def __init__(self, monkeypatch, *answers: tuple[str, bool]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str, str]] = []  # title, label, text shown
        monkeypatch.setattr(QInputDialog, "getText", self._get_text)

    def _get_text(self, parent, title, label, *args, text="", **kwargs):
        self.calls.append((title, label, text))
        return self.answers.pop(0)


def test_a_refused_rename_asks_again_with_the_typed_name(qtbot, make_window, image_folder, monkeypatch):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    panel = window.workspace.categories
    panel.add("cup")
    panel.add("plate")
    asked = ScriptedInput(monkeypatch, (" CUP ", True), ("", True), ("bowl", True))
    panel.rename_button.click()
    assert [call[2] for call in asked.calls] == ["plate", " CUP ", ""]
    assert "named 'cup' already exists" in asked.calls[1][1]
    assert "needs a name" in asked.calls[2][1]
    assert [c.name for c in window.workspace.session.document.categories] == ["cup", "bowl"]


def test_cancelling_the_asked_again_name_changes_nothing(qtbot, make_window, image_folder, monkeypatch):
    window = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    panel = window.workspace.categories
    panel.add("cup")
    ScriptedInput(monkeypatch, ("Cup", True), ("Cup", False))
    panel.add_button.click()
    assert [c.name for c in window.workspace.session.document.categories] == ["cup"]


def test_accepting_with_no_category_asks_for_its_name(qtbot, make_window, image_folder, monkeypatch):
    window = ready_window(qtbot, make_window, image_folder, FakePredictor())
    ws = window.workspace
    assert ws.categories.empty_hint.isVisible()
    click(qtbot, window, 40, 30)
    wait_prediction(qtbot, window)
    ScriptedInput(monkeypatch, ("", False))  # cancelled: the mask stays on offer
    window.action("accept").trigger()
    assert not ws.session.current_instances() and ws.ai.prediction is not None
    asked = ScriptedInput(monkeypatch, ("cat", True))
    window.action("accept").trigger()
    (instance,) = ws.session.current_instances()
    assert ws.session.document.category(instance.category_id).name == "cat"
    assert asked.calls[0][1] == "Name of the category of this object:"
    assert not ws.categories.empty_hint.isVisible()
