"""The download dialog says when the connection failed and when it tries again."""

from __future__ import annotations

from efficientsam_studio.gui.dialogs.weights import WeightsDownload


def test_a_retry_shows_the_reason_and_the_attempt(qtbot):
    download = WeightsDownload("vit_t")
    qtbot.addWidget(download.dialog)
    download._worker.retrying.emit(2, 5, 2.0, "HTTP 503")  # as the worker thread emits it
    qtbot.waitUntil(lambda: "Trying again" in download.dialog.labelText(), timeout=2000)
    text = download.dialog.labelText()
    assert "the connection failed (HTTP 503)" in text and "Trying again in 2 s (attempt 2 of 5)" in text
    download._on_retrying(3, 5, 0.0, "timed out")
    assert "Trying again now (attempt 3 of 5)" in download.dialog.labelText()
    download._thread.quit()
    download._thread.wait()
