"""The file list: every image of the project with its status, a text filter and a status filter.

Backed by a list model over the document (not one widget per row), so folders of tens of thousands
of images stay fast. An image whose file could not be read shows a broken-image icon and the reason in
its tooltip. Choosing a row makes that image current; a filter that hides the current image's row (its
status changed, or the filter did) leaves the current image as it is.
"""

from __future__ import annotations

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLineEdit, QListView, QVBoxLayout, QWidget

from efficientsam_studio.annotations.document import Change, ImageStatus
from efficientsam_studio.gui.icons import icon
from efficientsam_studio.gui.session import NONE, Session

STATUS_LABELS = {
    ImageStatus.UNLABELLED: "Unlabelled",
    ImageStatus.IN_PROGRESS: "In progress",
    ImageStatus.DONE: "Done",
    ImageStatus.SKIPPED: "Skipped",
    ImageStatus.NEEDS_REVIEW: "Needs review",
}
STATUS_ROLE = Qt.ItemDataRole.UserRole + 1
ID_ROLE = Qt.ItemDataRole.UserRole + 2
PATH_ROLE = Qt.ItemDataRole.UserRole + 3  # the image's project-relative path: what "Filter by name" matches


class ImageListModel(QAbstractListModel):
    """Rows = images of the document in order; display = path and instance count.

    ``unreadable``: image id -> why its file could not be read (see :meth:`set_unreadable`). ``_rows``
    maps an image id to its row, so finding a row (as the filters do for every image skipped by D/A)
    takes constant time."""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self._ids: list[int] = []
        self._rows: dict[int, int] = {}
        self._load_ids()
        self._icons = {status: icon(status.value) for status in ImageStatus}
        self._broken = icon("unreadable")
        self.unreadable: dict[int, str] = {}
        session.document_changed.connect(self._on_change)

    def _load_ids(self) -> None:
        self._ids = [image.id for image in self.session.document.images]
        self._rows = {image_id: row for row, image_id in enumerate(self._ids)}

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._ids)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        document = self.session.document
        image = document.image(self._ids[index.row()])
        if role == Qt.ItemDataRole.DisplayRole:
            count = len(document.instances_of(image.id))
            return f"{image.path}  ({count})" if count else image.path
        reason = self.unreadable.get(image.id)
        if role == Qt.ItemDataRole.DecorationRole:
            return self._broken if reason is not None else self._icons[image.status]
        if role == Qt.ItemDataRole.ToolTipRole:
            if reason is not None:
                return f"{image.path}: unreadable ({reason}); {STATUS_LABELS[image.status]}"
            return f"{image.path}: {image.width}x{image.height}, {STATUS_LABELS[image.status]}"
        if role == STATUS_ROLE:
            return image.status.value
        if role == ID_ROLE:
            return image.id
        if role == PATH_ROLE:
            return image.path
        return None

    def row_of(self, image_id: int) -> int:
        return self._rows.get(image_id, -1)

    def set_unreadable(self, image_id: int, reason: str) -> None:
        """Mark an image's file as unreadable for ``reason``, or as readable again with ""."""
        if self.unreadable.get(image_id, "") == reason:
            return
        if reason:
            self.unreadable[image_id] = reason
        else:
            self.unreadable.pop(image_id, None)
        row = self.row_of(image_id)
        if row >= 0:
            self.dataChanged.emit(self.index(row), self.index(row))

    def _on_change(self, change: Change) -> None:
        if change.kind in ("reset", "image_added"):
            self.beginResetModel()
            self._load_ids()
            self.endResetModel()
            return
        image_ids = change.ids if change.kind == "image_changed" else (change.image_id,)
        for image_id in image_ids:
            row = self.row_of(image_id) if image_id is not None else -1
            if row >= 0:
                self.dataChanged.emit(self.index(row), self.index(row))


class StatusFilter(QSortFilterProxyModel):
    """Keeps rows whose status is in ``status`` ("" = any) and whose path contains the filter text."""

    def __init__(self) -> None:
        super().__init__()
        self.status = ""
        self.setFilterRole(PATH_ROLE)  # the display text also holds the instance count
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def set_status(self, status: str) -> None:
        self.status = status
        self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent: QModelIndex | QPersistentModelIndex) -> bool:  # noqa: N802
        index = self.sourceModel().index(row, 0, parent)
        if self.status and index.data(STATUS_ROLE) != self.status:
            return False
        return super().filterAcceptsRow(row, parent)

    def accepts_image(self, image_id: int) -> bool:
        """True when the filters show the row of image ``image_id``."""
        row = self.sourceModel().row_of(image_id)
        return row >= 0 and self.filterAcceptsRow(row, QModelIndex())


class FilesPanel(QWidget):
    """File list with filters; choosing a row makes that image current."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.model = ImageListModel(session)
        self.proxy = StatusFilter()
        self.proxy.setSourceModel(self.model)
        self.text_filter = QLineEdit(placeholderText="Filter by name")
        self.text_filter.setClearButtonEnabled(True)
        self.text_filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.status_filter = QComboBox()
        self.status_filter.addItem("All", "")
        for status, label in STATUS_LABELS.items():
            self.status_filter.addItem(icon(status.value), label, status.value)
        self.status_filter.currentIndexChanged.connect(
            lambda _: self.proxy.set_status(self.status_filter.currentData())
        )
        self.view = QListView()
        self.view.setModel(self.proxy)
        self.view.setUniformItemSizes(True)
        self.view.selectionModel().currentChanged.connect(self._on_current)
        for refiltered in (self.proxy.rowsRemoved, self.proxy.rowsInserted, self.proxy.layoutChanged):
            refiltered.connect(lambda *_: self._show_current(self.session.current_image_id))
        filters = QHBoxLayout()
        filters.addWidget(self.text_filter, 2)
        filters.addWidget(self.status_filter, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(filters)
        layout.addWidget(self.view)
        session.image_changed.connect(self._show_current)

    def _on_current(self, current: QModelIndex, previous: QModelIndex) -> None:
        shown = self.session.current_image_id
        if (
            previous.isValid()
            and previous.data(ID_ROLE) == shown
            and shown is not None
            and not self.proxy.accepts_image(shown)
        ):
            return  # the filter hid the current image's row and the view moved on: not the user's choice
        if current.isValid():
            self.session.set_current_image(int(current.data(ID_ROLE)))

    def _show_current(self, image_id: int | None) -> None:
        """Highlight the current image's row, or no row when the filters hide it."""
        if image_id is None or image_id == NONE:
            return
        row = self.model.row_of(image_id)
        proxy_index = self.proxy.mapFromSource(self.model.index(row)) if row >= 0 else QModelIndex()
        if not proxy_index.isValid():
            self.view.selectionModel().clear()
        elif self.view.currentIndex() != proxy_index:
            self.view.setCurrentIndex(proxy_index)
