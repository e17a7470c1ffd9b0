"""The host (numpy) point encoding against the prompt encoder module."""

from __future__ import annotations

import numpy as np
import torch

from efficientsam_studio.engine import load_predictor
from efficientsam_studio.engine.point_encoding import HostPointEncoder
from efficientsam_studio.engine.prompts import to_model_space
from efficientsam_studio.model import build_model


def _module_tokens(model, coords: np.ndarray, labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    with torch.inference_mode():
        points = to_model_space(torch.from_numpy(coords), size, model.img_size)
        return model.prompt_encoder(points, torch.from_numpy(labels)).numpy()


def test_host_tokens_equal_the_modules_for_every_label_and_padding() -> None:
    torch.manual_seed(3)
    model = build_model("tiny").eval()
    with torch.no_grad():  # learned embeddings that differ from each other and from zero
        for table in (model.prompt_encoder.point_embeddings, model.prompt_encoder.invalid_points):
            table.weight.normal_()
    rng = np.random.default_rng(0)
    size = (1080, 1920)
    coords = rng.uniform(0, 1920, (8, 6, 2)).astype(np.float32)
    labels = rng.integers(0, 4, (8, 6)).astype(np.float32)
    coords[:, 4:], labels[:, 4:] = -1.0, -1.0  # trailing padding, as the predictors pad
    coords[0, 0] = (0.0, 1079.0)  # the image's corners
    coords[0, 1] = (1919.0, 0.0)
    expected = _module_tokens(model, coords, labels, size)
    tokens = HostPointEncoder(model.prompt_encoder, model.img_size).encode(coords, labels, size)
    assert tokens.dtype == np.float32 and tokens.shape == expected.shape
    np.testing.assert_allclose(tokens, expected, rtol=0, atol=2e-6)
    # each label's embedding is present: a token changes when only its label does
    relabelled = labels.copy()
    relabelled[:, :4] = (relabelled[:, :4] + 1) % 4
    other = HostPointEncoder(model.prompt_encoder, model.img_size).encode(coords, relabelled, size)
    assert (np.abs(other[:, :4] - tokens[:, :4]).max(axis=-1) > 1e-3).all()


def test_predictor_tokens_follow_new_prompt_encoder_weights(tiny_checkpoint) -> None:
    """The host copies are rebuilt when the prompt encoder's weights change in place."""
    predictor = load_predictor("tiny", tiny_checkpoint, "cpu", backend="torch")
    predictor.set_image(np.zeros((64, 96, 3), dtype=np.uint8))
    coords, labels = np.array([[[10.0, 20.0]]], np.float32), np.ones((1, 1), np.float32)
    before, _ = predictor.merged_prompt_tokens(coords, labels)
    with torch.no_grad():  # an optimiser step on the prompt encoder alone
        predictor.model.prompt_encoder.point_embeddings.weight.add_(1.0)
    after, _ = predictor.merged_prompt_tokens(coords, labels)
    np.testing.assert_allclose((after - before)[0, 0].numpy(), 1.0, atol=1e-5)  # the point's token
    np.testing.assert_allclose((after - before)[0, 1].numpy(), 0.0, atol=1e-6)  # the padding's
