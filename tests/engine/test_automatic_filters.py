"""The numpy building blocks of automatic masks, on hand-made inputs with known answers."""

import cv2
import numpy as np
import pytest

from efficientsam_studio.engine import amg_filters as F


def test_point_grid_holds_cell_centres_row_by_row():
    grid = F.build_point_grid(2)
    np.testing.assert_allclose(grid, [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])
    assert F.build_point_grid(32).shape == (1024, 2)


def test_points_per_layer_shrink_with_the_downscale_factor():
    assert [F.points_per_side_for_layer(32, layer, 2) for layer in range(3)] == [32, 16, 8]
    assert F.points_per_side_for_layer(2, 5, 2) == 1


def test_crop_layers_tile_the_image_with_overlap():
    crops = F.generate_crop_boxes((100, 200), n_layers=1, overlap_ratio=0.2)
    assert crops[0] == ((0, 0, 200, 100), 0)
    layer1 = [box for box, layer in crops if layer == 1]
    assert len(layer1) == 4
    overlap = int(0.2 * 100 * 2 / 2)  # 20 px
    xs = sorted({(b[0], b[2]) for b in layer1})
    ys = sorted({(b[1], b[3]) for b in layer1})
    assert xs[0][0] == 0 and xs[-1][1] == 200 and ys[0][0] == 0 and ys[-1][1] == 100
    assert xs[0][1] - xs[1][0] == overlap and ys[0][1] - ys[1][0] == overlap
    assert len(F.generate_crop_boxes((100, 200), n_layers=2, overlap_ratio=0.2)) == 1 + 4 + 16


def test_stability_score_is_iou_of_the_masks_at_plus_and_minus_offset():
    logits = np.full((2, 10, 10), -3.0, dtype=np.float32)
    logits[0].flat[:20] = 3.0  # above +1: 20 pixels
    logits[0].flat[20:25] = 0.5  # between -1 and +1: 10 more above -1
    logits[0].flat[25:30] = -0.5
    logits[1].flat[:5] = 0.2  # nothing above +1, 5 above -1
    scores = F.stability_scores(logits, mask_threshold=0.0, offset=1.0)
    np.testing.assert_allclose(scores, [20 / 30, 0.0])
    np.testing.assert_allclose(F.stability_scores(logits, 0.0, 0.45), [25 / 25, 0.0])
    np.testing.assert_allclose(F.stability_scores(logits, 0.25, 0.5), [20 / 25, 0.0])
    empty = np.full((1, 4, 4), -5.0, dtype=np.float32)
    assert F.stability_scores(empty, 0.0, 1.0)[0] == 0.0


def test_masks_to_boxes_gives_exclusive_ends_and_zeros_for_empty_masks():
    masks = np.zeros((3, 20, 30), dtype=bool)
    masks[0, 2:5, 3:9] = True
    masks[1, 0, 29] = True
    boxes = F.masks_to_boxes(masks)
    np.testing.assert_array_equal(boxes, [[3, 2, 9, 5], [29, 0, 30, 1], [0, 0, 0, 0]])


def _reference_nms(boxes, scores, threshold):
    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    order = sorted(range(len(boxes)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        if all(iou(boxes[i], boxes[k]) <= threshold for k in keep):
            keep.append(i)
    return keep


def test_nms_drops_overlapping_boxes_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10]], dtype=float)
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    # box 1 overlaps box 3 with IoU 90 / 110 = 0.82; box 0 is a copy of box 3
    assert F.nms_boxes(boxes, scores, 0.7).tolist() == [3, 2]
    assert F.nms_boxes(boxes, scores, 0.85).tolist() == [3, 1, 2]
    assert F.nms_boxes(np.zeros((0, 4)), np.zeros(0), 0.7).tolist() == []


def test_nms_matches_a_plain_greedy_implementation_on_random_boxes():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, size=(200, 2))
    wh = rng.uniform(5, 40, size=(200, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    scores = rng.uniform(size=200)
    for threshold in (0.3, 0.5, 0.7):
        assert F.nms_boxes(boxes, scores, threshold).tolist() == _reference_nms(boxes, scores, threshold)


def test_boxes_at_an_inner_crop_edge_are_flagged_but_not_at_the_image_edge():
    image = (0, 0, 200, 100)
    crop = (100, 0, 200, 60)
    boxes = np.array(
        [
            [105, 10, 150, 40],  # touches the crop's left edge (inside the image): flagged
            [150, 10, 200, 40],  # touches the right edge, shared with the image: kept
            [130, 0, 160, 30],  # touches the top edge, shared with the image: kept
            [130, 30, 160, 58],  # touches the crop's bottom edge (inside the image): flagged
            [130, 20, 160, 30],  # well inside
        ],
        dtype=float,
    )
    flagged = F.boxes_near_crop_edge(boxes, crop, image, tolerance=5)
    assert flagged.tolist() == [True, False, False, True, False]
    assert not F.boxes_near_crop_edge(boxes, image, image, tolerance=5).any()


def _ring_with_holes():
    mask = np.zeros((40, 40), dtype=bool)
    mask[5:35, 5:35] = True
    mask[10:12, 10:12] = False  # 4-pixel hole
    mask[20:30, 20:30] = False  # 100-pixel hole
    mask[1:3, 37:39] = True  # 4-pixel island
    return mask


def test_small_holes_are_filled_and_large_ones_kept():
    mask = _ring_with_holes()
    filled, changed = F.remove_small_regions(mask, min_area=10, mode="holes")
    assert changed
    assert filled[10:12, 10:12].all() and not filled[20:30, 20:30].any()
    assert filled[1:3, 37:39].all()  # islands untouched in hole mode
    assert np.count_nonzero(filled) == np.count_nonzero(mask) + 4


def test_small_islands_are_removed():
    mask = _ring_with_holes()
    cleaned, changed = F.remove_small_regions(mask, min_area=10, mode="islands")
    assert changed and not cleaned[1:3, 37:39].any()
    assert np.count_nonzero(cleaned) == np.count_nonzero(mask) - 4
    single = np.zeros((10, 10), dtype=bool)
    single[2:4, 2:4] = True
    same, changed = F.remove_small_regions(single, min_area=10, mode="islands")
    assert not changed and same is single  # the only island stays even when small


def test_a_notch_open_to_the_frame_is_not_a_hole():
    # a tight crop of a "C" shape: the opening touches the crop's edge and must not be filled
    mask = np.ones((12, 12), dtype=bool)
    mask[4:8, 6:12] = False
    out, changed = F.remove_small_regions(mask, min_area=100, mode="holes")
    assert not changed and not out[4:8, 6:12].any()


@pytest.mark.parametrize("interpolation", [cv2.INTER_CUBIC, cv2.INTER_LINEAR])
def test_region_upsampling_matches_a_full_resize(interpolation):
    rng = np.random.default_rng(1)
    logits = (rng.standard_normal((64, 64)) * 3).astype(np.float32)
    size = (270, 480)
    full = cv2.resize(logits, (size[1], size[0]), interpolation=interpolation)
    region = (100, 40, 300, 200)
    part = F.upsample_logits_region(logits, size, region, interpolation)
    assert part.shape == (160, 200)
    expected = full[40:200, 100:300]
    assert np.abs(part - expected).max() < 1e-2
    assert np.mean((part > 0) == (expected > 0)) > 0.999
