"""The torch predictor reproduces the published implementation's outputs on the reference vectors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from efficientsam_studio.annotations.images import load_image
from efficientsam_studio.engine import load_predictor

TOLERANCE = 1e-3
MIN_MASK_AGREEMENT = 0.999


def _cases(reference_dir: Path) -> list[dict]:
    return json.loads((reference_dir / "cases.json").read_text())


@pytest.fixture(scope="module")
def reference_predictor(reference_dir: Path):
    return load_predictor(
        model="vit_t", checkpoint=reference_dir / "efficientsam_vitt_random_seed1.pt", device="cpu"
    )


@pytest.fixture(scope="module")
def image_state() -> dict:
    """Which image is set on the shared predictor, and the embedding computed for each image."""
    return {}


def _set_image(predictor, reference_dir: Path, name: str, image_state: dict) -> np.ndarray:
    image = load_image(reference_dir / "images" / name)
    if image_state.get("current") != name:
        predictor.set_image(image)
        image_state["current"] = name
        image_state[name] = predictor.get_image_embedding()
    return image


def test_embeddings_match_reference(reference_dir: Path, reference_predictor, image_state) -> None:
    names = sorted({case["image"] for case in _cases(reference_dir)})
    assert len(names) == 3
    for name in names:
        _set_image(reference_predictor, reference_dir, name, image_state)
        expected = np.load(reference_dir / "expected" / name.replace(".png", ".vit_t.embedding.npy"))
        actual = image_state[name]
        assert actual.shape == expected.shape == (1, 256, 64, 64)
        assert np.abs(actual - expected).max() <= TOLERANCE, name


@pytest.mark.parametrize("index", range(8))
def test_case_matches_reference(index: int, reference_dir: Path, reference_predictor, image_state) -> None:
    case = _cases(reference_dir)[index]
    image = _set_image(reference_predictor, reference_dir, case["image"], image_state)
    masks, scores, logits = reference_predictor.predict(
        point_coords=np.array(case["points"]) if "points" in case else None,
        point_labels=np.array(case["labels"]) if "labels" in case else None,
        box=np.array(case["box"]) if "box" in case else None,
        multimask_output=True,
    )
    stem = reference_dir / "expected" / f"case{index:02d}.vit_t"
    expected_iou = np.load(f"{stem}.iou.npy")
    expected_logits = np.load(f"{stem}.low_res_logits.npy")
    h, w = image.shape[:2]
    expected_masks = np.unpackbits(np.load(f"{stem}.masks.npy"), axis=-1)[..., :w].astype(bool)
    # the reference is in the model's order; ours is sorted best first
    order = np.argsort(-expected_iou, kind="stable")

    assert masks.shape == (3, h, w) and masks.dtype == bool
    assert scores.shape == (3,) and scores.dtype == np.float32
    assert logits.shape == (3, 256, 256) and logits.dtype == np.float32
    assert np.all(np.diff(scores) <= 0)
    assert np.abs(scores - expected_iou[order]).max() <= TOLERANCE
    assert np.abs(logits - expected_logits[order]).max() <= TOLERANCE
    agreement = (masks == expected_masks[order]).mean(axis=(1, 2))
    assert agreement.min() >= MIN_MASK_AGREEMENT, agreement
    assert reference_predictor.last_prompt_info is not None
    assert not reference_predictor.last_prompt_info.truncated


def test_single_output_is_the_best_candidate(reference_dir: Path, reference_predictor, image_state) -> None:
    case = _cases(reference_dir)[0]
    _set_image(reference_predictor, reference_dir, case["image"], image_state)
    prompt = {"point_coords": np.array(case["points"]), "point_labels": np.array(case["labels"])}
    all_masks, all_scores, all_logits = reference_predictor.predict(**prompt, multimask_output=True)
    masks, scores, logits = reference_predictor.predict(**prompt, multimask_output=False)
    assert masks.shape[0] == scores.shape[0] == logits.shape[0] == 1
    np.testing.assert_array_equal(masks[0], all_masks[0])
    assert scores[0] == pytest.approx(all_scores[0])
    np.testing.assert_allclose(logits[0], all_logits[0], atol=1e-5)
