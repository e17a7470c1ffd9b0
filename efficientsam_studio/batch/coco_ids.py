"""COCO ids that batch labelling carries from a prompt file into the project.

Boxes read from COCO detection results or COCO annotations know their COCO image and category ids. So
that a COCO export of the labelled project matches the dataset the boxes came from:

- an image labelled from such boxes gets their image id as its ``coco_id`` when it has none yet (the
  exporter writes it back as the image's id; an image that has one keeps it, as on import);
- a category the run creates gets the file's id as its ``coco_id`` (the exporter writes it back as the
  category's id); its project id is that id too when the project never handed it out (the id is not
  below the project's next category id when the run first creates a category, and positive), as
  ``import`` does, and otherwise the next free id;
- a category that exists already (matched by name) keeps its project id and gets the file's id as its
  ``coco_id`` when it has none yet (one that has one keeps it, as on import).
"""

from __future__ import annotations

from collections.abc import Mapping

from efficientsam_studio.annotations.document import Document


class CategoryIds:
    """The ids that the categories a run creates get (see the module docstring).

    ``wanted``: COCO category id by category name, from the prompt file. The first :meth:`id_for`
    reserves every wanted id that was never handed out (the project's next category id moves past
    them), so that ids allocated afterwards, by the run or by hand, never take one of them.
    """

    def __init__(self, wanted: Mapping[str, int] | None = None) -> None:
        self._wanted = dict(wanted or {})
        self._kept: dict[str, int] | None = None

    def _reserve(self, document: Document) -> dict[str, int]:
        if self._kept is None:
            floor = document.next_ids["category"]
            kept: dict[str, int] = {}
            for name, wanted in self._wanted.items():
                if wanted >= floor and wanted not in kept.values():
                    kept[name] = wanted
            if kept:
                document.restore_next_ids({"category": max(kept.values()) + 1})
            self._kept = kept
        return self._kept

    def coco_id(self, name: str) -> int | None:
        """The category's id in the prompt file, or None when the file gives none."""
        return self._wanted.get(name)

    def id_for(self, document: Document, name: str) -> int:
        """The id of a new category ``name``: its kept COCO id while no category has it, else a fresh one."""
        if not self._wanted:
            return document.allocate_id("category")
        wanted = self._reserve(document).get(name)
        if wanted is not None and all(category.id != wanted for category in document.categories):
            return wanted
        return document.allocate_id("category")
