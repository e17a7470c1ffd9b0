"""Synthetic documents and masks drawn with OpenCV for the annotation tests."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from efficientsam_studio.annotations.document import Category, Document, ImageRecord, Instance

H, W = 48, 64


def disk(cx: int, cy: int, r: int, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.circle(mask, (cx, cy), r, 1, -1)
    return mask.astype(bool)


def ring(cx: int, cy: int, outer: int, inner: int, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    return disk(cx, cy, outer, shape) & ~disk(cx, cy, inner, shape)


def two_parts(shape: tuple[int, int] = (H, W)) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.rectangle(mask, (3, 3), (14, 12), 1, -1)
    cv2.ellipse(mask, (45, 30), (12, 8), 30, 0, 360, 1, -1)
    return mask.astype(bool)


def snapshot(doc: Document) -> tuple:
    """Everything observable about a document, for exact comparisons."""
    return (
        tuple(doc.images),
        tuple(doc.categories),
        tuple((img.id, tuple(doc.instances_of(img.id))) for img in doc.images),
        tuple(sorted(doc.next_ids.items())),
    )


@pytest.fixture
def doc() -> Document:
    """Two images, two categories, three instances on image 1 (disk, ring, two parts)."""
    document = Document()
    document.add_image(ImageRecord(document.allocate_id("image"), "a.png", W, H))
    document.add_image(ImageRecord(document.allocate_id("image"), "sub/b.png", W, H))
    cat = Category(document.allocate_id("category"), "cell", "#ff0000")
    dog = Category(document.allocate_id("category"), "dog", "#00ff00", "animal")
    document.add_category(cat)
    document.add_category(dog)
    for mask, category, source, score in (
        (disk(20, 20, 8), cat, "ai", 0.91),
        (ring(40, 24, 12, 5), dog, "manual", None),
        (two_parts(), cat, "ai", 0.5),
    ):
        document.add_instance(Instance.from_mask(document.allocate_id("instance"), 1, category.id, mask,
                                                 score=score, source=source))
    document.add_instance(Instance.from_mask(document.allocate_id("instance"), 2, dog.id, disk(10, 10, 5)))
    document.mark_saved()
    return document
