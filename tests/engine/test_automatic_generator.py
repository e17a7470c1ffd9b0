"""Segment everything on synthetic images, with a predictor whose decoder outputs are built by hand."""

import numpy as np
import pytest

from efficientsam_studio.engine.automatic import (
    AutomaticMaskGenerator,
    AutomaticMaskParams,
    AutomaticParamsError,
    MaskGenerationCancelled,
)
from efficientsam_studio.errors import StudioError
from tests.batch.fake_predictor import ShapesPredictor


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / np.logical_or(a, b).sum())


def _scene() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A 240x320 black image with three objects; returns the image and each object's mask."""
    image = np.zeros((240, 320, 3), dtype=np.uint8)
    objects = {}
    red = np.zeros((240, 320), dtype=bool)
    red[20:80, 30:110] = True
    green = np.zeros_like(red)
    green[120:200, 150:290] = True
    yy, xx = np.mgrid[:240, :320]
    blue = (xx - 230) ** 2 + (yy - 60) ** 2 <= 30**2
    shapes = ((red, (255, 0, 0), "red"), (green, (0, 255, 0), "green"), (blue, (0, 0, 255), "blue"))
    for mask, colour, name in shapes:
        image[mask] = colour
        objects[name] = mask
    return image, objects


def _match(masks, objects) -> dict[str, float]:
    """Best IoU of each object among the generated masks."""
    return {name: max((_iou(m.to_mask(), gt) for m in masks), default=0.0) for name, gt in objects.items()}


def test_every_object_is_found_once_with_its_sharp_candidate():
    image, objects = _scene()
    predictor = ShapesPredictor()
    params = AutomaticMaskParams(points_per_side=16, points_per_batch=40)
    generator = AutomaticMaskGenerator(predictor, params)
    masks = generator.generate(image)
    assert len(masks) == 3  # duplicates from the many points on each object are removed by NMS
    assert all(iou > 0.95 for iou in _match(masks, objects).values())
    # the soft candidate (higher predicted IoU, unstable logits) loses to the sharp one by stability
    assert [m.predicted_iou for m in masks] == pytest.approx([0.95] * 3)
    assert all(m.stability_score >= 0.95 for m in masks)
    assert [m.area for m in masks] == sorted((m.area for m in masks), reverse=True)
    assert predictor.encodes == 1
    stats = generator.last_stats
    assert stats.points == 256 and stats.candidates == 768 and stats.masks == 3
    first = masks[0]
    assert first.rle["size"] == [240, 320] and isinstance(first.rle["counts"], str)
    x, y, w, h = first.bbox
    ys, xs = np.nonzero(first.to_mask())
    assert (x, y, w, h) == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    assert first.area == len(xs)


def test_lowering_the_iou_threshold_lets_the_part_candidates_through():
    image, _ = _scene()
    params = AutomaticMaskParams(points_per_side=16, points_per_batch=64, pred_iou_thresh=0.4)
    masks = AutomaticMaskGenerator(ShapesPredictor(), params).generate(image)
    # each object adds its left half (predicted IoU 0.5), whose box overlaps the whole by about 0.5 < 0.7
    assert sorted(round(m.predicted_iou, 2) for m in masks) == [0.5, 0.5, 0.5, 0.95, 0.95, 0.95]


def test_without_the_stability_filter_the_soft_candidate_wins_the_nms():
    image, objects = _scene()
    params = AutomaticMaskParams(points_per_side=16, stability_score_thresh=0.0)
    masks = AutomaticMaskGenerator(ShapesPredictor(), params).generate(image)
    assert len(masks) == 3
    assert [m.predicted_iou for m in masks] == pytest.approx([0.97] * 3)
    assert all(m.stability_score < 0.5 for m in masks)


def test_nms_threshold_one_keeps_the_duplicate_masks():
    image, _ = _scene()
    loose = AutomaticMaskParams(points_per_side=8, box_nms_thresh=1.0, min_mask_area=0)
    masks = AutomaticMaskGenerator(ShapesPredictor(), loose).generate(image)
    assert len(masks) > 3  # identical boxes from several points are not suppressed at threshold 1.0
    boxes = {m.bbox for m in masks}
    assert len(boxes) == 3


def test_masks_cut_by_inner_crop_borders_are_dropped_and_crops_are_deduplicated():
    image, objects = _scene()
    # a wide object across the vertical centre line: every layer-1 crop sees only a piece of it
    image[100:116, 60:260] = (255, 255, 0)
    objects["yellow"] = np.all(image == (255, 255, 0), axis=2)
    predictor = ShapesPredictor()
    params = AutomaticMaskParams(points_per_side=16, crop_n_layers=1, crop_overlap_ratio=0.1)
    generator = AutomaticMaskGenerator(predictor, params)
    masks = generator.generate(image)
    assert predictor.encodes == 5  # the whole image once, then each of the four crops once
    assert generator.last_stats.crops == 5 and generator.last_stats.points == 5 * 256
    assert len(masks) == 4
    assert all(iou > 0.9 for iou in _match(masks, objects).values())
    crop_of = {
        name: next(m.crop_box for m in masks if _iou(m.to_mask(), gt) > 0.9) for name, gt in objects.items()
    }
    assert crop_of["yellow"] == (0, 0, 320, 240)  # only the whole image holds it uncut
    assert crop_of["red"] != (0, 0, 320, 240)  # found in a crop too, and the smaller crop wins


def test_small_objects_and_small_holes_are_cleaned_up_by_min_area():
    image, objects = _scene()
    image[50:56, 48:54] = (255, 0, 255)  # 36-pixel object under a grid point
    image[140:150, 170:180] = 0  # 100-pixel hole in the green rectangle
    image[172:176, 250:254] = 0  # 16-pixel hole in the green rectangle
    params = AutomaticMaskParams(points_per_side=16, min_mask_area=60)
    masks = AutomaticMaskGenerator(ShapesPredictor(), params).generate(image)
    assert len(masks) == 3  # the 36-pixel object is gone
    green = max(masks, key=lambda m: _iou(m.to_mask(), objects["green"])).to_mask()
    assert green[172:176, 250:254].all()  # small hole filled
    assert not green[142:148, 172:178].any()  # large hole kept
    kept = AutomaticMaskGenerator(ShapesPredictor(), AutomaticMaskParams(points_per_side=16, min_mask_area=0))
    assert len(kept.generate(image)) == 4


def test_progress_reports_every_batch_and_cancel_stops():
    image, _ = _scene()
    seen = []
    params = AutomaticMaskParams(points_per_side=8, points_per_batch=16)
    generator = AutomaticMaskGenerator(ShapesPredictor(), params)
    generator.generate(image, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(16, 64), (32, 64), (48, 64), (64, 64)]
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(MaskGenerationCancelled):
        generator.generate(image, cancel=cancel)
    assert len(calls) == 3


def test_parameters_out_of_range_are_user_errors_naming_the_parameter():
    with pytest.raises(AutomaticParamsError, match="box_nms_thresh") as info:
        AutomaticMaskGenerator(ShapesPredictor(), AutomaticMaskParams(box_nms_thresh=0.0))
    assert isinstance(info.value, StudioError)
    with pytest.raises(AutomaticParamsError, match="points_per_side"):
        AutomaticMaskParams(points_per_side=0).validate()


def test_the_real_engine_with_relaxed_filters_gives_consistent_full_size_masks(tiny_checkpoint):
    """The torch predictor's batched decode feeds the generator (random weights, so the filters are off)."""
    from efficientsam_studio.engine import load_predictor

    predictor = load_predictor("tiny", checkpoint=tiny_checkpoint, device="cpu", backend="torch")
    image, _ = _scene()
    params = AutomaticMaskParams(
        points_per_side=2,
        pred_iou_thresh=-1.0,
        stability_score_thresh=0.0,
        box_nms_thresh=1.0,
        min_mask_area=0,
    )
    generator = AutomaticMaskGenerator(predictor, params)
    masks = generator.generate(image)
    assert generator.last_stats.candidates == 12 and generator.last_stats.after_filters > 0
    assert masks
    for auto in masks:
        mask = auto.to_mask()
        assert mask.shape == (240, 320) and mask.sum() == auto.area > 0
        ys, xs = np.nonzero(mask)
        assert auto.bbox == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    # the same candidate through the predictor's own upsampling: the region upsampling agrees with it
    predictor.set_image(image)
    best = masks[0]
    _, scores, logits = predictor.predict(point_coords=np.array([best.point]), point_labels=np.array([1]))
    full = predictor.masks_from_logits(logits)
    agreement = max(float(np.mean(candidate == best.to_mask())) for candidate in full)
    assert agreement > 0.999


def test_skipping_covered_points_decodes_fewer_points_and_finds_the_same_objects():
    image, objects = _scene()
    full = ShapesPredictor()
    AutomaticMaskGenerator(full, AutomaticMaskParams(points_per_side=16)).generate(image)
    lean = ShapesPredictor()
    params = AutomaticMaskParams(points_per_side=16, skip_covered_points=True)
    generator = AutomaticMaskGenerator(lean, params)
    seen = []
    masks = generator.generate(image, progress=lambda done, total: seen.append((done, total)))
    assert len(masks) == 3 and all(iou > 0.95 for iou in _match(masks, objects).values())
    skipped = generator.last_stats.skipped_points
    assert skipped > 0 and lean.calls == full.calls - skipped
    assert seen[-1] == (256, 256)


class _OpaquePredictor:
    """Forwards to an engine predictor without being one: the generator cannot ask it to skip masks."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def set_image(self, image):
        self.inner.set_image(image)

    def predict_batch(self, **kwargs):
        assert "min_score" not in kwargs
        return self.inner.predict_batch(**kwargs)


def test_skipping_the_masks_of_low_scored_prompts_changes_no_result(tiny_checkpoint, monkeypatch):
    """The torch predictor leaves out the masks of prompts whose candidates all fail ``pred_iou_thresh``;
    the generator's output is the same as with every mask computed."""
    from efficientsam_studio.engine import load_predictor

    predictor = load_predictor("tiny", checkpoint=tiny_checkpoint, device="cpu", backend="torch")
    image, _ = _scene()
    predictor.set_image(image)
    grid = np.stack(np.meshgrid(np.linspace(20, 300, 4), np.linspace(15, 225, 4)), -1).reshape(-1, 1, 2)
    scores = predictor.predict_batch(grid, np.ones((16, 1)), return_masks=False).scores
    threshold = float(np.median(scores.max(axis=1)))  # about half the prompts have a candidate above
    params = AutomaticMaskParams(
        points_per_side=4, pred_iou_thresh=threshold, stability_score_thresh=0.0, min_mask_area=0
    )
    upscaled = []
    original = predictor.fast_decoder.upscale_masks

    def counting(context, keys, hyper):
        upscaled.append(len(keys))
        return original(context, keys, hyper)

    monkeypatch.setattr(predictor.fast_decoder, "upscale_masks", counting)
    masks = AutomaticMaskGenerator(predictor, params).generate(image)
    skipped_run = sum(upscaled)
    full = AutomaticMaskGenerator(_OpaquePredictor(predictor), params).generate(image)
    assert 0 < skipped_run < 16 and sum(upscaled) - skipped_run == 16
    assert masks
    # through the embedding cache's wrapper (what the CLI and the app use) the masks are skipped too;
    # memory tier only, so the embedding is not the disk tier's float16 copy
    from efficientsam_studio.engine.cache import CachedPredictor, EmbeddingCache

    upscaled.clear()
    cached = AutomaticMaskGenerator(CachedPredictor(predictor, EmbeddingCache()), params).generate(image)
    assert sum(upscaled) == skipped_run
    assert [m.rle for m in cached] == [m.rle for m in masks]
    assert [m.rle for m in masks] == [m.rle for m in full]
    assert [m.predicted_iou for m in masks] == pytest.approx([m.predicted_iou for m in full], abs=1e-6)
