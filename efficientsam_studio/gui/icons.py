"""Icons of the app, from qtawesome's Material Design Icons 6 set (names checked by the tests)."""

from __future__ import annotations

import qtawesome as qta
from PySide6.QtGui import QIcon

NAMES = {
    "open": "mdi6.folder-open",
    "save": "mdi6.content-save",
    "undo": "mdi6.undo",
    "redo": "mdi6.redo",
    "export": "mdi6.export",
    "settings": "mdi6.cog",
    "help": "mdi6.help-circle",
    "ai": "mdi6.robot",
    "polygon": "mdi6.vector-polygon",
    "brush": "mdi6.brush",
    "eraser": "mdi6.eraser",
    "zoom_in": "mdi6.magnify-plus",
    "zoom_out": "mdi6.magnify-minus",
    "fit": "mdi6.fit-to-screen",
    "actual": "mdi6.image-filter-center-focus",
    "previous": "mdi6.arrow-left",
    "next": "mdi6.arrow-right",
    "add": "mdi6.plus",
    "rename": "mdi6.pencil",
    "colour": "mdi6.palette",
    "delete": "mdi6.delete",
    "up": "mdi6.arrow-up",
    "down": "mdi6.arrow-down",
    "relabel": "mdi6.tag",
    "accept": "mdi6.check",
    "download": "mdi6.download",
    "import": "mdi6.file-import",
    "done": "mdi6.check-circle",
    "unlabelled": "mdi6.circle-outline",
    "in_progress": "mdi6.progress-clock",
    "skipped": "mdi6.skip-next-circle",
    "needs_review": "mdi6.alert-circle",
    "unreadable": "mdi6.image-broken-variant",
}


def icon(key: str, color: str | None = None) -> QIcon:
    """The icon named ``key`` in :data:`NAMES`."""
    return qta.icon(NAMES[key], color=color) if color else qta.icon(NAMES[key])
