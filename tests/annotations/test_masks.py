"""Mask geometry: RLE encode/decode (compressed and uncompressed), polygons in three modes, bbox, area."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as coco_mask

from efficientsam_studio.annotations import masks

from .conftest import H, W, disk, ring, two_parts


def test_rle_round_trip_is_exact_and_json_ready():
    mask = two_parts() | ring(40, 24, 12, 5)
    rle = masks.encode(mask)
    assert isinstance(rle["counts"], str) and rle["size"] == [H, W]
    assert np.array_equal(masks.decode(json.loads(json.dumps(rle))), mask)
    assert masks.area(rle) == mask.sum()


def test_uncompressed_rle_is_decoded_and_normalised():
    mask = disk(30, 20, 9)
    compressed = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    flat = mask.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    counts = np.diff(np.concatenate([[0], changes])).tolist()
    uncompressed = {"size": [H, W], "counts": counts}
    assert np.array_equal(masks.decode(uncompressed), mask)
    assert masks.to_compressed(uncompressed)["counts"] == compressed["counts"].decode()


def test_bbox_and_area_of_a_rectangle():
    mask = np.zeros((H, W), bool)
    mask[5:15, 10:30] = True
    rle = masks.encode(mask)
    assert masks.bbox(rle) == [10.0, 5.0, 20.0, 10.0] and masks.area(rle) == 200
    assert masks.bbox(masks.encode(np.zeros((H, W), bool))) == [0.0, 0.0, 0.0, 0.0]


def test_holes_and_parts_are_detected():
    assert masks.has_holes(ring(30, 24, 12, 5)) and not masks.has_holes(disk(30, 24, 12))
    assert masks.part_count(two_parts()) == 2 and masks.part_count(np.zeros((4, 4), bool)) == 0


def test_polygon_modes():
    mask = two_parts() | ring(25, 30, 10, 4)
    largest = masks.mask_to_polygons(mask, "largest", 0)
    every = masks.mask_to_polygons(mask, "all", 0)
    holes = masks.mask_to_polygons(mask, "all_with_holes", 0)
    assert len(largest) == 1 and len(every) == masks.part_count(mask)
    assert [r.hole for r in holes].count(True) == 1
    hole = next(r for r in holes if r.hole)
    assert holes[hole.parent].hole is False
    back = masks.polygons_to_mask(holes, H, W)
    assert not back[30, 25]  # the hole stays empty
    assert np.array_equal(back, mask)  # without simplification the rings give the mask back exactly
    filled = masks.polygons_to_mask(every, H, W)
    assert filled[30, 25]  # without holes the ring is filled
    assert masks.mask_to_polygons(np.zeros((H, W), bool)) == []


@pytest.mark.parametrize("tolerance", [0.0, 1.0, 3.0])
def test_simplification_stays_within_tolerance_and_reduces_vertices(tolerance):
    mask = disk(32, 24, 18)
    rings = masks.mask_to_polygons(mask, "largest", tolerance)
    exact = masks.mask_to_polygons(mask, "largest", 0)
    assert len(rings[0].points) <= len(exact[0].points)
    if tolerance >= 1:
        assert len(rings[0].points) < len(exact[0].points)
    back = masks.polygons_to_mask(rings, H, W)
    assert masks.boundary_distance(mask, back) <= tolerance + 1.0


def test_tiny_parts_still_give_a_polygon():
    mask = np.zeros((H, W), bool)
    mask[10, 10] = True
    mask[20, 20:22] = True
    rings = masks.mask_to_polygons(mask, "all", 1.0)
    assert len(rings) == 2 and all(len(r.points) >= 3 for r in rings)
    assert np.array_equal(masks.polygons_to_mask(rings, H, W), mask)


def test_bad_arguments():
    with pytest.raises(ValueError, match="2-D"):
        masks.encode(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="polygon mode"):
        masks.mask_to_polygons(disk(5, 5, 2), "outer")


@pytest.mark.parametrize("seed", range(4))
def test_random_shapes_round_trip_exactly_or_within_tolerance(seed):
    rng = np.random.default_rng(seed)
    mask = np.zeros((H, W), np.uint8)
    for _ in range(3):  # ellipses, some cut by the image border, one with a hole punched in
        centre = (int(rng.integers(0, W)), int(rng.integers(0, H)))
        axes = (int(rng.integers(1, 20)), int(rng.integers(1, 16)))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    cv2.circle(mask, (int(rng.integers(10, W - 10)), int(rng.integers(10, H - 10))), 3, 0, -1)
    exact = masks.polygons_to_mask(masks.mask_to_polygons(mask, "all_with_holes", 0), H, W)
    assert np.array_equal(exact, mask.astype(bool))
    for tolerance in (0.5, 1.0, 2.0):
        rings = masks.mask_to_polygons(mask, "all_with_holes", tolerance)
        back = masks.polygons_to_mask(rings, H, W)
        assert masks.boundary_distance(mask, back) <= tolerance + 1.0
