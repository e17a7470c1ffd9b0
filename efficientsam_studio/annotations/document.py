"""The labelling document: images, categories and instances, with fast lookups and change notification.

The records (:class:`ImageRecord`, :class:`Category`, :class:`Instance`, :class:`Change`) live in
:mod:`.records` and are re-exported here. Edit a document through the command objects of
:mod:`efficientsam_studio.annotations.commands`; the ``Document`` methods below are the primitive
operations those commands are made of.

Z-order: the instances of one image are kept in a list, bottom first; an instance's position in
``Document.instances_of(image_id)`` is its z-order (the last one is drawn on top and wins in PNG exports).

Ids are positive integers allocated from per-kind counters that only grow (they are saved with the
project), so an id is never reused, even after a delete, an undo or a reopen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from efficientsam_studio.annotations.errors import DocumentError
from efficientsam_studio.annotations.records import (
    COLOUR_PATTERN,
    DEFAULT_COLOURS,
    ID_KINDS,
    SOURCES,
    Category,
    Change,
    ImageRecord,
    ImageStatus,
    Instance,
    Listener,
)

_log = logging.getLogger(__name__)

__all__ = [
    "COLOUR_PATTERN",
    "DEFAULT_COLOURS",
    "ID_KINDS",
    "SOURCES",
    "Category",
    "Change",
    "Document",
    "ImageRecord",
    "ImageStatus",
    "Instance",
    "Listener",
]


class Document:
    """Images, categories and instances of one project, with lookups by id and by image."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self.revision = 0
        self.saved_revision = 0
        self._clear()

    def _clear(self) -> None:
        self._images: dict[int, ImageRecord] = {}
        self._image_by_path: dict[str, int] = {}
        self._categories: dict[int, Category] = {}
        self._instances: dict[int, Instance] = {}
        self._by_image: dict[int, list[int]] = {}
        self._next_ids = dict.fromkeys(ID_KINDS, 1)

    # ----------------------------------------------------------------- notification and dirtiness
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(change)`` after every change; returns a function that unsubscribes it.

        Listeners run synchronously on the thread that edits the document. An exception in a listener
        is logged and does not interrupt the edit (or the other listeners).
        """
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _changed(self, change: Change) -> None:
        self.revision += 1
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                # a failing view must not leave a command half applied: log it and go on
                _log.exception("a document listener failed on %s", change)

    @property
    def dirty(self) -> bool:
        """True when the document changed since the last successful save (or load)."""
        return self.revision != self.saved_revision

    def mark_saved(self, revision: int | None = None) -> None:
        """Record that ``revision`` (default: the current one) is what is on disk."""
        self.saved_revision = self.revision if revision is None else revision

    # ----------------------------------------------------------------- ids
    def allocate_id(self, kind: str) -> int:
        """A fresh id for ``"image"``, ``"category"`` or ``"instance"``; never handed out twice."""
        value = self._next_ids[kind]
        self._next_ids[kind] = value + 1
        return value

    @property
    def next_ids(self) -> dict[str, int]:
        """The next id of each kind (saved with the project)."""
        return dict(self._next_ids)

    def _reserve(self, kind: str, used: int) -> None:
        if used >= self._next_ids[kind]:
            self._next_ids[kind] = used + 1

    def restore_next_ids(self, next_ids: dict[str, int]) -> None:
        """Raise the id counters to at least ``next_ids`` (used when loading a file).

        Raises DocumentError for a kind other than those of :data:`ID_KINDS` or a value that is not a
        positive integer (the counters are left as they were).
        """
        for kind, value in next_ids.items():
            if kind not in self._next_ids:
                raise DocumentError(
                    f"next_ids: {kind!r} is not a kind of id (those are {', '.join(ID_KINDS)})"
                )
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DocumentError(f"next_ids: the next {kind} id must be a positive integer; got {value!r}")
        for kind, value in next_ids.items():
            self._reserve(kind, value - 1)

    # ----------------------------------------------------------------- read access
    @property
    def images(self) -> list[ImageRecord]:
        """All images in the order they were added."""
        return list(self._images.values())

    @property
    def categories(self) -> list[Category]:
        """All categories in the order they were added."""
        return list(self._categories.values())

    def image(self, image_id: int) -> ImageRecord:
        """The image with this id (DocumentError if absent)."""
        try:
            return self._images[image_id]
        except KeyError:
            raise DocumentError(f"no image with id {image_id} in the document") from None

    def image_by_path(self, path: str) -> ImageRecord | None:
        """The image whose project-relative POSIX path is ``path``, or None."""
        image_id = self._image_by_path.get(path)
        return None if image_id is None else self._images[image_id]

    def category(self, category_id: int) -> Category:
        """The category with this id (DocumentError if absent)."""
        try:
            return self._categories[category_id]
        except KeyError:
            raise DocumentError(f"no category with id {category_id} in the document") from None

    def category_by_name(self, name: str) -> Category | None:
        """The category with exactly this name, or None."""
        for category in self._categories.values():
            if category.name == name:
                return category
        return None

    def instance(self, instance_id: int) -> Instance:
        """The instance with this id (DocumentError if absent)."""
        try:
            return self._instances[instance_id]
        except KeyError:
            raise DocumentError(f"no instance with id {instance_id} in the document") from None

    def has_instance(self, instance_id: int) -> bool:
        """True when an instance with this id is in the document."""
        return instance_id in self._instances

    def instances_of(self, image_id: int) -> list[Instance]:
        """The instances of one image in z-order (bottom first)."""
        return [self._instances[i] for i in self._by_image.get(image_id, ())]

    def instances_of_category(self, category_id: int) -> list[Instance]:
        """Every instance of one category (all images)."""
        return [inst for inst in self._instances.values() if inst.category_id == category_id]

    def iter_instances(self) -> Iterator[Instance]:
        """Every instance, image by image (in image order), each image's in z-order."""
        for image_id in self._images:
            for instance_id in self._by_image.get(image_id, ()):
                yield self._instances[instance_id]

    def instance_at(self, image_id: int, x: float, y: float) -> Instance | None:
        """The topmost instance of an image covering pixel ``(x, y)`` (column, row), or None."""
        col, row = int(x), int(y)
        for instance in reversed(self.instances_of(image_id)):
            bx, by, bw, bh = instance.bbox
            if bx <= col < bx + bw and by <= row < by + bh and instance.mask()[row, col]:
                return instance
        return None

    def z_index(self, instance_id: int) -> int:
        """Position of the instance in its image's z-order (0 = bottom)."""
        instance = self.instance(instance_id)
        return self._by_image[instance.image_id].index(instance_id)

    @property
    def instance_count(self) -> int:
        """Number of instances in the document."""
        return len(self._instances)

    def colour_for_new_category(self) -> str:
        """A default colour for the next category (cycles through a distinct palette)."""
        return DEFAULT_COLOURS[len(self._categories) % len(DEFAULT_COLOURS)]

    # ----------------------------------------------------------------- primitive edits (commands use these)
    def add_image(self, image: ImageRecord) -> None:
        """Add an image record (its path must be new)."""
        if image.id in self._images:
            raise DocumentError(f"image id {image.id} is already used")
        if image.path in self._image_by_path:
            raise DocumentError(f"image {image.path!r} is already in the document")
        self._images[image.id] = image
        self._image_by_path[image.path] = image.id
        self._by_image.setdefault(image.id, [])
        self._reserve("image", image.id)
        self._changed(Change("image_added", (image.id,)))

    def replace_image(self, image: ImageRecord) -> None:
        """Replace the image record with the same id (e.g. a new status)."""
        old = self.image(image.id)
        if old.path != image.path:
            del self._image_by_path[old.path]
            self._image_by_path[image.path] = image.id
        self._images[image.id] = image
        self._changed(Change("image_changed", (image.id,)))

    def add_category(self, category: Category, index: int | None = None) -> None:
        """Add a category at position ``index`` (default: last); its name must be new."""
        _check_category(category)
        if category.id in self._categories:
            raise DocumentError(f"category id {category.id} is already used")
        if self.category_by_name(category.name) is not None:
            raise DocumentError(f"a category named {category.name!r} already exists")
        items = list(self._categories.items())
        items.insert(len(items) if index is None else index, (category.id, category))
        self._categories = dict(items)
        self._reserve("category", category.id)
        self._changed(Change("category_added", (category.id,)))

    def remove_category(self, category_id: int) -> int:
        """Remove a category that no instance uses; returns its former position."""
        self.category(category_id)
        if any(inst.category_id == category_id for inst in self._instances.values()):
            raise DocumentError(f"category {category_id} still has instances; remove or relabel them first")
        index = list(self._categories).index(category_id)
        del self._categories[category_id]
        self._changed(Change("category_removed", (category_id,)))
        return index

    def replace_category(self, category: Category) -> None:
        """Replace the category with the same id (name stays unique)."""
        _check_category(category)
        self.category(category.id)
        other = self.category_by_name(category.name)
        if other is not None and other.id != category.id:
            raise DocumentError(f"a category named {category.name!r} already exists")
        self._categories[category.id] = category
        self._changed(Change("category_changed", (category.id,)))

    def add_instance(self, instance: Instance, index: int | None = None) -> None:
        """Insert at z position ``index`` of its image (default: on top)."""
        self._check_instance(instance)
        if instance.id in self._instances:
            raise DocumentError(f"instance id {instance.id} is already used")
        order = self._by_image[instance.image_id]
        order.insert(len(order) if index is None else index, instance.id)
        self._instances[instance.id] = instance
        self._reserve("instance", instance.id)
        self._changed(Change("instance_added", (instance.id,), instance.image_id))

    def remove_instance(self, instance_id: int) -> tuple[Instance, int]:
        """Remove an instance; returns it and its former z position."""
        instance = self.instance(instance_id)
        order = self._by_image[instance.image_id]
        index = order.index(instance_id)
        del order[index]
        del self._instances[instance_id]
        self._changed(Change("instance_removed", (instance_id,), instance.image_id))
        return instance, index

    def replace_instance(self, instance: Instance) -> None:
        """Replace the instance with the same id, keeping its z position."""
        old = self.instance(instance.id)
        if old.image_id != instance.image_id:
            raise DocumentError(f"instance {instance.id} cannot move to another image")
        self._check_instance(instance)
        self._instances[instance.id] = instance
        self._changed(Change("instance_changed", (instance.id,), instance.image_id))

    def set_order(self, image_id: int, order: Sequence[int]) -> None:
        """Set the z-order of an image's instances (a permutation of their ids, bottom first)."""
        current = self._by_image.get(image_id)
        if current is None:
            raise DocumentError(f"no image with id {image_id} in the document")
        if sorted(order) != sorted(current):
            raise DocumentError(f"the new order of image {image_id} must hold exactly its instances")
        self._by_image[image_id] = list(order)
        self._changed(Change("instances_reordered", tuple(order), image_id))

    def _check_instance(self, instance: Instance) -> None:
        image = self.image(instance.image_id)
        self.category(instance.category_id)
        size = [int(v) for v in instance.rle["size"]]
        if size != [image.height, image.width]:
            raise DocumentError(
                f"instance {instance.id}: mask size {size} (H, W) differs from image {image.path!r} "
                f"({image.height}, {image.width})"
            )

    # ----------------------------------------------------------------- bulk loading
    def load_records(
        self,
        images: Iterable[ImageRecord],
        categories: Iterable[Category],
        instances: Iterable[Instance],
        next_ids: dict[str, int] | None = None,
    ) -> None:
        """Replace the whole content (no per-record notification; one ``reset`` change). Marks clean.

        The records are checked as the primitive edits check them (unique ids, image paths and category
        names; category names and colours; references); a DocumentError names the first bad record.
        """
        self._clear()
        names: dict[str, int] = {}
        for image in images:
            if image.id in self._images or image.path in self._image_by_path:
                raise DocumentError(f"image id {image.id} or path {image.path!r} appears twice")
            self._images[image.id] = image
            self._image_by_path[image.path] = image.id
            self._by_image[image.id] = []
            self._reserve("image", image.id)
        for category in categories:
            if category.id in self._categories:
                raise DocumentError(f"category id {category.id} appears twice")
            try:
                _check_category(category)
            except DocumentError as exc:
                raise DocumentError(f"category id {category.id}: {exc}") from None
            if category.name in names:
                raise DocumentError(
                    f"categories {names[category.name]} and {category.id} have the same name "
                    f"{category.name!r}"
                )
            names[category.name] = category.id
            self._categories[category.id] = category
            self._reserve("category", category.id)
        for instance in instances:
            if instance.id in self._instances:
                raise DocumentError(f"instance id {instance.id} appears twice")
            if instance.image_id not in self._images:
                raise DocumentError(
                    f"instance {instance.id} refers to image {instance.image_id}, which is absent"
                )
            if instance.category_id not in self._categories:
                raise DocumentError(
                    f"instance {instance.id} refers to category {instance.category_id}, which is absent"
                )
            self._check_instance(instance)
            self._instances[instance.id] = instance
            self._by_image[instance.image_id].append(instance.id)
            self._reserve("instance", instance.id)
        if next_ids:
            self.restore_next_ids(next_ids)
        self._changed(Change("reset"))
        self.mark_saved()

    def stats(self) -> dict[str, Any]:
        """Counts for status bars: images per status, instances, categories."""
        per_status = {status.value: 0 for status in ImageStatus}
        for image in self._images.values():
            per_status[image.status.value] += 1
        return {
            "images": len(self._images),
            "instances": len(self._instances),
            "categories": len(self._categories),
            "status": per_status,
        }


def _check_category(category: Category) -> None:
    if not category.name or not category.name.strip():
        raise DocumentError("a category needs a non-empty name")
    if not COLOUR_PATTERN.match(category.colour):
        raise DocumentError(
            f"category {category.name!r}: colour must look like '#rrggbb'; got {category.colour!r}"
        )
