"""Crop and window paths of the mask core give what the whole-image computation gives."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.records import Instance


def random_masks(seed: int = 0, count: int = 300):
    """Masks of random sizes: random blocks of noise or solid, many touching the image border, plus
    empty and whole-image masks."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        height, width = (int(v) for v in rng.integers(1, 24, 2))
        mask = np.zeros((height, width), bool)
        kind = index % 6
        if kind == 0:
            yield mask
            continue
        if kind == 1:
            yield np.ones((height, width), bool)
            continue
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = int(rng.integers(x0 + 1, width + 1)), int(rng.integers(y0 + 1, height + 1))
        if kind == 2:  # touches the borders
            x0, y0, x1, y1 = 0, 0, width, y1
        density = 1.0 if kind == 3 else rng.random()
        mask[y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) < density
        yield mask


def test_encode_window_equals_encoding_the_whole_mask():
    for mask in random_masks():
        height, width = mask.shape
        x, y, w, h = (int(v) for v in masks.bbox(masks.encode(mask)))
        expected = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode("ascii")
        assert masks.encode_window(mask[y : y + h, x : x + w], x, y, height, width)["counts"] == expected
        assert masks.encode_window(mask, 0, 0, height, width)["counts"] == expected
        assert masks.encode(mask)["counts"] == expected


def test_encode_window_refuses_a_window_outside_the_image():
    with pytest.raises(ValueError, match="does not lie inside"):
        masks.encode_window(np.ones((3, 3), bool), 2, 0, 4, 4)


def test_decode_window_equals_the_decoded_mask_cut_to_the_window():
    rng = np.random.default_rng(1)
    for mask in random_masks(1):
        height, width = mask.shape
        rle = masks.encode(mask)
        for _ in range(3):
            x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
            w, h = int(rng.integers(0, width - x + 1)), int(rng.integers(0, height - y + 1))
            assert np.array_equal(masks.decode_window(rle, x, y, w, h), mask[y : y + h, x : x + w])
        uncompressed = {"size": [height, width], "counts": masks.run_lengths(rle)}
        assert np.array_equal(masks.decode_window(uncompressed, 0, 0, width, height), mask)
        crop, x, y = masks.decode_crop(rle)
        bx, by, bw, bh = (int(v) for v in masks.bbox(rle))
        assert (x, y) == ((bx, by) if bw else (0, 0)) and np.array_equal(
            crop, mask[by : by + bh, bx : bx + bw]
        )


def test_instance_window_and_crop_equal_the_whole_mask():
    for index, mask in enumerate(random_masks(2, 120)):
        if not mask.any():
            continue
        instance = Instance.from_mask(index, 1, 1, mask)
        height, width = mask.shape
        crop, x, y = instance.crop()
        assert not crop.flags.writeable
        bx, by, bw, bh = (int(v) for v in instance.bbox)
        assert (x, y) == (bx, by) and np.array_equal(crop, mask[by : by + bh, bx : bx + bw])
        assert np.array_equal(instance.window(0, 0, width, height), mask)
        assert np.array_equal(instance.window(1, 1, width - 1, height - 1), mask[1:, 1:])


@pytest.mark.parametrize("mode", masks.POLYGON_MODES)
def test_tracing_a_crop_gives_the_rings_of_the_whole_mask(mode):
    for mask in random_masks(3, 120):
        rle = masks.encode(mask)
        crop, x, y = masks.decode_crop(rle)
        whole = masks.mask_to_polygons(mask, mode, 1.0)
        cropped = masks.mask_to_polygons(crop, mode, 1.0, origin=(x, y))
        assert len(whole) == len(cropped)
        for a, b in zip(whole, cropped, strict=True):
            assert np.array_equal(a.points, b.points) and (a.hole, a.parent) == (b.hole, b.parent)


def test_polygons_with_holes_are_rasterised_as_on_the_whole_image():
    rng = np.random.default_rng(4)
    for _ in range(60):
        height, width = (int(v) for v in rng.integers(8, 40, 2))
        outer = rng.uniform(-3, [width + 3, height + 3], (int(rng.integers(3, 7)), 2))
        hole = rng.uniform(0, [width, height], (int(rng.integers(3, 6)), 2))
        rings = [masks.Ring(outer), masks.Ring(hole, True, 0)]
        expected = masks.decode(masks.polygons_to_rle([rings[0]], height, width))
        expected &= ~masks.decode(masks.polygons_to_rle([masks.Ring(hole)], height, width))
        rle = masks.polygons_to_rle(rings, height, width)
        assert np.array_equal(masks.decode(rle), expected)
        assert rle == masks.encode(expected)  # the same RLE string as encoding the pixels


def test_a_polygon_rle_is_the_encoding_of_its_pixels():
    rng = np.random.default_rng(5)
    for _ in range(100):
        height, width = (int(v) for v in rng.integers(6, 40, 2))
        ring = rng.uniform(-5, [width + 5, height + 5], (int(rng.integers(3, 8)), 2))
        rle = masks.polygons_to_rle([ring], height, width)
        assert rle == masks.encode(masks.decode(rle))
