"""Prompt encoding, the 6-point policy, and pre-processing of the torch Predictor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from efficientsam_studio.engine import MAX_POINTS, Prompt, PromptsTruncatedWarning, load_predictor
from efficientsam_studio.engine.preprocess import preprocess_image
from efficientsam_studio.engine.prompts import (
    PromptError,
    PromptOutsideImageError,
    encode_prompt,
    fit_to_image,
    to_model_space,
)
from efficientsam_studio.errors import StudioError


@pytest.fixture(scope="module")
def predictor(tiny_checkpoint: Path):
    predictor = load_predictor(model="tiny", checkpoint=tiny_checkpoint, device="cpu")
    predictor.set_image(np.random.default_rng(0).integers(0, 256, size=(40, 60, 3), dtype=np.uint8))
    return predictor


def test_box_becomes_corners_labelled_2_and_3_after_the_points() -> None:
    coords, labels, info = encode_prompt(np.array([[1, 2]]), np.array([0]), np.array([30, 40, 10, 20]))
    np.testing.assert_array_equal(coords, [[1, 2], [10, 20], [30, 40]])
    np.testing.assert_array_equal(labels, [0, 2, 3])
    assert not info.truncated and info.note is None


def test_points_are_scaled_to_the_1024_square_and_negatives_become_padding() -> None:
    coords = torch.tensor([[[100.0, 50.0], [-3.0, 10.0]]])
    scaled = to_model_space(coords, (200, 400))
    torch.testing.assert_close(scaled, torch.tensor([[[256.0, 256.0], [-1.0, 51.2]]]))


def test_beyond_six_points_keeps_the_box_and_the_latest_points(predictor) -> None:
    points = np.array([[i * 5 + 2, i * 4 + 3] for i in range(7)], dtype=np.float32)
    labels = np.array([1, 0, 1, 0, 1, 1, 0])
    box = np.array([2, 2, 50, 30])
    with pytest.warns(PromptsTruncatedWarning, match="keep the box and the most recent points"):
        masks, scores, logits = predictor.predict(points, labels, box)
    info = predictor.last_prompt_info
    assert info.truncated and info.has_box
    assert info.dropped_points == (0, 1, 2) and info.kept_points == (3, 4, 5, 6)
    assert "used 4 of 7 points" in info.note and "[0, 1, 2]" in info.note
    same = predictor.predict(points[3:], labels[3:], box)
    np.testing.assert_array_equal(logits, same[2])
    assert not predictor.last_prompt_info.truncated


def test_beyond_six_points_without_a_box_keeps_the_last_six(predictor) -> None:
    points = np.array([[i * 6 + 1, i * 3 + 1] for i in range(8)], dtype=np.float32)
    labels = np.ones(8)
    with pytest.warns(PromptsTruncatedWarning):
        result = predictor.predict(points, labels)
    assert predictor.last_prompt_info.kept_points == tuple(range(2, 8))
    np.testing.assert_array_equal(result[2], predictor.predict(points[2:], labels[2:])[2])


def test_batch_reports_each_prompts_policy(predictor) -> None:
    many = Prompt(point_coords=np.zeros((7, 2)) + 5, point_labels=np.ones(7))
    few = Prompt(point_coords=np.array([[5, 5]]), point_labels=np.array([1]))
    with pytest.warns(PromptsTruncatedWarning):
        result = predictor.predict_batch(prompts=[many, few], return_masks=False)
    assert result.infos[0].dropped_points == (0,) and not result.infos[1].truncated
    assert MAX_POINTS == 6


def test_preprocessing_is_bilinear_resize_then_imagenet_normalisation() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, size=(30, 50, 3), dtype=np.uint8)
    tensor = preprocess_image(rgb)
    assert tensor.shape == (1, 3, 1024, 1024) and tensor.dtype == torch.float32
    unit = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    resized = F.interpolate(unit, size=(1024, 1024), mode="bilinear", align_corners=False, antialias=False)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(tensor, (resized - mean) / std, atol=0, rtol=0)


def test_a_1024_square_image_is_only_normalised() -> None:
    rgb = np.full((1024, 1024, 3), 255, dtype=np.uint8)
    tensor = preprocess_image(rgb)
    expected = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(tensor[0, :, 500, 700], expected)


def test_merged_prompt_tokens_decode_as_the_padded_ones(tiny_checkpoint) -> None:
    predictor = load_predictor("tiny", checkpoint=tiny_checkpoint, device="cpu", backend="torch")
    image = np.random.default_rng(3).integers(0, 256, size=(60, 90, 3), dtype=np.uint8)
    predictor.set_image(image)
    coords = np.array(
        [[[10.0, 20.0], [-1, -1], [-1, -1]], [[30.0, 40.0], [50.0, 20.0], [-1, -1]]], np.float32
    )
    labels = np.array([[1, -1, -1], [1, 0, -1]], np.float32)
    merged, bias = predictor.merged_prompt_tokens(coords, labels)
    assert merged.shape[1] == 3 and bias is not None  # two point slots and one padding token, not six
    padded, padding = predictor.prompt_tokens(coords, labels)
    decoder, context = predictor.fast_decoder, predictor.image_context()
    logits, iou = decoder.decode(context, merged, prompt_bias=bias)
    reference_logits, reference_iou = decoder.decode(context, padded)  # all six tokens, nothing merged
    assert torch.allclose(logits, reference_logits, atol=1e-5 * reference_logits.abs().max().item())
    assert torch.allclose(iou, reference_iou, atol=1e-5)
    # six points leave no padding to merge: all six tokens, no biases
    full = np.tile(np.array([[[10.0, 20.0]]], np.float32), (1, 6, 1))
    tokens, bias = predictor.merged_prompt_tokens(full, np.ones((1, 6), np.float32))
    assert tokens.shape[1] == 6 and bias is None


def test_prepare_decoding_does_the_per_image_work_before_the_first_prompt(
    tiny_checkpoint, monkeypatch
) -> None:
    predictor = load_predictor("tiny", checkpoint=tiny_checkpoint, device="cpu", backend="torch")
    decoder = predictor.fast_decoder
    calls = []
    original = decoder.prepare
    monkeypatch.setattr(decoder, "prepare", lambda embedding: calls.append(1) or original(embedding))
    image = np.random.default_rng(4).integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    predictor.set_image(image)
    predictor.prepare_decoding()
    assert len(calls) == 1
    masks, _, _ = predictor.predict(np.array([[20.0, 20.0]]), np.array([1]))
    assert len(calls) == 1 and masks.shape == (3, 40, 50)  # the prompt found the context ready
    predictor.set_image(image[::-1].copy())  # another image: its own context
    predictor.prepare_decoding()
    assert len(calls) == 2


# -- prompts and the image (40 rows x 60 columns): one rule for predict and predict_batch ---------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"point_coords": [[-50, -50]], "point_labels": [1]}, r"point \(-50, -50\) lies outside the 60x40"),
        ({"point_coords": [[1e9, 1e9]], "point_labels": [1]}, r"point \(1e\+09, 1e\+09\) lies outside"),
        ({"point_coords": [[10, 10], [61.5, 5]], "point_labels": [1, 0]}, r"point \(61.5, 5\) lies outside"),
        ({"box": [100, 50, 200, 90]}, r"box \(100, 50, 200, 90\) lies outside the 60x40 image"),
        ({"box": [-30, -20, -1, -1]}, r"box \(-30, -20, -1, -1\) lies outside"),
    ],
)
def test_prompts_outside_the_image_are_refused(predictor, kwargs, message) -> None:
    with pytest.raises(PromptError, match=message) as info:
        predictor.predict(**kwargs)
    assert isinstance(info.value, ValueError) and isinstance(info.value, StudioError)
    prompt = Prompt(**{k: np.asarray(v, dtype=np.float32) for k, v in kwargs.items()})
    with pytest.raises(PromptError, match=f"prompt 1: {message}"):
        predictor.predict_batch(prompts=[Prompt(point_coords=[[3, 3]], point_labels=[1]), prompt])


def test_a_box_one_pixel_wide_is_a_prompt_like_any_other(predictor) -> None:
    """The tight box of a one-pixel-wide object has x0 == x1 (inclusive corners); on the image edge too."""
    for box in ([5, 5, 5, 30], [0, 5, 0, 30], [5, 12, 40, 12]):
        masks, scores, logits = predictor.predict(box=np.array(box, np.float32))
        assert masks.shape == (3, 40, 60) and np.isfinite(logits).all() and np.isfinite(scores).all()


def test_points_within_a_pixel_of_the_image_move_onto_its_edge(predictor) -> None:
    near = predictor.predict(point_coords=[[-0.8, 40.6], [60.9, -1.0]], point_labels=[1, 0])
    edge = predictor.predict(point_coords=[[0, 40], [60, 0]], point_labels=[1, 0])
    np.testing.assert_array_equal(near[2], edge[2])


def test_a_box_is_clipped_to_the_image_and_reversed_corners_are_swapped(predictor) -> None:
    clipped = predictor.predict(box=[-20, 10, 30, 90])
    inside = predictor.predict(box=[0, 10, 30, 40])
    reversed_corners = predictor.predict(box=[30, 40, 0, 10])
    np.testing.assert_array_equal(clipped[2], inside[2])
    np.testing.assert_array_equal(reversed_corners[2], inside[2])


def test_negative_points_alone_are_a_prompt(predictor) -> None:
    masks, scores, _ = predictor.predict(point_coords=[[10, 10], [50, 30]], point_labels=[0, 0])
    assert masks.shape == (3, 40, 60) and np.isfinite(scores).all()


def test_fit_to_image_states_the_rule() -> None:
    points, box = fit_to_image(np.array([[-1.0, 3.0], [12.5, 21.0]]), np.array([15, -5, 2, 8]), (20, 12))
    np.testing.assert_array_equal(points, [[0, 3], [12, 20]])
    np.testing.assert_array_equal(box, [2, 0, 12, 8])
    with pytest.raises(PromptOutsideImageError, match=r"x must be within 0..12, y within 0..20"):
        fit_to_image(np.array([[3.0, 21.5]]), None, (20, 12))


@pytest.mark.parametrize("box", [[-40, 10, 0, 30], [60, 10, 90, 30], [10, -20, 30, 0], [10, 40, 30, 70]])
def test_a_box_touching_an_edge_only_from_outside_is_refused_on_every_side(predictor, box) -> None:
    with pytest.raises(PromptError, match="lies outside the 60x40 image"):
        predictor.predict(box=np.array(box, np.float32))
