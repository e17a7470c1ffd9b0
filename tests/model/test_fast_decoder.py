"""The inference decoder (:class:`FastMaskDecoder`) against the module it rearranges."""

from __future__ import annotations

import math

import pytest
import torch

from efficientsam_studio.model.fast_decoder import FastMaskDecoder, merge_padding
from efficientsam_studio.model.padding_tokens import merge_plan, padding_bias
from tests.model.large_logits import tiny_model_with_large_logits


@pytest.fixture(scope="module")
def model():
    """The tiny model with decoder weights scaled up, so logits span several units (as trained ones do)."""
    return tiny_model_with_large_logits(3)


def _prompts() -> tuple[torch.Tensor, torch.Tensor]:
    """Five prompts of up to six points: points, negatives, a box, a box with points, padding."""
    points = torch.tensor(
        [
            [[100.0, 200.0], [-1, -1], [-1, -1]],
            [[500.0, 500.0], [520.0, 610.0], [-1, -1]],
            [[40.0, 60.0], [900.0, 700.0], [-1, -1]],
            [[40.0, 60.0], [900.0, 700.0], [300.0, 300.0]],
            [[1000.0, 10.0], [10.0, 1000.0], [512.0, 512.0]],
        ]
    )
    labels = torch.tensor([[1, -1, -1], [1, 0, -1], [2, 3, -1], [2, 3, 0], [1, 1, 0]])
    return points, labels


def _tokens(model, points: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    padded, padded_labels = model.pad_prompts(points[None], labels[None])
    with torch.inference_mode():
        return model.prompt_encoder(padded[0], padded_labels[0])


@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("count", [1, 5])
def test_float32_equals_the_module(model, multimask: bool, count: int) -> None:
    torch.manual_seed(count)
    embedding = torch.randn(1, 256, 64, 64)
    points, labels = (x[:count] for x in _prompts())
    with torch.inference_mode():
        expected_logits, expected_iou = model.predict_masks(embedding, points[None], labels[None], multimask)
    fast = FastMaskDecoder(model.mask_decoder, model.prompt_encoder.get_dense_pe())
    logits, iou = fast.decode(fast.prepare(embedding), _tokens(model, points, labels), multimask)

    assert logits.shape == expected_logits[0].shape and iou.shape == expected_iou[0].shape
    scale = expected_logits.abs().max().item()
    assert scale > 1.0  # the check below is on logits of real size
    assert (logits - expected_logits[0]).abs().max().item() <= 2e-6 * scale
    # the IoU head runs as batched products with the hypernetworks (sums in another order): a few ulp
    assert (iou - expected_iou[0]).abs().max().item() <= 4e-6 * max(1.0, expected_iou.abs().max().item())


def test_contexts_of_two_images_do_not_mix(model) -> None:
    torch.manual_seed(7)
    first, second = torch.randn(1, 256, 64, 64), torch.randn(1, 256, 64, 64)
    points, labels = _prompts()
    tokens = _tokens(model, points, labels)
    fast = FastMaskDecoder(model.mask_decoder, model.prompt_encoder.get_dense_pe())
    contexts = [fast.prepare(first), fast.prepare(second)]
    for embedding, context in reversed(list(zip((first, second), contexts, strict=True))):
        with torch.inference_mode():
            expected, _ = model.predict_masks(embedding, points[None], labels[None])
        logits, _ = fast.decode(context, tokens)
        assert torch.allclose(logits, expected[0], atol=1e-5 * expected.abs().max().item())


def test_decoding_leaves_the_context_unchanged(model) -> None:
    torch.manual_seed(8)
    fast = FastMaskDecoder(model.mask_decoder, model.prompt_encoder.get_dense_pe())
    context = fast.prepare(torch.randn(1, 256, 64, 64))
    saved = {name: value.clone() for name, value in vars(context).items() if torch.is_tensor(value)}
    tokens = _tokens(model, *_prompts())
    first, _ = fast.decode(context, tokens)
    second, _ = fast.decode(context, tokens)
    assert torch.equal(first, second)
    for name, value in saved.items():
        assert torch.equal(getattr(context, name), value), name


def test_bfloat16_stays_close_to_float32(model) -> None:
    torch.manual_seed(9)
    embedding = torch.randn(1, 256, 64, 64)
    tokens = _tokens(model, *_prompts())
    pe = model.prompt_encoder.get_dense_pe()
    exact = FastMaskDecoder(model.mask_decoder, pe)
    reduced = FastMaskDecoder(model.mask_decoder, pe, torch.bfloat16)
    logits, iou = exact.decode(exact.prepare(embedding), tokens)
    logits_bf16, iou_bf16 = reduced.decode(reduced.prepare(embedding), tokens)
    assert logits_bf16.dtype == torch.float32
    scale = logits.abs().max().item()
    assert (logits_bf16 - logits).abs().max().item() <= 0.05 * scale
    assert (iou_bf16 - iou).abs().max().item() <= 0.05 * max(1.0, iou.abs().max().item())
    assert ((logits_bf16 > 0) == (logits > 0)).float().mean().item() >= 0.98


def test_upscaling_other_than_kernel_two_is_refused(model) -> None:
    import copy

    changed = copy.deepcopy(model.mask_decoder)
    changed.final_output_upscaling_layers[0][0] = torch.nn.ConvTranspose2d(256, 64, kernel_size=4, stride=2)
    with pytest.raises(ValueError, match="kernel-2 stride-2"):
        FastMaskDecoder(changed, model.prompt_encoder.get_dense_pe())


def test_merged_padding_gives_the_same_outputs(model) -> None:
    """Prompts of 1, 2, 3 and 6 points in one chunk: padding decoded as one weighted token."""
    torch.manual_seed(11)
    embedding = torch.randn(1, 256, 64, 64)
    counts = [1, 2, 3, 6]
    points = torch.rand(len(counts), 6, 2) * 1024
    labels = torch.randint(0, 2, (len(counts), 6))
    for row, count in enumerate(counts):
        points[row, count:] = -1.0
        labels[row, count:] = -1
    tokens = _tokens(model, points, labels)
    fast = FastMaskDecoder(model.mask_decoder, model.prompt_encoder.get_dense_pe())
    context = fast.prepare(embedding)
    logits, iou = fast.decode(context, tokens)
    merged_logits, merged_iou = fast.decode(context, tokens[:3], padding=labels[:3] == -1)
    scale = logits.abs().max().item()
    assert (merged_logits - logits[:3]).abs().max().item() <= 2e-6 * scale
    assert (merged_iou - iou[:3]).abs().max().item() <= 2e-6 * max(1.0, iou.abs().max().item())
    # with a 6-point prompt in the chunk nothing is merged, and the outputs are those of the module path
    same_logits, _ = fast.decode(context, tokens, padding=labels == -1)
    assert torch.equal(same_logits, logits)


def test_merge_padding_layout() -> None:
    tokens = torch.arange(3 * 6 * 2, dtype=torch.float32).reshape(3, 6, 2)
    padding = torch.tensor([[0, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1]], dtype=torch.bool)
    merged, bias = merge_padding(tokens, padding)
    assert merged.shape == (3, 4, 2)
    assert torch.equal(merged[:, :3], tokens[:, :3]) and torch.equal(merged[:, 3], tokens[:, 5])
    expected = torch.tensor(
        [
            [0.0, float("-inf"), float("-inf"), math.log(5)],
            [0.0, 0.0, float("-inf"), math.log(4)],
            [0.0, 0.0, 0.0, math.log(3)],
        ]
    )
    assert torch.allclose(bias, expected)
    # the host plan and the graph's rule (padding_bias, traced into the ONNX decoder) give the same biases
    kept, planned = merge_plan(padding.numpy())
    real = torch.arange(kept) < (~padding).sum(1, keepdim=True)
    assert torch.equal(padding_bias(real, padding.sum(1, keepdim=True)), torch.from_numpy(planned))
    # padding that is not trailing, or no saving: left as is
    assert merge_padding(tokens, padding.flip(1))[1] is None
    assert merge_padding(tokens, torch.zeros(3, 6, dtype=torch.bool))[1] is None
    assert merge_padding(tokens, None)[1] is None
