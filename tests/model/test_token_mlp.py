"""The bfloat16 token MLP of the inference decoder against the module it copies."""

from __future__ import annotations

import pytest
import torch

from efficientsam_studio.model.common import MLP
from efficientsam_studio.model.fast_decoder import FastMaskDecoder
from efficientsam_studio.model.token_mlp import TransposedTokenMLP
from tests.model.large_logits import tiny_model_with_large_logits


@pytest.mark.parametrize("shape", [(1, 7, 32), (4, 8, 32)])
def test_matches_the_module_to_bfloat16_rounding(shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    mlp = MLP(32, 256, 32, num_layers=1, activation=torch.nn.GELU).eval()
    with torch.no_grad():  # weights and biases of a trained size: outputs of a few units
        for param in mlp.parameters():
            param.mul_(4.0)
        mlp.layers[0][0].bias.normal_(0.0, 1.0)
        mlp.fc.bias.normal_(0.0, 2.0)
    tokens = torch.randn(*shape)
    fast = TransposedTokenMLP.from_mlp(mlp, torch.bfloat16)
    assert fast is not None
    with torch.inference_mode():
        expected = mlp(tokens)
        out = fast(tokens)
    assert out.dtype == torch.float32 and out.shape == expected.shape
    scale = expected.abs().max().item()
    assert scale > 1.0
    error = (out - expected).abs().max().item()
    assert error <= 0.01 * scale  # bfloat16 weights and inputs: about 3 significant digits
    assert error > 0.0  # the bfloat16 path really ran (float32 would agree to 1e-6)


def test_other_mlps_keep_the_module() -> None:
    assert TransposedTokenMLP.from_mlp(MLP(8, 16, 8, num_layers=2), torch.bfloat16) is None
    tanh = MLP(8, 16, 8, num_layers=1)
    tanh.layers[0][1] = torch.nn.GELU(approximate="tanh")
    assert TransposedTokenMLP.from_mlp(tanh, torch.bfloat16) is None
    assert (
        TransposedTokenMLP.from_mlp(MLP(8, 16, 8, num_layers=1, activation=torch.nn.ReLU), torch.bfloat16)
        is None
    )


def test_only_the_bfloat16_decoder_uses_it() -> None:
    model = tiny_model_with_large_logits(3)
    pe = model.prompt_encoder.get_dense_pe()
    exact = FastMaskDecoder(model.mask_decoder, pe, torch.float32)
    reduced = FastMaskDecoder(model.mask_decoder, pe, torch.bfloat16)
    assert all(mlp is None for mlp in exact._token_mlps)
    assert all(isinstance(mlp, TransposedTokenMLP) for mlp in reduced._token_mlps)
