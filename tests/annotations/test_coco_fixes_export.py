"""COCO export works on each instance's bbox, not on whole frames: the same output as tracing the whole
mask, without decoding it."""

from __future__ import annotations

import numpy as np
import pytest

from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.document import Category, Document, ImageRecord, Instance
from efficientsam_studio.annotations.formats.coco import coco_dict
from efficientsam_studio.annotations.formats.common import ExportReport, polygons_for

from .conftest import disk, ring, two_parts


def whole_frame_polygons(instance: Instance, policy: str, tolerance: float) -> list[masks.Ring] | None:
    """What the export wrote when it traced the whole decoded mask."""
    if policy == "never" or (policy == "auto" and instance.iscrowd):
        return None
    mask = masks.decode(instance.rle)
    parts, holes = masks.part_count(mask), masks.has_holes(mask)
    if policy == "auto" and (parts > 1 or holes):
        return None
    rings = masks.mask_to_polygons(mask, "all", tolerance)
    if policy == "auto" and masks.area(masks.polygons_to_rle(rings, *mask.shape)) == 0:
        return None
    return rings


def varied_document() -> Document:
    rng = np.random.default_rng(3)
    document = Document()
    for path, (h, w) in (("a.png", (48, 64)), ("b.png", (90, 31)), ("c.png", (1, 1))):
        document.add_image(ImageRecord(document.allocate_id("image"), path, w, h))
    document.add_category(Category(document.allocate_id("category"), "cell"))
    shapes = [
        disk(20, 20, 8),
        ring(40, 24, 12, 5),
        two_parts(),
        disk(63, 47, 3),
        disk(0, 0, 1),
        rng.random((48, 64)) < 0.05,
        np.pad(np.ones((1, 64), bool), ((47, 0), (0, 0))),
        disk(10, 40, 12, shape=(90, 31)),
        rng.random((90, 31)) < 0.3,
        np.ones((1, 1), bool),
    ]
    for n, mask in enumerate(shapes):
        image = next(i for i in document.images if (i.height, i.width) == mask.shape)
        document.add_instance(
            Instance.from_mask(document.allocate_id("instance"), image.id, 1, mask, iscrowd=n == 3)
        )
    return document


def test_decode_crop_is_the_mask_within_its_bbox():
    document = varied_document()
    for instance in document.iter_instances():
        crop, x, y = masks.decode_crop(instance.rle)
        bx, by, bw, bh = (int(v) for v in instance.bbox)
        assert (x, y) == (bx, by) and crop.flags.c_contiguous and crop.dtype == bool
        assert np.array_equal(crop, instance.mask()[by : by + bh, bx : bx + bw])


@pytest.mark.parametrize("policy", ["auto", "always", "never"])
@pytest.mark.parametrize("tolerance", [0.0, 1.0, 2.5])
def test_export_writes_what_tracing_the_whole_frame_wrote_without_decoding_it(monkeypatch, policy, tolerance):
    document = varied_document()
    expected = []
    for instance in document.iter_instances():
        rings = whole_frame_polygons(instance, policy, tolerance)
        expected.append(instance.rle if rings is None else [[round(v, 2) for v in r.flat()] for r in rings])

    def whole_frame(self):
        raise AssertionError("the export decoded a whole frame")

    monkeypatch.setattr(Instance, "mask", whole_frame)
    data, report = coco_dict(document, polygons=policy, tolerance=tolerance)
    assert [a["segmentation"] for a in data["annotations"]] == expected
    assert report.polygons + report.rle == len(expected) == document.instance_count
    assert [a["bbox"] for a in data["annotations"]] == [list(i.bbox) for i in document.iter_instances()]


def test_polygons_of_an_instance_are_in_image_coordinates():
    document = varied_document()
    instance = document.instances_of(1)[0]  # disk(20, 20, 8)
    (outline,) = polygons_for(instance, "auto", 0.0, ExportReport())
    assert np.array_equal(masks.polygons_to_mask([outline], 48, 64), instance.mask())
