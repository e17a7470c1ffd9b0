"""Shapes and behaviour of the EfficientSAM modules, on the tiny configuration."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from efficientsam_studio.model import Block, ImageEncoderViT, build_model, load_model, resize_pos_embed
from efficientsam_studio.model.transformer import DecoderAttention


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(1)
    return build_model("tiny").eval()


def test_forward_returns_three_candidates_per_prompt(tiny) -> None:
    images = torch.randn(2, 3, 1024, 1024)
    points = torch.tensor([[[[100.0, 200.0]], [[500.0, 500.0]]]] * 2)  # (B=2, Q=2, N=1, 2)
    labels = torch.ones(2, 2, 1)
    with torch.inference_mode():
        logits, iou = tiny(images, points, labels)
        single_logits, single_iou = tiny(images, points, labels, multimask_output=False)
    assert logits.shape == (2, 2, 3, 256, 256)
    assert iou.shape == (2, 2, 3)
    assert single_logits.shape == (2, 2, 1, 256, 256)
    assert single_iou.shape == (2, 2, 1)


def test_explicit_padding_equals_implicit_padding(tiny) -> None:
    embedding = torch.randn(1, 256, 64, 64)
    points = torch.tensor([[[[300.0, 400.0], [10.0, 20.0]]]])
    labels = torch.tensor([[[1.0, 0.0]]])
    padded_points = F.pad(points, (0, 0, 0, 4), value=-1.0)
    padded_labels = F.pad(labels, (0, 4), value=-1.0)
    with torch.inference_mode():
        a = tiny.predict_masks(embedding, points, labels)
        b = tiny.predict_masks(embedding, padded_points, padded_labels)
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])


def test_more_than_six_points_is_refused_by_the_model(tiny) -> None:
    with pytest.raises(ValueError, match="at most 6 points"):
        tiny.predict_masks(torch.randn(1, 256, 64, 64), torch.zeros(1, 1, 7, 2), torch.ones(1, 1, 7))


def test_negative_label_adds_no_learned_embedding(tiny) -> None:
    coords = torch.tensor([[[100.0, 50.0]]])
    encoder = tiny.prompt_encoder
    with torch.no_grad():
        negative = encoder(coords, torch.tensor([[0.0]]))
        positive = encoder(coords, torch.tensor([[1.0]]))
        positional = encoder.pe_layer.forward_with_coords(coords + 0.5, (1024, 1024))
    torch.testing.assert_close(negative, positional)
    torch.testing.assert_close(positive, positional + encoder.point_embeddings.weight)


def test_sdpa_attention_equals_explicit_softmax_attention() -> None:
    torch.manual_seed(0)
    attention = DecoderAttention(32, num_heads=4, downsample_rate=2)
    q, k = torch.randn(2, 5, 32), torch.randn(2, 9, 32)
    with torch.no_grad():
        out = attention(q, k, k)
        heads = lambda x: x.reshape(2, -1, 4, 4).transpose(1, 2)  # noqa: E731
        qh, kh, vh = heads(attention.q_proj(q)), heads(attention.k_proj(k)), heads(attention.v_proj(k))
        weights = torch.softmax(qh @ kh.transpose(-2, -1) / math.sqrt(4), dim=-1)
        expected = attention.out_proj((weights @ vh).transpose(1, 2).reshape(2, 5, 16))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_encoder_at_224_gives_a_14x14_grid_without_resizing() -> None:
    encoder = ImageEncoderViT(embed_dim=64, depth=1, num_heads=1).eval()
    with torch.no_grad():
        tokens = encoder.forward_tokens(torch.randn(2, 3, 224, 224))
        pos = encoder.pos_embed_for_grid((14, 14))
        embedding = encoder(torch.randn(1, 3, 224, 224))
    assert tokens.shape == (2, 14, 14, 64)
    assert embedding.shape == (1, 256, 14, 14)
    torch.testing.assert_close(pos, encoder.pos_embed[:, 1:].reshape(1, 14, 14, 64))


def test_pos_embed_is_resized_bicubically_to_the_token_grid() -> None:
    pos = torch.randn(1, 197, 8)
    resized = resize_pos_embed(pos, (64, 64))
    grid = pos[:, 1:].reshape(1, 14, 14, 8).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(64, 64), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    torch.testing.assert_close(resized, expected)


def test_cached_pos_embed_follows_weight_changes() -> None:
    encoder = ImageEncoderViT(embed_dim=16, depth=1, num_heads=1).eval()
    with torch.inference_mode():
        first = encoder.pos_embed_for_grid((64, 64)).clone()
        cached = encoder.pos_embed_for_grid((64, 64))
        assert cached.data_ptr() == encoder.pos_embed_for_grid((64, 64)).data_ptr()
    encoder.load_state_dict({**encoder.state_dict(), "pos_embed": torch.randn(1, 197, 16)})
    with torch.inference_mode():
        second = encoder.pos_embed_for_grid((64, 64))
    assert not torch.allclose(first, second)
    torch.testing.assert_close(second, resize_pos_embed(encoder.pos_embed.detach(), (64, 64)))


def test_training_reaches_pos_embed_and_blocks() -> None:
    encoder = ImageEncoderViT(embed_dim=16, depth=1, num_heads=2).train()
    with torch.no_grad():
        encoder.pos_embed_for_grid((4, 4))  # fill the inference cache first
    encoder(torch.randn(1, 3, 64, 64)).square().mean().backward()
    assert encoder.pos_embed.grad is not None and encoder.pos_embed.grad.abs().sum() > 0
    assert encoder.blocks[0].attn.qkv.weight.grad is not None


def test_block_keeps_token_shape() -> None:
    block = Block(24, num_heads=3)
    assert block(torch.randn(2, 10, 24)).shape == (2, 10, 24)
    assert block.mlp.fc1.out_features == 96


def test_input_not_a_multiple_of_the_patch_is_refused() -> None:
    encoder = ImageEncoderViT(embed_dim=16, depth=1, num_heads=1)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        encoder.forward_tokens(torch.randn(1, 3, 100, 96))


def test_load_model_is_strict_and_in_eval_mode(tiny_checkpoint) -> None:
    model = load_model("tiny", tiny_checkpoint, "cpu")
    assert not model.training
    saved = torch.load(tiny_checkpoint, weights_only=True)["model"]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, saved[key])


def test_layernorm2d_normalises_each_pixel_over_channels() -> None:
    from efficientsam_studio.model.common import LayerNorm2d

    torch.manual_seed(0)
    norm = LayerNorm2d(8)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
        x = torch.randn(2, 8, 5, 6) * 3 + 1
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        expected = norm.weight[:, None, None] * (x - mean) / torch.sqrt(var + 1e-6) + norm.bias[:, None, None]
        torch.testing.assert_close(norm(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("multimask", [True, False])
def test_prompts_sharing_one_embedding_equal_prompts_with_their_own_copy(tiny, multimask) -> None:
    torch.manual_seed(3)
    embedding = torch.randn(1, 256, 64, 64)
    points = torch.rand(1, 5, 3, 2) * 1024
    labels = torch.tensor([[[1, 0, -1], [2, 3, -1], [1, 1, 1], [0, 1, -1], [2, 3, 1]]]).float()
    with torch.no_grad():
        shared_logits, shared_iou = tiny.predict_masks(embedding, points, labels, multimask)  # (1, 5, ...)
        own_logits, own_iou = tiny.predict_masks(  # (5, 1, ...): every prompt with its own embedding
            embedding.expand(5, -1, -1, -1).contiguous(), points[0][:, None], labels[0][:, None], multimask
        )
    assert shared_logits.shape == (1, 5, 3 if multimask else 1, 256, 256)
    torch.testing.assert_close(shared_logits[0], own_logits[:, 0], atol=1e-5, rtol=0)
    torch.testing.assert_close(shared_iou[0], own_iou[:, 0], atol=1e-5, rtol=0)


def test_attention_broadcasts_batch_one_inputs() -> None:
    torch.manual_seed(0)
    attention = DecoderAttention(32, num_heads=4, downsample_rate=2)
    queries, image = torch.randn(3, 5, 32), torch.randn(1, 40, 32)
    with torch.no_grad():
        shared = attention(queries, image, image)
        copied = attention(queries, image.expand(3, -1, -1), image.expand(3, -1, -1))
        image_queries = attention(image, queries, queries)
    assert shared.shape == (3, 5, 32) and image_queries.shape == (3, 40, 32)
    torch.testing.assert_close(shared, copied, atol=1e-6, rtol=0)
    torch.testing.assert_close(image_queries, attention(image.expand(3, -1, -1), queries, queries))
