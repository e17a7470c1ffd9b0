"""The categories panel: add, rename, recolour, delete; rows numbered 1-9 for the number keys.

The button handlers ask for input with dialogs and then call the public methods (``add``,
``rename``, ``recolour``, ``delete``), which tests and scripts call directly. Names are compared
ignoring case ("Dog" is refused next to "dog"). The delete button asks first when the category is in
use, naming how many instances on how many images go with it (undo brings them back). A name the
add or rename dialog refuses (empty, or taken) brings the dialog back with the typed name and the
reason. An empty list shows how to add the first category.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QColorDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from efficientsam_studio.annotations.command_base import plural
from efficientsam_studio.annotations.commands import (
    AddCategory,
    RecolourCategory,
    RemoveCategory,
    RenameCategory,
)
from efficientsam_studio.annotations.document import Category
from efficientsam_studio.annotations.errors import DocumentError
from efficientsam_studio.gui.icons import icon
from efficientsam_studio.gui.session import Session


def swatch(colour: str, size: int = 14) -> QIcon:
    """A square icon filled with ``colour`` ("#rrggbb")."""
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(colour))
    return QIcon(pixmap)


def tool_button(icon_key: str, tip: str, slot) -> QToolButton:
    button = QToolButton()
    button.setIcon(icon(icon_key))
    button.setToolTip(tip)
    button.setAutoRaise(True)
    button.clicked.connect(slot)
    return button


class CategoriesPanel(QWidget):
    """List of categories; the current one is highlighted and used by accept, polygon and brush."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.list = QListWidget()
        self.list.currentItemChanged.connect(self._on_current)
        self.list.itemDoubleClicked.connect(lambda _: self._ask_rename())
        buttons = QHBoxLayout()
        self.add_button = tool_button("add", "Add a category", self._ask_add)
        self.rename_button = tool_button("rename", "Rename the current category", self._ask_rename)
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.rename_button)
        buttons.addWidget(
            tool_button("colour", "Change the colour of the current category", self._ask_recolour)
        )
        buttons.addWidget(
            tool_button("delete", "Delete the current category and its instances", self._delete)
        )
        buttons.addStretch(1)
        self.empty_hint = QLabel(
            "No categories yet. Press + to add one, or accept a mask and name its category then."
        )
        self.empty_hint.setWordWrap(True)
        self.empty_hint.setEnabled(False)  # drawn greyed, as a placeholder
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(buttons)
        layout.addWidget(self.empty_hint)
        layout.addWidget(self.list)
        session.document_changed.connect(
            lambda change: self._refresh() if "categor" in change.kind or change.kind == "reset" else None
        )
        session.category_changed.connect(lambda _: self._refresh())
        self._refresh()

    def _refresh(self) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for number, category in enumerate(self.session.document.categories, start=1):
            key = f"{number}. " if number <= 9 else ""
            item = QListWidgetItem(swatch(category.colour), f"{key}{category.name}")
            item.setData(Qt.ItemDataRole.UserRole, category.id)
            self.list.addItem(item)
            if category.id == self.session.current_category_id:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        self.empty_hint.setVisible(not self.session.document.categories)

    def _on_current(self, item: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        if item is not None:
            self.session.set_category(int(item.data(Qt.ItemDataRole.UserRole)))

    # ----- public edits (each one undo step) -----
    def same_name(self, name: str, category_id: int | None = None) -> Category | None:
        """Another category (not ``category_id``) whose name equals ``name`` ignoring case, or None."""
        folded = name.strip().casefold()
        for category in self.session.document.categories:
            if category.id != category_id and category.name.casefold() == folded:
                return category
        return None

    def name_problem(self, name: str, category_id: int | None = None) -> str:
        """Why ``name`` cannot name a category (other than ``category_id``); "" when it can."""
        if not name.strip():
            return "A category needs a name."
        other = self.same_name(name, category_id)
        return f"A category named {other.name!r} already exists." if other is not None else ""

    def _refuse_same_name(self, name: str, category_id: int | None = None) -> bool:
        other = self.same_name(name, category_id)
        if other is not None:
            self.session.error.emit(f"a category named {other.name!r} already exists")
        return other is not None

    def add(self, name: str, colour: str | None = None) -> bool:
        name = name.strip()
        if not name or self._refuse_same_name(name):
            return False
        try:
            command = AddCategory(self.session.document, name, colour)
        except DocumentError as exc:
            self.session.error.emit(str(exc))
            return False
        if self.session.push(command):
            self.session.set_category(command.category.id)
            return True
        return False

    def rename(self, category_id: int, name: str) -> bool:
        if self._refuse_same_name(name, category_id):
            return False
        try:
            return self.session.push(RenameCategory(self.session.document, category_id, name.strip()))
        except DocumentError as exc:
            self.session.error.emit(str(exc))
            return False

    def recolour(self, category_id: int, colour: str) -> bool:
        return self.session.push(RecolourCategory(self.session.document, category_id, colour))

    def delete(self, category_id: int) -> bool:
        return self.session.push(RemoveCategory(self.session.document, category_id))

    # ----- dialogs -----
    def _ask_name(self, title: str, label: str, text: str = "", category_id: int | None = None) -> str | None:
        """Ask for a category name until it is usable (each refusal shows the typed name and the
        reason); None when the user cancels."""
        prompt = label
        while True:
            name, ok = QInputDialog.getText(self, title, prompt, text=text)
            if not ok:
                return None
            problem = self.name_problem(name, category_id)
            if not problem:
                return name.strip()
            prompt, text = f"{problem} Choose another name:", name

    def ask_add(self, label: str = "Name:") -> bool:
        """Ask for a new category's name and add it (it becomes current); False when cancelled."""
        name = self._ask_name("Add category", label)
        return name is not None and self.add(name)

    def _ask_add(self) -> None:
        self.ask_add()

    def _ask_rename(self) -> None:
        category = self.session.current_category
        if category is None:
            return
        name = self._ask_name("Rename category", "Name:", category.name, category.id)
        if name is not None and name != category.name:
            self.rename(category.id, name)

    def _ask_recolour(self) -> None:
        category = self.session.current_category
        if category is None:
            return
        colour = QColorDialog.getColor(QColor(category.colour), self, f"Colour of {category.name}")
        if colour.isValid():
            self.recolour(category.id, colour.name())

    def _delete(self) -> None:
        category = self.session.current_category
        if category is not None and self._agree_to_delete(category):
            self.delete(category.id)

    def _agree_to_delete(self, category: Category) -> bool:
        """True when ``category`` is unused, or the user agrees to delete its instances with it."""
        instances = self.session.document.instances_of_category(category.id)
        if not instances:
            return True
        images = len({instance.image_id for instance in instances})
        answer = QMessageBox.question(
            self,
            "Delete category",
            f"Delete the category {category.name!r} and its {plural(len(instances), 'instance')} on "
            f"{plural(images, 'image')}?\n\nUndo (Ctrl+Z) brings them back.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes
