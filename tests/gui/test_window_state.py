"""The window's size, place and docks come back at the next start."""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication

from efficientsam_studio.gui.settings import settings_path
from tests.gui.conftest import FakePredictor


def _docks(window) -> dict[str, bool]:
    return {dock.objectName(): dock.isVisible() for dock in window._docks}


def test_size_and_docks_are_restored(qtbot, make_window, image_folder):
    first = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    assert all(_docks(first).values())
    first.resize(600, 450)
    first._docks[0].hide()  # the Files panel
    qtbot.wait(50)
    first.close()
    assert "geometry" in settings_path().read_text()
    second = make_window(loader=lambda cfg: FakePredictor(), path=image_folder)
    assert second.size().toTuple() == (600, 450)
    assert _docks(second) == {"dock-files": False, "dock-categories": True, "dock-instances": True}


def test_a_first_start_has_the_default_size(qtbot, make_window):
    window = make_window(loader=lambda cfg: FakePredictor(), load=False)
    assert window.size().toTuple() == (1400, 900)


def test_a_place_off_every_screen_is_brought_back(qtbot, make_window):
    first = make_window(loader=lambda cfg: FakePredictor(), load=False)
    first.resize(400, 300)
    first.move(20000, 20000)  # where a screen was that is gone now
    qtbot.wait(50)
    first.close()
    second = make_window(loader=lambda cfg: FakePredictor(), load=False)
    screens = QGuiApplication.screens()
    assert any(screen.availableGeometry().intersects(second.frameGeometry()) for screen in screens)
