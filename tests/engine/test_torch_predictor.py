"""The torch Predictor on the tiny model: call shape, sorting, batching, embeddings, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from efficientsam_studio.engine import (
    BackendError,
    DeviceError,
    NoImageError,
    Predictor,
    Prompt,
    PromptError,
    load_predictor,
)
from efficientsam_studio.engine.preprocess import ImageInputError
from efficientsam_studio.errors import CheckpointError

H, W = 48, 80


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    rgb[10:30, 20:50] = (250, 20, 20)
    return rgb


@pytest.fixture(scope="module")
def predictor(tiny_checkpoint: Path, image: np.ndarray):
    predictor = load_predictor(model="tiny", checkpoint=tiny_checkpoint, device="cpu")
    predictor.set_image(image)
    return predictor


def test_is_a_predictor(predictor) -> None:
    assert isinstance(predictor, Predictor)
    assert predictor.backend == "torch" and predictor.model_name == "tiny"
    assert predictor.original_size == (H, W)


def test_predict_returns_sorted_candidates_at_image_size(predictor) -> None:
    masks, scores, logits = predictor.predict(point_coords=np.array([[30, 20]]), point_labels=np.array([1]))
    assert masks.shape == (3, H, W) and masks.dtype == bool
    assert scores.shape == (3,) and scores.dtype == np.float32
    assert logits.shape == (3, 256, 256) and logits.dtype == np.float32
    assert np.all(np.diff(scores) <= 0)
    np.testing.assert_array_equal(masks, predictor.masks_from_logits(logits))


def test_masks_are_bicubic_logits_above_zero(predictor) -> None:
    masks, _, logits = predictor.predict(box=np.array([5, 5, 60, 40]))
    up = torch.nn.functional.interpolate(
        torch.from_numpy(logits)[None], size=(H, W), mode="bicubic", align_corners=False
    )[0].numpy()
    # upsampled with OpenCV's bicubic (same kernel, float32 rounding): pixels differ only where the
    # interpolated logit is within rounding of the threshold
    differ = masks != (up > 0)
    assert differ.mean() <= 1e-3
    assert np.abs(up[differ]).max(initial=0.0) < 1e-3


def test_single_output_is_the_best_candidate(predictor) -> None:
    prompt = {"point_coords": np.array([[30, 20], [70, 40]]), "point_labels": np.array([1, 0])}
    masks, scores, logits = predictor.predict(**prompt)
    best_mask, best_score, best_logits = predictor.predict(**prompt, multimask_output=False)
    assert best_mask.shape == (1, H, W) and best_score.shape == (1,) and best_logits.shape == (1, 256, 256)
    np.testing.assert_array_equal(best_mask[0], masks[0])
    assert best_score[0] == pytest.approx(scores[0])


def test_box_corners_in_any_order_give_the_same_result(predictor) -> None:
    a = predictor.predict(box=np.array([5, 5, 60, 40]))
    b = predictor.predict(box=np.array([60, 40, 5, 5]))
    np.testing.assert_allclose(a[1], b[1], atol=1e-6)


def test_embedding_round_trip_reproduces_predictions(predictor, tiny_checkpoint: Path, image) -> None:
    embedding = predictor.get_image_embedding()
    assert embedding.shape == (1, 256, 64, 64) and embedding.dtype == np.float32
    other = load_predictor(model="tiny", checkpoint=tiny_checkpoint, device="cpu")
    other.set_embedding(embedding, image.shape[:2])
    prompt = {"point_coords": np.array([[10, 10]]), "point_labels": np.array([1])}
    for ours, theirs in zip(predictor.predict(**prompt), other.predict(**prompt), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_batch_equals_one_by_one(predictor) -> None:
    coords = np.array([[[30, 20]], [[70, 40]], [[5, 45]]], dtype=np.float32)
    labels = np.ones((3, 1))
    predictor.decode_chunk = 2  # exercise chunking
    try:
        masks, scores, logits = predictor.predict_batch(coords, labels)
    finally:
        predictor.decode_chunk = 8
    assert masks.shape == (3, 3, H, W) and scores.shape == (3, 3) and logits.shape == (3, 3, 256, 256)
    for i in range(3):
        single = predictor.predict(coords[i], labels[i])
        np.testing.assert_allclose(scores[i], single[1], atol=1e-5)
        np.testing.assert_allclose(logits[i], single[2], atol=1e-4)


def test_batch_of_mixed_prompts_and_boxes(predictor) -> None:
    prompts = [
        Prompt(box=np.array([5, 5, 60, 40])),
        Prompt(point_coords=np.array([[30, 20], [70, 40]]), point_labels=np.array([1, 0])),
    ]
    result = predictor.predict_batch(prompts=prompts, multimask_output=False, return_masks=False)
    assert result.masks is None
    assert result.scores.shape == (2, 1) and result.low_res_logits.shape == (2, 1, 256, 256)
    assert [info.num_points for info in result.infos] == [0, 2]
    alone = predictor.predict(box=np.array([5, 5, 60, 40]), multimask_output=False)
    np.testing.assert_allclose(result.scores[0], alone[1], atol=1e-5)
    boxes = predictor.predict_batch(boxes=np.array([[5, 5, 60, 40], [0, 0, 20, 20]]))
    assert boxes.masks.shape == (2, 3, H, W)
    box_alone = predictor.predict(box=np.array([5, 5, 60, 40]))
    np.testing.assert_allclose(boxes.scores[0], box_alone[1], atol=1e-5)


def test_empty_batch(predictor) -> None:
    result = predictor.predict_batch(prompts=[])
    assert result.scores.shape == (0, 3) and result.masks.shape == (0, 3, H, W)


def test_predict_before_set_image(tiny_checkpoint: Path) -> None:
    fresh = load_predictor(model="tiny", checkpoint=tiny_checkpoint, device="cpu")
    with pytest.raises(NoImageError, match="call set_image"):
        fresh.predict(box=np.array([0, 0, 5, 5]))
    with pytest.raises(NoImageError):
        fresh.get_image_embedding()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((10, 10), np.uint8), r"RGB of shape \(H, W, 3\)"),
        (np.zeros((10, 10, 4), np.uint8), r"RGB of shape \(H, W, 3\)"),
        (np.zeros((10, 10, 3), np.float32), "must be uint8"),
        (np.zeros((0, 10, 3), np.uint8), r"RGB of shape"),
    ],
)
def test_bad_image_arrays(predictor, bad: np.ndarray, message: str) -> None:
    with pytest.raises(ImageInputError, match=message):
        predictor.set_image(bad)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "at least one point or a box"),
        ({"point_coords": np.array([[1, 2]])}, "must be given together"),
        ({"point_coords": np.array([1, 2]), "point_labels": np.array([1])}, r"shape \(N, 2\)"),
        ({"point_coords": np.array([[1, 2]]), "point_labels": np.array([1, 1])}, r"shape \(1,\)"),
        ({"point_coords": np.array([[1, 2]]), "point_labels": np.array([2])}, "1 \\(positive\\) or 0"),
        ({"point_coords": np.array([[np.nan, 2]]), "point_labels": np.array([1])}, "not finite"),
        ({"box": np.array([1, 2, 3])}, r"box must be \(x0, y0, x1, y1\)"),
    ],
)
def test_bad_prompts(predictor, kwargs: dict, message: str) -> None:
    with pytest.raises(PromptError, match=message):
        predictor.predict(**kwargs)


def test_set_embedding_checks_shape(predictor) -> None:
    with pytest.raises(Exception, match=r"\(1, 256, 64, 64\)"):
        predictor.set_embedding(np.zeros((256, 64, 64), np.float32), (10, 10))


def test_unknown_backend(tiny_checkpoint: Path) -> None:
    with pytest.raises(BackendError, match="unknown backend 'tensorrt'.*torch"):
        load_predictor(model="tiny", checkpoint=tiny_checkpoint, backend="tensorrt")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_cuda(tiny_checkpoint: Path) -> None:
    with pytest.raises(DeviceError, match="CUDA is not available.*--device cpu"):
        load_predictor(model="tiny", checkpoint=tiny_checkpoint, device="cuda")


def test_auto_device_falls_back_to_cpu(tiny_checkpoint: Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert load_predictor(model="tiny", checkpoint=tiny_checkpoint, device="auto").device.type == "cpu"


def test_unknown_device_and_model(tiny_checkpoint: Path) -> None:
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        load_predictor(model="tiny", checkpoint=tiny_checkpoint, device="tpu")
    with pytest.raises(CheckpointError, match="unknown model 'vit_q'"):
        load_predictor(model="vit_q", checkpoint=tiny_checkpoint)


def test_installed_weights_are_used_without_checkpoint(tiny_checkpoint: Path, monkeypatch) -> None:
    from efficientsam_studio.engine import weights

    monkeypatch.setattr(weights, "installed_path", lambda name: tiny_checkpoint if name == "tiny" else None)
    assert load_predictor(model="tiny", device="cpu").model_name == "tiny"


def test_missing_weights_say_how_to_get_them(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EFSAM_HOME", str(tmp_path))
    with pytest.raises(CheckpointError) as info:
        load_predictor(model="vit_t", device="cpu")
    message = str(info.value)
    assert "efsam-studio weights download vit_t" in message
    assert "--checkpoint" in message


@pytest.mark.parametrize("backend", ["torch", "torch-bf16"])
def test_torch_backends_without_torch_say_what_to_install(backend: str) -> None:
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # as in an install without torch
        from efficientsam_studio.engine.loader import BackendError, load_predictor
        try:
            load_predictor(model="tiny", checkpoint="x.pt", device="cpu", backend={backend!r})
        except BackendError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert f"the {backend} backend needs torch: pip install 'efficientsam-studio[train]'" in out
    assert "backend 'onnx' or 'auto'" in out


def test_min_score_skips_only_masks_that_are_not_wanted(tiny_checkpoint) -> None:
    """Prompts whose candidates all score at most ``min_score`` get ``-inf`` logits; the others, and
    every score, equal a full decode."""
    predictor = load_predictor("tiny", tiny_checkpoint, "cpu", backend="torch")
    image = np.random.default_rng(4).integers(0, 255, size=(90, 120, 3), dtype=np.uint8)
    predictor.set_image(image)
    coords = np.array([[[10, 10]], [[60, 45]], [[100, 80]], [[30, 70]]], dtype=np.float32)
    labels = np.ones((4, 1), dtype=np.float32)
    full = predictor.predict_batch(coords, labels, return_masks=False)
    threshold = float(np.median(full.scores.max(axis=1)))
    partial = predictor.predict_batch(coords, labels, return_masks=False, min_score=threshold)

    np.testing.assert_allclose(partial.scores, full.scores, atol=1e-6)
    wanted = (full.scores > threshold).any(axis=1)
    assert wanted.any() and not wanted.all()
    np.testing.assert_allclose(partial.low_res_logits[wanted], full.low_res_logits[wanted], atol=1e-5)
    assert np.isneginf(partial.low_res_logits[~wanted]).all()


def test_best_only_batch_with_min_score(tiny_checkpoint) -> None:
    """With one output per prompt only the best candidate is upscaled: its logits and score equal the
    best of a multimask decode, and ``min_score`` leaves out the prompts whose best is not above it."""
    predictor = load_predictor("tiny", tiny_checkpoint, "cpu", backend="torch")
    image = np.random.default_rng(4).integers(0, 255, size=(90, 120, 3), dtype=np.uint8)
    predictor.set_image(image)
    coords = np.array([[[10, 10]], [[60, 45]], [[100, 80]], [[30, 70]]], dtype=np.float32)
    labels = np.ones((4, 1), dtype=np.float32)
    full = predictor.predict_batch(coords, labels, return_masks=False)
    best = predictor.predict_batch(coords, labels, multimask_output=False)
    assert best.masks.shape == (4, 1, 90, 120) and best.low_res_logits.shape == (4, 1, 256, 256)
    np.testing.assert_allclose(best.scores[:, 0], full.scores[:, 0], atol=1e-6)
    np.testing.assert_allclose(best.low_res_logits[:, 0], full.low_res_logits[:, 0], atol=1e-5)
    threshold = float(np.median(full.scores[:, 0]))
    partial = predictor.predict_batch(coords, labels, multimask_output=False, min_score=threshold)
    wanted = full.scores[:, 0] > threshold
    assert wanted.any() and not wanted.all()
    np.testing.assert_allclose(partial.scores, best.scores, atol=1e-6)
    np.testing.assert_allclose(partial.low_res_logits[wanted], best.low_res_logits[wanted], atol=1e-5)
    assert np.isneginf(partial.low_res_logits[~wanted]).all()


def test_decoder_follows_weight_changes(tiny_checkpoint) -> None:
    """New weights loaded into the model after a decode take effect on the next decode."""
    predictor = load_predictor("tiny", tiny_checkpoint, "cpu", backend="torch")
    image = np.random.default_rng(5).integers(0, 255, size=(64, 64, 3), dtype=np.uint8)
    predictor.set_image(image)
    _, _, before = predictor.predict(point_coords=[[20, 30]], point_labels=[1])
    state = {
        k: v * 1.5 if "final_output_upscaling" in k else v for k, v in predictor.model.state_dict().items()
    }
    predictor.model.load_state_dict(state)
    _, _, after = predictor.predict(point_coords=[[20, 30]], point_labels=[1])
    with torch.inference_mode():
        points = torch.tensor([[[[20.0, 30.0]]]]) * torch.tensor([1024 / 64, 1024 / 64])
        expected, iou = predictor.model.predict_masks(
            torch.from_numpy(predictor.get_image_embedding()), points, torch.ones(1, 1, 1)
        )
    order = np.argsort(-iou[0, 0].numpy(), kind="stable")
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(after, expected[0, 0].numpy()[order], atol=1e-4)


def test_model_built_in_inference_mode_decodes() -> None:
    """Weights created under ``torch.inference_mode`` (no version counters) are decoded as well."""
    from efficientsam_studio.engine import TorchPredictor
    from efficientsam_studio.model import build_model

    torch.manual_seed(2)
    with torch.inference_mode():
        model = build_model("tiny").eval()
    predictor = TorchPredictor(model, "tiny")
    predictor.set_image(np.zeros((32, 48, 3), np.uint8))
    masks, scores, _ = predictor.predict(point_coords=[[5, 5]], point_labels=[1])
    assert masks.shape == (3, 32, 48) and np.isfinite(scores).all()
