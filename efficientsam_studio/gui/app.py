"""Start the desktop app: settings from the user's file (overridden by command-line options), the
main window, the model loading in the background, and the path to open."""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from efficientsam_studio.gui.main_window import MainWindow
from efficientsam_studio.gui.settings import StudioSettings, load_settings
from efficientsam_studio.resources import ResourceNotFoundError, resource_path


@dataclass
class LaunchOptions:
    """Command-line overrides; None keeps the user's saved setting."""

    path: str | None = None
    model: str | None = None
    checkpoint: str | None = None
    backend: str | None = None
    device: str | None = None


def effective_settings(options: LaunchOptions) -> StudioSettings:
    settings = load_settings()
    for name in ("model", "checkpoint", "backend", "device"):
        value = getattr(options, name)
        if value is not None:
            setattr(settings, name, str(Path(value).expanduser()) if name == "checkpoint" else value)
    return settings.validated()


def create_window(options: LaunchOptions) -> MainWindow:
    """The main window with the model loading and ``options.path`` (if any) opened."""
    window = MainWindow(effective_settings(options))
    window.model.load()
    if options.path:
        window.open_path(options.path)
    return window


def run_app(options: LaunchOptions) -> int:
    """Run the app until the window closes; returns the exit status."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("EfficientSAM Studio")
    app.setOrganizationName("efficientsam-studio")
    app.setDesktopFileName("efsam-studio")  # ties windows to efsam-studio.desktop (Wayland icon, task bar)
    try:
        app.setWindowIcon(QIcon(str(resource_path("icons", "efsam-studio.png"))))
    except ResourceNotFoundError:
        pass  # an incomplete installation only loses the window icon
    window = create_window(options)
    window.show()
    # Ctrl+C or a termination request closes the window the normal way (a running batch stops after
    # its current image, the project is saved and unlocked); the timer lets Python run its signal
    # handlers while Qt's event loop waits.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: window.request_quit())
    ticker = QTimer()
    ticker.start(250)
    ticker.timeout.connect(lambda: None)
    return app.exec()
