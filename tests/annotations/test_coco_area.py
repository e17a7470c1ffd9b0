"""COCO export: each annotation's ``area`` is that of the segmentation written, as pycocotools reads it."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO

from efficientsam_studio.annotations.document import Category, Document, ImageRecord, Instance
from efficientsam_studio.annotations.formats.coco import export_coco

from .conftest import H, W, disk, ring


@pytest.fixture
def shapes() -> Document:
    """One image with a ring (a mask with a hole) and a small disc."""
    document = Document()
    document.add_image(ImageRecord(document.allocate_id("image"), "a.png", W, H))
    category = Category(document.allocate_id("category"), "cell", "#ff0000")
    document.add_category(category)
    for mask in (ring(24, 24, 16, 8), disk(52, 10, 4)):
        document.add_instance(Instance.from_mask(document.allocate_id("instance"), 1, category.id, mask))
    return document


def _load(path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


@pytest.mark.parametrize("policy", ["always", "auto", "never"])
def test_area_is_the_area_of_the_written_segmentation(shapes, tmp_path, policy):
    out = tmp_path / "coco.json"
    export_coco(shapes, out, polygons=policy)  # the default tolerance of 1 px simplifies the outlines
    coco = _load(out)
    annotations = coco.loadAnns(coco.getAnnIds())
    assert len(annotations) == 2
    for annotation in annotations:
        assert annotation["area"] == int(coco.annToMask(annotation).sum())


def test_a_ring_written_as_a_polygon_counts_its_filled_hole(shapes, tmp_path):
    out = tmp_path / "coco.json"
    export_coco(shapes, out, polygons="always", tolerance=0)
    coco = _load(out)
    ring_annotation, disc_annotation = coco.loadAnns(coco.getAnnIds())
    ring_instance, disc_instance = shapes.instances_of(1)
    assert isinstance(ring_annotation["segmentation"], list)  # the hole is lost: the disc it encloses counts
    assert ring_annotation["area"] == int(disk(24, 24, 16).sum()) > ring_instance.area
    assert disc_annotation["area"] == disc_instance.area  # at tolerance 0 the outline is exact


def test_masks_written_as_rle_keep_their_pixel_count(shapes, tmp_path):
    out = tmp_path / "coco.json"
    export_coco(shapes, out, polygons="never")
    coco = _load(out)
    areas = [annotation["area"] for annotation in coco.loadAnns(coco.getAnnIds())]
    assert areas == [instance.area for instance in shapes.instances_of(1)]
    assert areas == [int(np.asarray(instance.mask()).sum()) for instance in shapes.instances_of(1)]
