"""The ONNX export of the reference vit_t checkpoint reproduces the published implementation's cases.

Exporting vit_t takes about a minute on two cores, so every case runs in this one test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from efficientsam_studio.annotations.images import load_image  # noqa: E402
from efficientsam_studio.engine import load_predictor  # noqa: E402

TOLERANCE = 1e-3
MIN_MASK_AGREEMENT = 0.995


@pytest.mark.slow
def test_onnx_export_reproduces_reference_cases(reference_dir: Path, tmp_path: Path) -> None:
    from efficientsam_studio.engine.onnx_export import export_onnx
    from efficientsam_studio.model import load_model

    model = load_model("vit_t", reference_dir / "efficientsam_vitt_random_seed1.pt")
    report = export_onnx(model, "vit_t", tmp_path)
    assert report.encoder_max_abs_diff <= TOLERANCE and report.logits_max_abs_diff <= TOLERANCE
    del model
    predictor = load_predictor("vit_t", tmp_path, "cpu", backend="onnx")
    assert predictor.backend == "onnx"

    current = None
    for index, case in enumerate(json.loads((reference_dir / "cases.json").read_text())):
        image = load_image(reference_dir / "images" / case["image"])
        if case["image"] != current:
            predictor.set_image(image)
            current = case["image"]
            expected = np.load(
                reference_dir / "expected" / case["image"].replace(".png", ".vit_t.embedding.npy")
            )
            assert np.abs(predictor.get_image_embedding() - expected).max() <= TOLERANCE, case["image"]
        masks, scores, logits = predictor.predict(
            point_coords=np.array(case["points"]) if "points" in case else None,
            point_labels=np.array(case["labels"]) if "labels" in case else None,
            box=np.array(case["box"]) if "box" in case else None,
        )
        stem = reference_dir / "expected" / f"case{index:02d}.vit_t"
        expected_iou = np.load(f"{stem}.iou.npy")
        order = np.argsort(-expected_iou, kind="stable")
        expected_logits = np.load(f"{stem}.low_res_logits.npy")[order]
        w = image.shape[1]
        expected_masks = np.unpackbits(np.load(f"{stem}.masks.npy"), axis=-1)[..., :w].astype(bool)[order]
        assert np.abs(scores - expected_iou[order]).max() <= TOLERANCE, index
        assert np.abs(logits - expected_logits).max() <= TOLERANCE, index
        assert (masks == expected_masks).mean(axis=(1, 2)).min() >= MIN_MASK_AGREEMENT, index
