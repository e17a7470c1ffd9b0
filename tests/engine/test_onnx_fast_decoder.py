"""The exported decoder graph (inference form) against the module's ``predict_masks``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from efficientsam_studio.engine.onnx_export import (  # noqa: E402
    DECODER_INPUTS,
    DecoderGraph,
    _session,
    export_decoder,
)
from tests.model.large_logits import tiny_model_with_large_logits  # noqa: E402

ORIG = torch.tensor([480, 720], dtype=torch.int64)
LOGIT_TOLERANCE = 5e-5
IOU_TOLERANCE = 2e-5
"""Max abs differences relative to the largest abs value. ONNX Runtime's kernels round differently
from torch's: the graph of the module form is off by about 1.4e-5 of the logit scale too, the IoU by
about 3e-6. A wrong term in the rearranged decoder moves them by far more."""


@pytest.fixture(scope="module")
def model():
    """The tiny model with decoder weights scaled up, so logits span several units (as trained ones do)."""
    return tiny_model_with_large_logits(5)


@pytest.fixture(scope="module")
def embedding() -> torch.Tensor:
    return torch.randn(1, 256, 64, 64, generator=torch.Generator().manual_seed(7))


@pytest.fixture(scope="module")
def session(model, embedding, tmp_path_factory: pytest.TempPathFactory):
    """The decoder graph exported with a two-prompt, two-point example (Q and N dynamic)."""
    path = Path(tmp_path_factory.mktemp("decoder")) / "decoder.onnx"
    example = (embedding, torch.tensor([[[10.0, 20.0], [600.0, 400.0]]] * 2), torch.ones(2, 2), ORIG)
    export_decoder(DecoderGraph(model), example, path)
    return _session(path)


CASES = {
    "1 point": ([[[300.0, 200.0]]], [[1]]),
    "1 box+negative": ([[[40.0, 60.0], [500.0, 410.0], [300.0, 300.0]]], [[2, 3, 0]]),
    "5 mixed": (
        [
            [[100.0, 200.0], [-1, -1], [-1, -1]],
            [[500.0, 300.0], [520.0, 410.0], [-1, -1]],
            [[40.0, 60.0], [700.0, 470.0], [-1, -1]],
            [[40.0, 60.0], [700.0, 470.0], [300.0, 300.0]],
            [[710.0, 10.0], [10.0, 470.0], [360.0, 240.0]],
        ],
        [[1, -1, -1], [1, 0, -1], [2, 3, -1], [2, 3, 0], [1, 1, 0]],
    ),
    "5 of 8 points (cut to 6)": (
        np.random.default_rng(1).uniform(0, 470, (5, 8, 2)).tolist(),
        np.random.default_rng(2).integers(0, 2, (5, 8)).tolist(),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_exported_decoder_matches_module(model, embedding, session, case):
    coords = torch.tensor(CASES[case][0], dtype=torch.float32)
    labels = torch.tensor(CASES[case][1], dtype=torch.float32)
    feeds = dict(
        zip(DECODER_INPUTS, (embedding.numpy(), coords.numpy(), labels.numpy(), ORIG.numpy()), strict=True)
    )
    logits, iou = session.run(None, feeds)

    # the reference: the module's decoder on the same prompts mapped to the 1024 input space by hand
    scale = torch.tensor([1024 / 720, 1024 / 480])
    model_coords = torch.where(coords >= 0, coords * scale, -1.0)[:, :6]
    with torch.no_grad():
        expected, expected_iou = model.predict_masks(embedding, model_coords[None], labels[None, :, :6])
    expected, expected_iou = expected[0].numpy(), expected_iou[0].numpy()
    assert logits.shape == (len(coords), 3, 256, 256) and iou.shape == (len(coords), 3)
    assert np.abs(expected).max() > 2.0  # logits on the scale of a trained model's
    assert np.abs(logits - expected).max() < LOGIT_TOLERANCE * np.abs(expected).max()
    assert np.abs(iou - expected_iou).max() < IOU_TOLERANCE * np.abs(expected_iou).max()
