"""Inference-only mask decoder: the same function as :class:`MaskDecoder`, rearranged for speed.

The module form runs every projection of the two-way transformer over the 4,096 image tokens of every
prompt. This form computes the same result with less work and less memory traffic:

- the image-only work of the first layer (the token-to-image keys and values, the image-to-token
  queries) runs once per image (:meth:`FastMaskDecoder.prepare`), not once per prompt;
- projections are folded into the few prompt tokens instead of the 4,096 image tokens. In a
  token-to-image attention the key projection moves to the queries (``q Wk (x + pe)^T``; the key bias
  shifts each row of logits by a constant, which the softmax ignores) and the value projection is applied
  after the attention (rows of the softmax sum to one, so the value bias passes through). In an
  image-to-token attention the query projection moves into the keys (``(x + pe) Wq^T k^T``) and the
  output projection into the values, so the image update is one product of the attention weights
  ``(4096, heads x tokens)`` with ``(heads x tokens, 256)`` rows, added to the residual in the same call;
- ``(x + pe) A``: in float32 ``x + pe`` is summed once per layer and shared by its two attentions; in
  bfloat16 it is ``x A`` plus a positional term taken before the fold: the attention's key (or query)
  projection of the positional encoding is fixed by the weights, so it is stored once per model,
  ``(heads, d, hw)``, and the term is a product with the ``d`` = 16 unfolded columns of each head
  instead of the 256 folded ones (no per-prompt ``x + pe`` is stored; in float32 the sum measured
  faster for chunks of several prompts);
- attention logits are laid out ``(heads, tokens, pixels)``, so softmaxes run along contiguous rows;
- the prediction heads and the mask upscaling are rearranged too (``fast_outputs.py``);
- per-prompt image-sized results are updated in place where the input is no longer needed;
- the padding points of a prompt (EfficientSAM pads every prompt to 6 points) are identical tokens, and
  identical tokens stay identical through every layer; given which points are padding
  (:meth:`FastMaskDecoder.decode`'s ``padding``, see ``padding_tokens.py``; the ONNX graph passes the
  merged tokens' biases as ``prompt_bias``), they are decoded as one token whose attention logits,
  wherever tokens are attended to, carry ``log(count)``: a softmax over ``k`` equal entries equals one
  entry with ``log k`` added. A single point then costs 7 tokens instead of 11.

The public methods run under ``torch.inference_mode`` in eager mode and are traced as they are by
``torch.export`` (the ONNX decoder graph of ``engine.onnx_export``). While exporting
(``torch.compiler.is_exporting()``) a few steps take a form that traces for any number of prompts and
suits ONNX Runtime, with the same results to rounding: ``(x + pe) A`` is one sum and one product (ONNX
Runtime computes the sum once for the two attentions of a layer); the image-to-token attention weights
are laid out ``(prompts, pixels, heads x tokens)``, so its softmax runs on the last axis and the update
needs no transpose; the residual sum before ``norm4`` is not fused with it (ONNX Runtime's fused kernel
is the slower there).

In float32 the outputs agree with :class:`MaskDecoder` to rounding (see
``tests/model/test_fast_decoder.py``). ``dtype=torch.bfloat16`` runs the image-sized products in
bfloat16 (AMX on recent Intel CPUs, tensor cores on GPUs), and the token MLPs with bfloat16 weights
(``token_mlp.py``); the prompt tokens stay in float32 between the steps, and softmaxes and normalisation
statistics are computed in float32 (from bfloat16 logits and image tokens).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .fast_outputs import MaskOutputs, output_rows
from .inference_tracing import inference, is_exporting
from .mask_decoder import MaskDecoder
from .padding_tokens import merge_padding
from .token_mlp import TransposedTokenMLP
from .transformer import DecoderAttention, TwoWayAttentionBlock

__all__ = ["FastMaskDecoder", "ImageContext", "merge_padding"]


@dataclass
class ImageContext:
    """Per-image state of :class:`FastMaskDecoder`.

    ``keys (hw, D)`` the image tokens (in the decoder's dtype); ``t2i_kt (H, d, hw)`` the first
    token-to-image attention's keys, transposed and scaled, ``t2i_v (H, hw, d)`` its values (float32);
    ``i2t_qt (H, d, hw)`` the first image-to-token attention's queries, transposed and scaled;
    ``size`` the ``(h, w)`` of the embedding grid.
    """

    keys: torch.Tensor
    t2i_kt: torch.Tensor
    t2i_v: torch.Tensor
    i2t_qt: torch.Tensor
    size: tuple[int, int]


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``(..., n, heads * d) -> (..., heads, n, d)``."""
    *lead, n, c = x.shape
    return x.reshape(*lead, n, heads, c // heads).transpose(-3, -2)


def _scale(attn: DecoderAttention) -> float:
    return 1.0 / math.sqrt(attn.internal_dim // attn.num_heads)


def _merged_projections(attn: DecoderAttention) -> tuple[torch.Tensor, torch.Tensor]:
    """The q, k and v projections of an attention as one ``(3 C, D)`` weight and ``(3 C,)`` bias."""
    projections = (attn.q_proj, attn.k_proj, attn.v_proj)
    weight = torch.cat([proj.weight.detach() for proj in projections])
    return weight, torch.cat([proj.bias.detach() for proj in projections])


def _scaled_projection(attn: DecoderAttention, proj: torch.nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """One of ``attn``'s projections with its logit scale ``1 / sqrt(d)`` folded in: weight, bias."""
    scale = _scale(attn)
    return proj.weight.detach() * scale, proj.bias.detach() * scale


def _fold_query_projection(
    scaled: tuple[torch.Tensor, torch.Tensor], k: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """An image-to-token attention's (scaled) query projection moved onto the token keys ``k (M, H, T, d)``.

    Returns ``folded (M, H*T, D)`` and ``bias (M, H, T, 1)``, so that the logits of image tokens
    ``x (hw, D)`` are ``x folded^T + bias``.
    """
    m, heads, t, head_dim = k.shape
    weight, bias = scaled
    folded = (k @ weight.reshape(heads, head_dim, -1)).reshape(m, heads * t, -1)
    return folded, k @ bias.reshape(heads, head_dim, 1)


class FastMaskDecoder:
    """Decodes prompt tokens against one image with the weights of a :class:`MaskDecoder`.

    Args:
        decoder: the trained module. The upscaling weights and the positional encoding are copied
            here, so build a new instance after changing the weights.
        image_pe: ``(1, D, h, w)`` dense positional encoding of the prompt encoder.
        dtype: ``torch.float32`` (exact to rounding) or ``torch.bfloat16`` (image-sized products).
    """

    def __init__(
        self, decoder: MaskDecoder, image_pe: torch.Tensor, dtype: torch.dtype = torch.float32
    ) -> None:
        self.decoder = decoder
        self.dtype = dtype
        self.layers: list[TwoWayAttentionBlock] = list(decoder.transformer.layers)
        self.final_attn: DecoderAttention = decoder.transformer.final_attn_token_to_image
        self.num_mask_tokens = decoder.num_mask_tokens
        pe = image_pe.detach().float().flatten(2)[0]  # (D, hw)
        self.pe = pe.transpose(0, 1).contiguous()  # (hw, D) float32
        self.pe_t = pe.contiguous()  # (D, hw), for the products taken on the embedding's own layout
        # bfloat16: the positional terms of the per-prompt attentions come from their key (token-to-image)
        # or query (image-to-token) projections of pe, computed once per model
        self._pe_proj: dict[torch.nn.Linear, torch.Tensor] = {}
        if dtype != torch.float32:
            for layer in self.layers[1:]:
                t2i, i2t = layer.cross_attn_token_to_image, layer.cross_attn_image_to_token
                self._add_pe_projection(t2i, t2i.k_proj)
                self._add_pe_projection(i2t, i2t.q_proj)
            self._add_pe_projection(self.final_attn, self.final_attn.k_proj)
        self.outputs = MaskOutputs(decoder, dtype)
        # the three projections of a token self-attention read the same tokens: one product
        self._self_qkv = [_merged_projections(layer.self_attn) for layer in self.layers]
        # bfloat16: the token MLPs with bfloat16 weights, tokens as columns (see token_mlp.py)
        self._token_mlps: list[TransposedTokenMLP | None] = [
            TransposedTokenMLP.from_mlp(layer.mlp, dtype) if dtype != torch.float32 else None
            for layer in self.layers
        ]
        # query projections with the logit scale folded in, for the attentions that project per prompt
        per_prompt = [self.final_attn]
        for layer in self.layers[1:]:
            per_prompt += [layer.cross_attn_token_to_image, layer.cross_attn_image_to_token]
        self._scaled_q = {attn: _scaled_projection(attn, attn.q_proj) for attn in per_prompt}
        self._output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight]).detach()
        # the first layer's token-to-image key and image-to-token query projections of x + pe, scaled,
        # as one (2 C, D) weight and (2 C, 1) bias
        first = self.layers[0]
        t2i, i2t = first.cross_attn_token_to_image, first.cross_attn_image_to_token
        (wk, bk), (wq, bq) = _scaled_projection(t2i, t2i.k_proj), _scaled_projection(i2t, i2t.q_proj)
        self._first_kq = (torch.cat([wk, wq]), torch.cat([bk, bq])[:, None])

    def _add_pe_projection(self, attn: DecoderAttention, proj: torch.nn.Linear) -> None:
        """Stores ``(H, d, hw)``: ``proj``'s weight (without bias) applied to the positional encoding, per
        head; a query projection's also carries the attention's scale (token keys come unscaled)."""
        heads = attn.num_heads
        weight = proj.weight.detach().float().reshape(heads, attn.internal_dim // heads, -1)  # (H, d, D)
        scale = _scale(attn) if proj is attn.q_proj else 1.0
        self._pe_proj[proj] = ((weight @ self.pe_t) * scale).to(self.dtype).contiguous()

    def to(self, device: torch.device | str) -> FastMaskDecoder:
        """Moves the copied tensors to ``device`` (the module itself is moved by its owner)."""
        self.pe = self.pe.to(device)
        self.pe_t = self.pe_t.to(device)
        self._first_kq = tuple(t.to(device) for t in self._first_kq)
        self._pe_proj = {proj: t.to(device) for proj, t in self._pe_proj.items()}
        self.outputs.to(device)
        self._self_qkv = [(w.to(device), b.to(device)) for w, b in self._self_qkv]
        self._token_mlps = [None if mlp is None else mlp.to(device) for mlp in self._token_mlps]
        self._scaled_q = {attn: (w.to(device), b.to(device)) for attn, (w, b) in self._scaled_q.items()}
        self._output_tokens = self._output_tokens.to(device)
        return self

    @inference
    def prepare(self, embedding: torch.Tensor) -> ImageContext:
        """``(1, D, h, w)`` image embedding -> the per-image context used by :meth:`decode`.

        The first layer's image projections are taken on the embedding's own ``(D, hw)`` layout,
        ``W x``, so the per-head ``(H, d, hw)`` results need no transpose; the token-to-image keys and
        the image-to-token queries (both of ``x + pe``) are one product."""
        _, d, h, w = embedding.shape
        channels = embedding.detach().reshape(d, h * w).float()  # (D, hw)
        weight, bias = self._first_kq
        kq = torch.addmm(bias, weight, channels + self.pe_t)  # (2 C, hw), scaled
        t2i = self.layers[0].cross_attn_token_to_image
        heads = t2i.num_heads
        head_dim = t2i.internal_dim // heads
        t2i_kt, i2t_qt = kq.reshape(2, heads, head_dim, h * w).unbind(0)
        values = torch.addmm(t2i.v_proj.bias.detach()[:, None], t2i.v_proj.weight.detach(), channels)
        return ImageContext(
            keys=channels.t().to(self.dtype).contiguous(),
            t2i_kt=t2i_kt,
            t2i_v=values.reshape(heads, head_dim, h * w).transpose(1, 2).contiguous(),
            i2t_qt=i2t_qt.to(self.dtype).contiguous(),
            size=(h, w),
        )

    # -- attention on the image tokens --------------------------------------------------------------

    def _image_logits(
        self,
        folded: torch.Tensor,
        small: torch.Tensor,
        proj: torch.nn.Linear,
        keys: torch.Tensor,
        keys_pe: torch.Tensor | None,
        row_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attention logits ``folded (keys + pe)^T (+ row_bias)`` as ``(M, H*T, hw)`` in the decoder's dtype.

        ``folded (M, H*T, D)``: the projection ``proj`` folded into the tokens; ``small (M, H, T, d)``: the
        same tokens before folding, whose product with the stored ``proj pe`` is the positional term
        (``d`` = 16 columns instead of ``D`` = 256). ``keys (M, hw, D)`` per-prompt image tokens;
        ``keys_pe``: ``keys + pe`` where the caller has it (float32 and the graph form), used instead.
        ``row_bias (M, H*T)`` float32: a constant added along each row, or None.

        In bfloat16 the logits stay bfloat16 (rounded once per product, as the products write them) and
        go to the softmax as they are: torch's bfloat16 softmax computes in float32, so converting them
        first would give the same weights for two more passes over the logits.
        """
        if keys_pe is not None:
            logits = torch.bmm(folded, keys_pe.transpose(1, 2))
            return logits if row_bias is None else logits + row_bias[..., None]
        m, heads, t, _ = small.shape
        pe_proj = self._pe_proj[proj]
        small = small.to(self.dtype)
        logits = torch.empty(m, heads * t, pe_proj.shape[-1], dtype=self.dtype, device=keys.device)
        for index in range(m):  # one product per prompt, written in place: (H, T, d) @ (H, d, hw)
            out = logits[index].view(heads, t, -1)
            if row_bias is None:
                torch.bmm(small[index], pe_proj, out=out)
            else:
                bias = row_bias[index].reshape(heads, t, 1).to(self.dtype)
                torch.baddbmm(bias, small[index], pe_proj, out=out)
        return logits.baddbmm_(folded, keys.transpose(1, 2))

    def _token_to_image(
        self, attn: DecoderAttention, queries: torch.Tensor, keys: torch.Tensor, keys_pe: torch.Tensor | None
    ) -> torch.Tensor:
        """Token-to-image attention on per-prompt image tokens ``keys (M, hw, D)`` (``keys_pe``: see
        :meth:`_image_logits`).

        ``queries (M, T, D)`` float32 (positional encoding included) -> ``(M, T, D)`` float32.
        """
        m, t, _ = queries.shape
        heads = attn.num_heads
        head_dim = attn.internal_dim // heads
        q = _heads(F.linear(queries, *self._scaled_q[attn]), heads)  # (M, H, T, d), scaled
        wk = attn.k_proj.weight.reshape(heads, head_dim, -1)  # (H, d, D)
        folded = (q @ wk).reshape(m, heads * t, -1).to(self.dtype)  # (M, H*T, D)
        logits = self._image_logits(folded, q, attn.k_proj, keys, keys_pe)
        weights = torch.softmax(logits, dim=-1).to(self.dtype)
        pooled = torch.bmm(weights, keys).float().reshape(m, heads, t, -1)  # (M, H, T, D)
        wv = attn.v_proj.weight.reshape(heads, head_dim, -1)
        values = pooled @ wv.transpose(1, 2) + attn.v_proj.bias.reshape(heads, 1, head_dim)
        return attn.out_proj(values.transpose(1, 2).reshape(m, t, attn.internal_dim))

    def _shared_token_to_image(
        self, attn: DecoderAttention, ctx: ImageContext, queries: torch.Tensor
    ) -> torch.Tensor:
        """First-layer token-to-image attention against the shared keys and values of ``ctx``."""
        m, t, _ = queries.shape
        heads = attn.num_heads
        q = _heads(attn.q_proj(queries), heads)  # (M, H, T, d)
        q = q.transpose(0, 1).reshape(heads, m * t, -1)  # every prompt's queries of a head in one product
        weights = torch.softmax(torch.bmm(q, ctx.t2i_kt), dim=-1)  # (H, M*T, hw)
        out = torch.bmm(weights, ctx.t2i_v)  # (H, M*T, d)
        out = out.reshape(heads, m, t, -1).permute(1, 2, 0, 3).reshape(m, t, attn.internal_dim)
        return attn.out_proj(out)

    def _image_to_token_update(
        self,
        attn: DecoderAttention,
        norm: torch.nn.LayerNorm,
        keys: torch.Tensor,
        keys_pe: torch.Tensor | None,
        ctx: ImageContext | None,
        tokens_pe: torch.Tensor,
        tokens: torch.Tensor,
        token_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``norm(keys + image_to_token(keys + pe, tokens + pe, tokens))`` -> ``(M, hw, D)``.

        With ``ctx`` (first layer) the image queries are the shared ones of ``ctx`` and ``keys`` is the
        shared ``(hw, D)``; otherwise ``keys (M, hw, D)`` is per prompt and is overwritten.
        """
        m, t, _ = tokens.shape
        heads = attn.num_heads
        head_dim = attn.internal_dim // heads
        k = _heads(attn.k_proj(tokens_pe), heads)  # (M, H, T, d)
        v = _heads(attn.v_proj(tokens), heads)  # (M, H, T, d)
        wo = attn.out_proj.weight.reshape(-1, heads, head_dim).permute(1, 2, 0)  # (H, d, D)
        rows = ((v @ wo).reshape(m, heads * t, -1) + attn.out_proj.bias / heads).to(self.dtype)  # (M, H*T, D)
        if is_exporting():
            weights = self._graph_image_to_token_weights(attn, keys_pe, ctx, k, token_bias)
            update = torch.bmm(weights, rows)
            # the sum in rows of D: ONNX Runtime's fused kernel for a 3-D sum + layer norm
            # (SkipLayerNormalization) is slower here than the two separate kernels
            d = update.shape[-1]
            updated = (keys.reshape(-1, d) + update.reshape(-1, d)) if ctx is None else keys + update
            normed = F.layer_norm(updated, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
            return normed.reshape(m, -1, d)
        # logits laid out (M, H, T, hw): the softmax over the T tokens runs along contiguous rows
        # (in bfloat16 they stay bfloat16, see _image_logits; token biases enter through the products)
        if ctx is not None:
            k_all = k.to(self.dtype).transpose(0, 1).reshape(heads, m * t, head_dim)
            if token_bias is None:
                logits = torch.bmm(k_all, ctx.i2t_qt)
            else:
                logits = torch.baddbmm(token_bias.reshape(1, m * t, 1).to(self.dtype), k_all, ctx.i2t_qt)
            logits = logits.reshape(heads, m, t, -1).transpose(0, 1)
        else:
            folded, bias = _fold_query_projection(self._scaled_q[attn], k)  # bias (M, H, T, 1)
            if token_bias is not None:
                bias = bias + token_bias.reshape(m, 1, t, 1)
            row_bias = bias.reshape(m, heads * t)
            logits = self._image_logits(folded.to(self.dtype), k, attn.q_proj, keys, keys_pe, row_bias)
            logits = logits.reshape(m, heads, t, -1)
        weights = torch.softmax(logits, dim=2).to(self.dtype).reshape(m, heads * t, -1)
        if ctx is not None:
            updated = torch.baddbmm(keys.unsqueeze(0).expand(m, -1, -1), weights.transpose(1, 2), rows)
        else:
            updated = keys.baddbmm_(weights.transpose(1, 2), rows)
        return F.layer_norm(updated, norm.normalized_shape, norm.weight, norm.bias, norm.eps)

    def _graph_image_to_token_weights(
        self,
        attn: DecoderAttention,
        keys_pe: torch.Tensor | None,
        ctx: ImageContext | None,
        k: torch.Tensor,
        token_bias: torch.Tensor | None,
    ) -> torch.Tensor:
        """Image-to-token attention weights laid out ``(M, hw, H*T)``, for the exported graph (float32).

        ``k (M, H, T, d)`` the projected token keys; ``token_bias (M, T)`` or None. ONNX Runtime's
        softmax is fastest on the last axis, and this layout multiplies the ``(M, H*T, D)`` rows without
        a transpose.
        """
        m, heads, t, head_dim = k.shape
        if ctx is not None:
            logits = (k @ ctx.i2t_qt).permute(0, 3, 1, 2)  # (M, H, T, hw) -> (M, hw, H, T)
        else:
            folded, bias = _fold_query_projection(self._scaled_q[attn], k)
            logits = torch.bmm(keys_pe, folded.transpose(1, 2)) + bias.reshape(m, 1, heads * t)
            logits = logits.reshape(m, -1, heads, t)
        if token_bias is not None:
            logits = logits + token_bias.reshape(m, 1, 1, t)
        return torch.softmax(logits, dim=-1).reshape(m, -1, heads * t)

    # -- the decoder ---------------------------------------------------------------------------------

    def _self_attention(self, index: int, queries: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """Token self-attention of layer ``index``; ``bias (M, T)`` is added to the logits of every query
        (token as a key)."""
        attn = self.layers[index].self_attn
        m, t, _ = queries.shape
        heads = attn.num_heads
        qkv = F.linear(queries, *self._self_qkv[index])  # (M, T, 3 C)
        q, k, v = qkv.reshape(m, t, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)  # (M, H, T, d) each
        mask = None if bias is None else bias[:, None, None, :].to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return attn.out_proj(out.transpose(1, 2).reshape(m, t, attn.internal_dim))

    @inference
    def transformer(
        self,
        ctx: ImageContext,
        tokens: torch.Tensor,
        token_bias: torch.Tensor | None = None,
        outputs: list[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``tokens (M, T, D)`` -> ``(queries (M, T, D) float32, image tokens (M, hw, D) in dtype)``.

        ``token_bias (M, T)``: added to the attention logits wherever a token is attended to (see
        :func:`merge_padding`); None for none. ``outputs``: the tokens whose outputs are wanted (the
        queries then hold only these, in this order); the last attention, a token-to-image one, runs
        for them alone, since no token reads another's result there. None for all.
        """
        queries, query_pe = tokens, tokens
        keys, keys_pe = ctx.keys, None
        # x + pe summed once per layer in float32 (and in the graph); bfloat16 takes the positional
        # terms from the stored projections of pe
        sum_pe = self.dtype == torch.float32 or is_exporting()
        for index, layer in enumerate(self.layers):
            if not layer.skip_first_layer_pe:
                queries = queries + query_pe
            queries = layer.norm1(queries + self._self_attention(index, queries, token_bias))
            t2i = layer.cross_attn_token_to_image
            if index == 0:
                attn = self._shared_token_to_image(t2i, ctx, queries + query_pe)
            else:
                attn = self._token_to_image(t2i, queries + query_pe, keys, keys_pe)
            queries = layer.norm2(queries + attn)
            mlp = self._token_mlps[index]
            if mlp is None or is_exporting():
                mlp = layer.mlp
            queries = layer.norm3(queries + mlp(queries))
            keys = self._image_to_token_update(
                layer.cross_attn_image_to_token,
                layer.norm4,
                keys,
                keys_pe,
                ctx if index == 0 else None,
                queries + query_pe,
                queries,
                token_bias,
            )
            keys_pe = keys + self.pe if sum_pe else None
        if outputs is not None:
            queries, query_pe = queries[:, outputs], query_pe[:, outputs]
        attn = self._token_to_image(self.final_attn, queries + query_pe, keys, keys_pe)
        return self.decoder.transformer.norm_final_attn(queries + attn), keys

    @inference
    def decode_tokens(
        self,
        ctx: ImageContext,
        prompt_tokens: torch.Tensor,
        padding: torch.Tensor | None = None,
        prompt_bias: torch.Tensor | None = None,
        mask_ids: list[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Runs the transformer: ``prompt_tokens (M, N, D)`` -> ``(output tokens, image tokens)``.

        ``padding (M, N)`` bool, True for the padding points (trailing): they are decoded as one token
        (:func:`merge_padding`), with the same results to rounding. Or ``prompt_bias (M, N)``: tokens
        already merged, with their log-count biases (``-inf`` for a token nothing attends to).
        ``mask_ids``: only the IoU token and these mask tokens are wanted, ``(M, 1 + K, D)`` in that
        order (for :meth:`heads`); None for every token, ``(M, T, D)``.
        """
        if prompt_bias is not None:
            bias = prompt_bias.float()
        else:
            prompt_tokens, bias = merge_padding(prompt_tokens, padding)
        output_tokens = self._output_tokens.unsqueeze(0).expand(prompt_tokens.shape[0], -1, -1)
        if bias is not None:
            bias = torch.cat([bias.new_zeros(bias.shape[0], output_tokens.shape[1]), bias], dim=1)
        outputs = None if mask_ids is None else output_rows(mask_ids)
        return self.transformer(ctx, torch.cat([output_tokens, prompt_tokens.float()], 1), bias, outputs)

    def heads(
        self, queries: torch.Tensor, mask_ids: list[int], reduced: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hypernetwork outputs and predicted IoU of the mask tokens ``mask_ids``: see
        :meth:`MaskOutputs.heads`."""
        return self.outputs.heads(queries, mask_ids, reduced)

    def upscale_masks(self, ctx: ImageContext, keys: torch.Tensor, hyper: torch.Tensor) -> torch.Tensor:
        """Image tokens ``(M, hw, D)`` and hypernetwork outputs ``(M, K, C)`` -> logits ``(M, K, 4h, 4w)``."""
        return self.outputs.upscale_masks(ctx.size, keys, hyper)

    def mask_logits(
        self, ctx: ImageContext, queries: torch.Tensor, keys: torch.Tensor, mask_ids: list[int]
    ) -> torch.Tensor:
        """Logits ``(M, len(mask_ids), 4h, 4w)`` of the mask tokens ``mask_ids`` (0 = single-mask output)."""
        return self.upscale_masks(ctx, keys, self.heads(queries, mask_ids)[0])

    def decode(
        self,
        ctx: ImageContext,
        prompt_tokens: torch.Tensor,
        multimask_output: bool = True,
        padding: torch.Tensor | None = None,
        prompt_bias: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``prompt_tokens (M, N, D)`` -> logits ``(M, K, 4h, 4w)`` float32 and IoU ``(M, K)``, K = 3 or 1.

        ``padding``, ``prompt_bias``: see :meth:`decode_tokens`."""
        selected = list(range(1, self.num_mask_tokens)) if multimask_output else [0]
        queries, keys = self.decode_tokens(ctx, prompt_tokens, padding, prompt_bias, selected)
        hyper, iou = self.heads(queries, selected, reduced=True)
        return self.upscale_masks(ctx, keys, hyper), iou
