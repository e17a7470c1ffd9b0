"""A project whose images share a file stem (``a/x.png`` and ``a/x.jpg``), for the exporters' naming."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from efficientsam_studio.annotations.document import Category, Document, ImageRecord, Instance

from .conftest import H, W, disk

PATHS = ("a/x.png", "a/x.jpg", "b.png")
"""The images in document order; their categories: cat, dog, cat."""


def shared_stem_document(root: Path) -> Document:
    """Three labelled images (one instance each) written under ``root``; two of them share ``a/x``."""
    document = Document()
    cat = Category(document.allocate_id("category"), "cat", "#ff0000")
    dog = Category(document.allocate_id("category"), "dog", "#00ff00")
    document.add_category(cat)
    document.add_category(dog)
    for path, category, centre in zip(PATHS, (cat, dog, cat), ((12, 12), (40, 30), (20, 25)), strict=True):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / path), np.zeros((H, W, 3), np.uint8))
        image = ImageRecord(document.allocate_id("image"), path, W, H)
        document.add_image(image)
        document.add_instance(
            Instance.from_mask(document.allocate_id("instance"), image.id, category.id, disk(*centre, 6))
        )
    return document
