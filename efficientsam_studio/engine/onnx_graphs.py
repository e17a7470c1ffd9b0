"""The modules that ``onnx_export`` traces: encoder, decoder context and decoder graphs.

Their inputs and outputs are the graph contracts described in ``onnx_export``. The encoder's attention
is a custom op (``efsam_export::multi_head_attention``) that exports to one fused
``com.microsoft.MultiHeadAttention`` node per block; the decoder graphs compute
:class:`~efficientsam_studio.model.fast_decoder.FastMaskDecoder`.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from efficientsam_studio.model import PIXEL_MEAN, PIXEL_STD, EfficientSam, resize_pos_embed
from efficientsam_studio.model.fast_decoder import FastMaskDecoder, ImageContext
from efficientsam_studio.model.padding_tokens import padding_bias

# -- fused attention as a custom op that exports to com.microsoft.MultiHeadAttention ----------------


@torch.library.custom_op("efsam_export::multi_head_attention", mutates_args=())
def _multi_head_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``q, k, v (B, S, C)`` -> ``(B, S, C)``: softmax(q k^T / sqrt(C / heads)) v per head."""
    b, s, c = q.shape

    def heads(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(b, -1, num_heads, c // num_heads).transpose(1, 2)

    out = torch.nn.functional.scaled_dot_product_attention(heads(q), heads(k), heads(v))
    return out.transpose(1, 2).reshape(b, s, c)


@_multi_head_attention.register_fake
def _(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_heads: int) -> torch.Tensor:
    return torch.empty_like(q)


def _mha_schema():
    """Schema of ONNX Runtime's ``com.microsoft.MultiHeadAttention`` (query, key, value; num_heads).

    The onnx package does not know ONNX Runtime's contrib ops, so the part of the schema used here is
    declared for the exporter.
    """
    from onnx.defs import OpSchema

    param = OpSchema.FormalParameter
    return OpSchema(
        "MultiHeadAttention",
        "com.microsoft",
        1,
        inputs=[param("query", "T"), param("key", "T"), param("value", "T")],
        outputs=[param("output", "T")],
        type_constraints=[("T", ["tensor(float)", "tensor(float16)"], "float tensors")],
        attributes=[OpSchema.Attribute("num_heads", OpSchema.AttrType.INT, "number of heads")],
    )


def onnx_multi_head_attention(q, k, v, num_heads: int):
    import onnxscript

    msft = onnxscript.values.Opset("com.microsoft", 1)
    op = onnxscript.values.Op(msft, "MultiHeadAttention", _mha_schema())
    return op(q, k, v, num_heads=num_heads)


class _FusedAttention(nn.Module):
    """Same maths as ``model.image_encoder.Attention``, with the fused attention custom op."""

    def __init__(self, attention: nn.Module) -> None:
        super().__init__()
        self.qkv = attention.qkv
        self.proj = attention.proj
        self.num_heads = attention.num_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.proj(_multi_head_attention(q, k, v, self.num_heads))


class EncoderGraph(nn.Module):
    """``(B, 3, 1024, 1024)`` RGB 0..255 (bilinearly resized) -> ``(B, 256, 64, 64)``.

    A copy of the model's encoder with the normalisation folded into the patch embedding, the
    positional embedding precomputed, and (``fused_attention``) the fused attention op.
    """

    def __init__(self, model: EfficientSam, fused_attention: bool = True) -> None:
        super().__init__()
        encoder = copy.deepcopy(model.image_encoder).float().eval()
        conv = encoder.patch_embed.proj
        mean = torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(PIXEL_STD).view(1, 3, 1, 1)
        with torch.no_grad():
            # conv((x / 255 - mean) / std) = conv'(x) with w' = w / (255 std), b' = b - sum(w mean / std)
            weight = conv.weight.detach().clone()
            bias = conv.bias.detach().clone() - (weight * (mean / std)).sum(dim=(1, 2, 3))
            conv.weight.copy_(weight / (255.0 * std))
            conv.bias.copy_(bias)
        grid = encoder.image_embedding_size
        self.register_buffer("pos", resize_pos_embed(encoder.pos_embed.detach(), (grid, grid)).clone())
        encoder.pos_embed_for_grid = lambda _grid: self.pos
        if fused_attention:
            for block in encoder.blocks:
                block.attn = _FusedAttention(block.attn)
        self.encoder = encoder

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)


class DecoderGraph(nn.Module):
    """Prompts in original pixels -> the 3 multimask logits ``(Q, 3, 256, 256)`` and IoU ``(Q, 3)``.

    Decodes with :class:`~efficientsam_studio.model.fast_decoder.FastMaskDecoder` (the module's decoder
    rearranged for inference); its per-image preparation runs inside the graph on every call.
    """

    def __init__(self, model: EfficientSam) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).float().eval()
        self.max_points = model.max_num_points
        self.img_size = model.img_size
        with torch.no_grad():
            image_pe = self.model.prompt_encoder.get_dense_pe()
        self.decoder = FastMaskDecoder(self.model.mask_decoder, image_pe, torch.float32)

    def model_prompts(
        self, point_coords: torch.Tensor, point_labels: torch.Tensor, orig_im_size: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Q, N, 2)`` original pixels, ``(Q, N)`` labels, ``(H, W)`` -> ``(Q, 6, 2)`` points in the
        model's input space and ``(Q, 6)`` labels, padded with -1 (or cut to the first 6)."""
        q = point_coords.shape[0]
        # pad to max_points then cut: works for any N without a shape-dependent branch
        pad_coords = torch.full((q, self.max_points, 2), -1.0, dtype=point_coords.dtype)
        pad_labels = torch.full((q, self.max_points), -1.0, dtype=point_labels.dtype)
        coords = torch.cat([point_coords, pad_coords], dim=1)[:, : self.max_points]
        labels = torch.cat([point_labels, pad_labels], dim=1)[:, : self.max_points]
        size = orig_im_size.to(torch.float32)
        scale = torch.stack([self.img_size / size[1], self.img_size / size[0]])
        coords = torch.where(coords >= 0, coords * scale, torch.full_like(coords, -1.0))
        return coords, labels

    def forward(
        self,
        image_embeddings: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        orig_im_size: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        context = self.decoder.prepare(image_embeddings)
        return self.decode_prompts(context, point_coords, point_labels, orig_im_size)

    def decode_prompts(
        self,
        context: ImageContext,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        orig_im_size: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The prompts against a prepared image context -> ``(low_res_logits, iou_predictions)``."""
        # The padding points of a prompt are identical tokens: decoded as one, whose attention logits
        # carry log(number of padding points) (see model/padding_tokens.py). The given points (at most
        # 6) keep their slots, those given as padding (label -1) get -inf; one padding token follows.
        coords, labels = self.model_prompts(point_coords, point_labels, orig_im_size)  # (Q, 6, ...)
        n = point_coords.shape[1]
        q = coords.shape[0]
        pad_coords = torch.full((q, 1, 2), -1.0, dtype=coords.dtype)
        pad_labels = torch.full((q, 1), -1.0, dtype=labels.dtype)
        tokens = self.model.prompt_encoder(
            torch.cat([coords[:, :n], pad_coords], dim=1), torch.cat([labels[:, :n], pad_labels], dim=1)
        )
        bias = padding_bias(labels[:, :n] != -1, (labels == -1).sum(dim=1, keepdim=True))
        return self.decoder.decode(context, tokens, multimask_output=True, prompt_bias=bias)


class ContextGraph(nn.Module):
    """Image embedding -> the decoder's per-image context (format 2's ``<model>_context.onnx``)."""

    def __init__(self, decoder_graph: DecoderGraph) -> None:
        super().__init__()
        self.decoder = decoder_graph.decoder  # not a module: the weights it reads become constants

    def forward(self, image_embeddings: torch.Tensor) -> tuple[torch.Tensor, ...]:
        context = self.decoder.prepare(image_embeddings)
        return context.keys, context.t2i_kt, context.t2i_v, context.i2t_qt


class PromptDecoderGraph(DecoderGraph):
    """The decoder graph of format 2: the image context (``CONTEXT_OUTPUTS``) and prompts in."""

    def forward(  # type: ignore[override]
        self,
        image_tokens: torch.Tensor,
        first_layer_keys: torch.Tensor,
        first_layer_values: torch.Tensor,
        first_layer_queries: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        orig_im_size: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        grid = tuple(self.model.prompt_encoder.image_embedding_size)
        context = ImageContext(image_tokens, first_layer_keys, first_layer_values, first_layer_queries, grid)
        return self.decode_prompts(context, point_coords, point_labels, orig_im_size)


# -- export ------------------------------------------------------------------------------------------
