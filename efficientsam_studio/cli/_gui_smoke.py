"""``efsam-studio gui PATH --smoke-test``: open the app without anyone at the keyboard, and quit.

It checks that an installation (a pip install or the desktop bundle) can start the window, open PATH,
load the model chosen by the settings and options, and encode the first image. Any dialog that opens
(a refusal to open PATH, an error) counts as a failure and is closed. One JSON object is printed:

``{"opened": PROJECT or null, "images": N, "image": PATH or null, "model": {"model", "backend",
"device"} or null, "model_error": MESSAGE or null, "encoded": bool, "dialogs": [TEXT...],
"error": MESSAGE or null}``

Exit status 0 when PATH opened, no dialog appeared and, when a model loaded, the first image was
encoded; 1 otherwise. Without installed weights the model does not load: that is reported, not failed,
because the manual tools work without a model.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Any

TIMEOUT_S = 300.0
"""How long to wait for the model to load and the first image to encode."""


def run_smoke_test(options: Any, timeout_s: float = TIMEOUT_S) -> int:
    """Run the check for ``options`` (a ``gui.app.LaunchOptions``); returns the exit status."""
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from efficientsam_studio.gui.app import create_window

    app = QApplication.instance() or QApplication(sys.argv[:1])
    report: dict[str, Any] = {
        "opened": None,
        "images": 0,
        "image": None,
        "model": None,
        "model_error": None,
        "encoded": False,
        "dialogs": [],
        "error": None,
    }

    def close_dialogs() -> None:
        widget = app.activeModalWidget()
        if widget is not None:
            text = widget.text() if isinstance(widget, QMessageBox) else widget.windowTitle()
            report["dialogs"].append(text)
            widget.close()

    watchdog = QTimer()
    watchdog.timeout.connect(close_dialogs)
    watchdog.start(100)

    window = create_window(options)
    window.show()
    engine = window.engine
    loop = QEventLoop()
    deadline = QTimer()
    deadline.setSingleShot(True)
    deadline.timeout.connect(
        lambda: (report.__setitem__("error", f"timed out after {timeout_s:g} s"), loop.quit())
    )
    deadline.start(int(timeout_s * 1000))

    def wait() -> None:
        if report["error"] is None:
            loop.exec()

    if engine.info is None:
        engine.loaded.connect(lambda _info: loop.quit())
        engine.load_failed.connect(lambda message: (report.__setitem__("model_error", message), loop.quit()))
        if engine.is_loading:
            wait()
    ws = window.workspace
    if ws is not None:
        report["opened"] = str(ws.project.path)
        report["images"] = len(ws.project.document.images)
        image_id = ws.session.current_image_id
        if image_id is not None:
            report["image"] = str(ws.session.image_path(image_id))
            if engine.info is not None:
                report["model"] = asdict(engine.info)
                key = ws.session.image_key(image_id)
                engine.image_ready.connect(lambda _key: loop.quit())
                engine.failed.connect(lambda message: (report.__setitem__("error", message), loop.quit()))
                if not engine.is_ready_for(key):
                    wait()
                report["encoded"] = engine.is_ready_for(key)
    elif report["error"] is None:
        report["error"] = "nothing was opened"
    deadline.stop()
    if ws is not None and ws.project.document.dirty:
        window.save()
    window.close()
    watchdog.stop()
    print(json.dumps(report, indent=2))
    failed = report["error"] or report["dialogs"] or (report["model"] is not None and not report["encoded"])
    return 1 if failed else 0
