"""``efsam-studio gui`` without a display or with a missing path: an error message, not a Qt abort."""

from __future__ import annotations

import pytest

from efficientsam_studio.cli.gui import display_problem
from efficientsam_studio.cli.main import main


def test_display_problem_on_linux_needs_a_display_or_another_qt_platform():
    assert "xvfb-run" in display_problem({}, "linux")
    assert display_problem({"QT_QPA_PLATFORM": "xcb"}, "linux") is not None
    assert display_problem({"DISPLAY": ":0"}, "linux") is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert display_problem({}, "win32") is None and display_problem({}, "darwin") is None


@pytest.fixture
def no_app(monkeypatch):
    import efficientsam_studio.gui.app as app

    def refuse(*_args, **_kwargs):
        raise AssertionError("the app must not start")

    monkeypatch.setattr(app, "run_app", refuse)


def test_headless_launch_is_refused_with_a_message(tmp_path, monkeypatch, capsys, no_app):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert main([str(tmp_path)]) == 2
    assert "no display" in capsys.readouterr().err


def test_a_missing_path_is_refused_before_qt_starts(tmp_path, capsys, no_app):
    assert main(["gui", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
