"""Boxes and points modes on one image: the engine's rule for prompts and the image, skipped prompts and
the decoder's point limit reported as notes."""

from __future__ import annotations

import warnings

import numpy as np

from efficientsam_studio.batch.labeller import label_boxes, label_points
from efficientsam_studio.batch.prompts import BoxPrompt, PointPrompt
from efficientsam_studio.batch.results import ImageResult
from efficientsam_studio.engine.prompts import PromptsTruncatedWarning
from tests.batch.conftest import SCENES, SIZE, scene_image
from tests.batch.fake_predictor import ShapesPredictor


class WarningPredictor(ShapesPredictor):
    """Warns about every prompt of more than six points, as the engine does, and returns no infos."""

    def predict_batch(self, point_coords=None, point_labels=None, boxes=None, **kwargs):
        if point_coords is not None and np.shape(point_coords)[1] > 6:
            warnings.warn("the model reads at most 6 points", PromptsTruncatedWarning, stacklevel=2)
        return super().predict_batch(point_coords, point_labels, boxes, **kwargs)


def _predictor(cls=ShapesPredictor) -> ShapesPredictor:
    predictor = cls()
    predictor.set_image(scene_image(SCENES["img1.png"]))
    return predictor


def test_points_outside_the_image_are_skipped_and_the_others_labelled():
    result = ImageResult(1, "img1.png")
    prompts = [
        PointPrompt(((30, 30),), (1,), "cat", "inside"),
        PointPrompt(((30, 30), (-40, 10)), (1, 0), "cat", "partly"),
        PointPrompt(((160.8, 120.4),), (1,), "cat", "edge"),
        PointPrompt(((100, 60),), (0,), "dog", "negative"),
    ]
    label_points(_predictor(), SIZE, prompts, result)
    assert [m.attributes["object"] for m in result.masks] == ["inside", "edge", "negative"]
    assert result.skipped_prompts == 1
    assert result.notes == ["img1.png: object partly skipped: point (-40, 10) lies outside the 160x120 image "
                            "(x must be within 0..160, y within 0..120)"]  # fmt: skip


def test_boxes_are_clipped_and_those_outside_skipped():
    result = ImageResult(1, "img1.png")
    prompts = [
        BoxPrompt((-50, 10, 60, 50), "cat", origin="b.csv:2"),
        BoxPrompt((170, 0, 200, 50), "cat", origin="b.csv:3"),
        BoxPrompt((0.5, 0.2, 0.5, 0.6), "cat", origin="a.txt:1", normalized=True),
    ]
    label_boxes(_predictor(), SIZE, prompts, result)
    assert result.skipped_prompts == 1
    assert result.notes[0].endswith("b.csv:3 skipped: box (170, 0, 200, 50) lies outside the 160x120 image")
    boxes = [m.attributes["box"] for m in result.masks]
    assert boxes[0] == [0, 10, 60, 50] and all(b != [170, 0, 200, 50] for b in boxes)


def test_the_point_limit_warning_becomes_a_note_of_the_image():
    result = ImageResult(1, "img1.png")
    many = PointPrompt(tuple((10.0 + 5 * i, 10.0 + 4 * i) for i in range(8)), (1,) * 8, "cat", "many")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        label_points(_predictor(WarningPredictor), SIZE, [many], result)
    assert not caught
    assert result.notes == ["img1.png: the model reads at most 6 points"]


def _small_object_scene() -> np.ndarray:
    image = np.zeros((*SIZE, 3), np.uint8)
    image[40:56, 30:50] = (255, 0, 0)  # 20x16 pixels in a 160x120 image
    return image


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / np.logical_or(a, b).sum())


def test_a_small_box_is_decoded_again_in_its_cut_and_the_image_set_back():
    image = _small_object_scene()
    truth = np.zeros(SIZE, bool)
    truth[40:56, 30:50] = True
    prompts = [
        BoxPrompt((30, 40, 50, 56), "cat", None, "small"),
        BoxPrompt((5, 5, 150, 110), "cat", None, "big"),
    ]
    whole, cut = ImageResult(1, "a.png"), ImageResult(1, "a.png")
    predictor = ShapesPredictor()
    predictor.set_image(image)
    label_boxes(predictor, SIZE, prompts, whole)
    encodes = predictor.encodes
    label_boxes(predictor, SIZE, prompts, cut, image)
    assert predictor.encodes == encodes + 2 and predictor.image.shape[:2] == SIZE  # the cut, then the image
    small, big = cut.masks
    assert small.attributes["cut"] == [22, 32, 59, 65] and "cut" not in big.attributes
    assert big.rle == whole.masks[1].rle  # a large box is decoded once
    from efficientsam_studio.annotations import masks as codec

    assert _iou(codec.decode(small.rle), truth) == 1.0  # decoded in the cut, placed back where it belongs
