"""The installed Qt binding keeps Python's reference counts: a miscount of None aborts the app."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QGraphicsEllipseItem, QLabel


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12 on")
def test_calls_returning_nothing_keep_the_reference_count_of_none(qtbot):
    label = QLabel()
    qtbot.addWidget(label)
    item = QGraphicsEllipseItem(QRectF(-4, -4, 8, 8))
    calls = 2000
    before = sys.getrefcount(None)
    for index in range(calls):
        item.setZValue(index)
        label.setText("x")
    # a binding that drops one reference per call loses 2 * calls; the app makes such calls all the time
    assert sys.getrefcount(None) - before > -calls // 10
