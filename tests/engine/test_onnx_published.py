"""The ONNX backend runs files with the published ONNX pair's interface (names, shapes, semantics).

The published files cannot be downloaded in tests, so a pair with their interface is exported from the
tiny model: encoder ``batched_images (B, 3, H, W)`` in [0, 1] with resize and normalisation inside;
decoder ``image_embeddings``, ``batched_point_coords (1, 1, N, 2)``, ``batched_point_labels (1, 1, N)``,
``orig_im_size``, scaling points to 1024-space and padding to 6 inside, outputs (masks, IoU, low-res
logits) by position. The backend must recognise the kind and reproduce the torch predictor.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from efficientsam_studio.engine import load_predictor  # noqa: E402
from efficientsam_studio.engine.onnx_backend import OnnxPredictor  # noqa: E402


class _PublishedEncoder(torch.nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, batched_images):
        from efficientsam_studio.engine.preprocess import normalize

        resized = torch.nn.functional.interpolate(batched_images, (1024, 1024), mode="bilinear")
        return self.model.get_image_embeddings(normalize(resized))


class _PublishedDecoder(torch.nn.Module):
    """Outputs (masks, IoU, low-res logits); the backend reads only the last two, so the first one is
    left at 256x256 here (the published graph upsamples it to (H, W) bilinearly)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, image_embeddings, batched_point_coords, batched_point_labels, orig_im_size):
        size = orig_im_size.to(torch.float32)
        scaled = torch.stack(
            [batched_point_coords[..., 0] * 1024 / size[1], batched_point_coords[..., 1] * 1024 / size[0]], -1
        )
        logits, iou = self.model.predict_masks(image_embeddings, scaled, batched_point_labels, True)
        return logits, iou, logits[0]


@pytest.fixture(scope="module")
def published_style_pair(tiny_checkpoint: Path, tmp_path_factory) -> tuple[Path, Path]:
    from efficientsam_studio.model import load_model

    model = load_model("tiny", tiny_checkpoint)
    out = tmp_path_factory.mktemp("published_style")
    encoder, decoder = out / "efficient_sam_tiny_encoder.onnx", out / "efficient_sam_tiny_decoder.onnx"
    points, labels = torch.tensor([[[[10.0, 20.0], [30.0, 40.0]]]]), torch.tensor([[[1.0, 0.0]]])
    height, width, n = (
        torch.export.Dim("height", min=16),
        torch.export.Dim("width", min=16),
        torch.export.Dim("n"),
    )
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _PublishedEncoder(model), (torch.rand(1, 3, 90, 140),), str(encoder), dynamo=True,
            input_names=["batched_images"], output_names=["image_embeddings"],
            dynamic_shapes=({2: height, 3: width},),
        ).save(str(encoder))  # fmt: skip
        torch.onnx.export(
            _PublishedDecoder(model), (torch.zeros(1, 256, 64, 64), points, labels, torch.tensor([90, 140])),
            str(decoder), dynamo=True,
            input_names=["image_embeddings", "batched_point_coords", "batched_point_labels", "orig_im_size"],
            output_names=["output_masks", "iou_predictions", "low_res_masks"],
            dynamic_shapes=(None, {2: n}, {2: n}, None),
        ).save(str(decoder))  # fmt: skip
    return encoder, decoder


def test_published_interface_is_recognised_and_matches_torch(published_style_pair, tiny_checkpoint):
    image = np.random.default_rng(1).integers(0, 255, size=(90, 140, 3), dtype=np.uint8)
    onnx = OnnxPredictor(*published_style_pair, model_name="tiny", device="cpu")
    assert onnx.kind == "published" and "published-onnx" in onnx.model_key
    reference = load_predictor("tiny", tiny_checkpoint, "cpu", backend="torch")
    reference.set_image(image)
    onnx.set_image(image)
    assert np.abs(onnx.get_image_embedding() - reference.get_image_embedding()).max() < 1e-4
    prompts = [
        {"point_coords": [[70, 45]], "point_labels": [1]},
        {"point_coords": [[70, 45], [10, 80]], "point_labels": [1, 0]},
        {"box": [35, 25, 95, 65]},
    ]
    for prompt in prompts:
        masks, scores, logits = onnx.predict(**prompt)
        ref_masks, ref_scores, ref_logits = reference.predict(**prompt)
        assert np.abs(scores - ref_scores).max() < 1e-4
        assert np.abs(logits - ref_logits).max() < 1e-3
        assert (masks == ref_masks).mean() > 0.999
    batch = onnx.predict_batch(boxes=[[35, 25, 95, 65], [0, 0, 60, 50]])
    assert batch.masks.shape == (2, 3, 90, 140)


def test_published_pair_is_found_by_its_published_names(published_style_pair, tmp_path):
    encoder, decoder = published_style_pair
    for source in (encoder, decoder):
        (tmp_path / source.name.replace("tiny", "vitt")).write_bytes(source.read_bytes())
    predictor = load_predictor("vit_t", tmp_path, "cpu", backend="onnx")
    assert predictor.kind == "published" and predictor.model_name == "vit_t"
