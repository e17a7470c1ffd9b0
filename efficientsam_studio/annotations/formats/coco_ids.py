"""The ids a COCO export gives images and categories.

Records that came from a COCO file keep that file's id (``coco_id``) so that an export matches the
original dataset; the others get their project id. Ids stay unique within each list of the file:

- Images: an image's ``coco_id`` when no other exported image has the same one; else its project id
  when that is free; else the next id above every other.
- Categories, in display order: the first category with a given ``coco_id`` gets it (the categories
  that claim the same one after it, and the categories without one, do not); every other category gets
  its project id when that is free, else the next id above every other. A category written under
  another id than its own claim (its ``coco_id``, or its project id when it has none) is listed by
  :func:`moved_categories`, which the export report notes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from efficientsam_studio.annotations.records import Category, ImageRecord


def export_image_ids(images: Sequence[ImageRecord]) -> dict[int, int]:
    """The COCO id of each exported image by project id (see the module doc): its ``coco_id`` when no
    other exported image has the same one; else its project id when that is free; else the next id
    above every other."""
    shared = Counter(image.coco_id for image in images if image.coco_id is not None)
    ids = {
        image.id: image.coco_id
        for image in images
        if image.coco_id is not None and shared[image.coco_id] == 1
    }
    return _fill_free(ids, [image.id for image in images])


def claimed_id(category: Category) -> int:
    """The id a category asks for in a COCO export: its ``coco_id``, else its project id."""
    return category.id if category.coco_id is None else category.coco_id


def export_category_ids(categories: Sequence[Category]) -> dict[int, int]:
    """The COCO id of each category by project id (see the module doc); unique, in display order."""
    ids: dict[int, int] = {}
    used: set[int] = set()
    for category in categories:
        if category.coco_id is not None and category.coco_id not in used:
            ids[category.id] = category.coco_id
            used.add(category.coco_id)
    return _fill_free(ids, [category.id for category in categories])


def _fill_free(ids: dict[int, int], own_ids: Sequence[int]) -> dict[int, int]:
    """Complete ``ids`` (project id -> exported id, the kept claims): every other record, in order,
    gets its own id when no record was given it, else the next id above every other."""
    used = set(ids.values())
    next_free = max([*used, *own_ids], default=0) + 1
    for own in own_ids:
        if own in ids:
            continue
        if own in used:
            ids[own], next_free = next_free, next_free + 1
        else:
            ids[own] = own
        used.add(ids[own])
    return ids


def moved_categories(categories: Sequence[Category], ids: dict[int, int]) -> list[tuple[str, int, int, str]]:
    """``(name, claimed id, exported id, name of the category exported with the claimed id)`` of each
    category that ``ids`` (from :func:`export_category_ids`) writes under another id than it claims."""
    holder = {ids[category.id]: category.name for category in categories}
    return [
        (category.name, claimed_id(category), ids[category.id], holder[claimed_id(category)])
        for category in categories
        if ids[category.id] != claimed_id(category)
    ]


def moved_categories_note(moved: list[tuple[str, int, int, str]]) -> str:
    """One sentence for an export report about the categories written under another id than theirs."""
    listed = ", ".join(
        f"{name!r} {claimed} -> {written} ({claimed} went to {holder!r})"
        for name, claimed, written, holder in moved[:10]
    )
    more = " ..." if len(moved) > 10 else ""
    count = "1 category" if len(moved) == 1 else f"{len(moved)} categories"
    return f"category ids must be unique, so {count} got a free id (own -> written): {listed}{more}"
