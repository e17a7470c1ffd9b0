"""``backend="torch-bf16"``: bfloat16 encoder and decoder, a cache identity of its own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from efficientsam_studio.engine import load_predictor
from efficientsam_studio.engine.cache import predictor_model_key
from efficientsam_studio.engine.torch_bf16 import bf16_fast_on


@pytest.mark.skipif(not bf16_fast_on(torch.device("cpu")), reason="this CPU has no fast bfloat16")
def test_bf16_encoder_is_close_to_float32_and_keyed_apart(tiny_checkpoint):
    image = np.random.default_rng(0).integers(0, 255, size=(60, 80, 3), dtype=np.uint8)
    fp32 = load_predictor("tiny", tiny_checkpoint, "cpu", backend="torch")
    bf16 = load_predictor("tiny", tiny_checkpoint, "cpu", backend="torch-bf16")
    fp32.set_image(image)
    bf16.set_image(image)
    reference = fp32.get_image_embedding()
    embedding = bf16.get_image_embedding()
    assert embedding.dtype == np.float32 and embedding.shape == (1, 256, 64, 64)
    assert 0 < np.abs(embedding - reference).max() < 0.05 * np.abs(reference).max()
    assert predictor_model_key(bf16).endswith(":bf16")
    assert predictor_model_key(bf16).rsplit(":", 1)[0] == predictor_model_key(fp32).rsplit(":", 1)[0]
    masks, scores, logits = bf16.predict(point_coords=[[40, 30]], point_labels=[1])
    assert masks.shape == (3, 60, 80) and logits.dtype == np.float32
