"""Undoable edits of categories: add, remove (with their instances), rename, recolour."""

from __future__ import annotations

import dataclasses
from typing import Any

from efficientsam_studio.annotations.command_base import Command, InstanceRemoval, plural
from efficientsam_studio.annotations.document import Document
from efficientsam_studio.annotations.errors import DocumentError
from efficientsam_studio.annotations.records import Category


class AddCategory(Command):
    """Add a category (a new id is allocated; colour defaults to the next palette colour)."""

    def __init__(
        self, document: Document, name: str, colour: str | None = None, supercategory: str = ""
    ) -> None:
        if document.category_by_name(name) is not None:
            raise DocumentError(f"a category named {name!r} already exists")
        self.document = document
        self.category = Category(document.allocate_id("category"), name,
                                 colour or document.colour_for_new_category(), supercategory)
        self.text = f"Add category {name}"

    def do(self) -> None:
        self.document.add_category(self.category)

    def undo(self) -> None:
        self.document.remove_category(self.category.id)


class RemoveCategory(Command):
    """Remove a category and all its instances; undo restores both."""

    def __init__(self, document: Document, category_id: int) -> None:
        self.document = document
        self.category = document.category(category_id)
        self._removal = InstanceRemoval(document, [i.id for i in document.instances_of_category(category_id)])
        self.index = 0
        count = len(self._removal.ids)
        suffix = f" and {plural(count, 'instance')}" if count else ""
        self.text = f"Delete category {self.category.name}{suffix}"

    def do(self) -> None:
        self._removal.remove()
        self.index = self.document.remove_category(self.category.id)

    def undo(self) -> None:
        self.document.add_category(self.category, self.index)
        self._removal.restore()


class _ReplaceCategory(Command):
    def __init__(self, document: Document, category_id: int, **changes: Any) -> None:
        self.document = document
        self.old = document.category(category_id)
        self.new = dataclasses.replace(self.old, **changes)

    def do(self) -> None:
        self.document.replace_category(self.new)

    def undo(self) -> None:
        self.document.replace_category(self.old)


class RenameCategory(_ReplaceCategory):
    """Give a category another (unused) name."""

    def __init__(self, document: Document, category_id: int, name: str) -> None:
        other = document.category_by_name(name)
        if other is not None and other.id != category_id:
            raise DocumentError(f"a category named {name!r} already exists")
        super().__init__(document, category_id, name=name)
        self.text = f"Rename category {self.old.name} to {name}"


class RecolourCategory(_ReplaceCategory):
    """Give a category another colour (``"#rrggbb"``)."""

    def __init__(self, document: Document, category_id: int, colour: str) -> None:
        super().__init__(document, category_id, colour=colour)
        self.text = f"Change colour of {self.old.name}"
