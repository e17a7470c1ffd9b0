"""The output side of the inference decoder: prediction heads and mask upscaling, rearranged for speed.

- The IoU head and the hypernetwork MLPs of the wanted mask tokens run as one stack of batched products
  (three instead of some twenty small calls), where their shapes match (the published decoders').
- The two transposed convolutions (kernel 2, stride 2) are plain matrix products on a sub-pixel layout,
  the one-group GroupNorm runs on a channels-last view of it, and the masks are put back in raster order
  once, by a pixel shuffle at 256x256. While exporting (``torch.compiler.is_exporting()``) the
  GroupNorm is spelled out, its variance a reduction of the squared centred values, and the sub-pixel
  reordering is a transpose with ``(h w)`` planes as the inner block followed by a permutation of those
  planes (ONNX Runtime is slow on one transpose with tiny axes).

Used by :class:`~efficientsam_studio.model.fast_decoder.FastMaskDecoder`; same outputs as
:class:`MaskDecoder` to rounding in float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .inference_tracing import inference, is_exporting
from .mask_decoder import MaskDecoder

__all__ = ["MaskOutputs", "output_rows"]


def output_rows(mask_ids: list[int]) -> list[int]:
    """Where the IoU token (0) and the mask tokens ``mask_ids`` (1 + id) are among the decoder's tokens."""
    return [0, *(1 + i for i in mask_ids)]


class MaskOutputs:
    """IoU and hypernetwork heads and the mask upscaling of a :class:`MaskDecoder`, for inference.

    Args:
        decoder: the trained module; the upscaling weights are copied (in ``dtype``), so build a new
            instance after changing the weights.
        dtype: precision of the upscaling products (float32 or bfloat16).
    """

    def __init__(self, decoder: MaskDecoder, dtype: torch.dtype = torch.float32) -> None:
        self.decoder = decoder
        self.dtype = dtype
        self.num_mask_tokens = decoder.num_mask_tokens
        self._upscaling = [self._upscaling_weights(seq) for seq in decoder.final_output_upscaling_layers]
        self._stacked_heads: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self._stack_heads = self._stackable_heads()

    def _upscaling_weights(
        self, seq: torch.nn.Sequential
    ) -> tuple[torch.Tensor, torch.Tensor, torch.nn.Module]:
        """A kernel-2 stride-2 ConvTranspose as ``(C_in, 4 C_out)`` with columns ordered ``(dy, dx, c)``."""
        conv, norm = seq[0], seq[1]
        if tuple(conv.kernel_size) != (2, 2) or tuple(conv.stride) != (2, 2):
            raise ValueError("the fast decoder needs kernel-2 stride-2 upscaling convolutions")
        c_in, c_out = conv.weight.shape[:2]
        weight = conv.weight.detach().permute(0, 2, 3, 1).reshape(c_in, 4 * c_out)
        bias = conv.bias.detach().repeat(4)
        return weight.to(self.dtype), bias.to(self.dtype), norm

    def to(self, device: torch.device | str) -> MaskOutputs:
        """Moves the copied tensors to ``device`` (the module itself is moved by its owner)."""
        self._upscaling = [(w.to(device), b.to(device), n) for w, b, n in self._upscaling]
        self._stacked_heads = {}
        return self

    def _heads_weights(self, mask_ids: tuple[int, ...]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The IoU head and the hypernetwork MLPs of ``mask_ids``, stacked layer by layer for batched
        products: ``[(weight (1+K, in, out), bias (1+K, 1, out)), ...]``. The IoU head's last layer is
        padded with zero columns to the hypernetworks' width (its first columns are the IoU).

        Kept per ``mask_ids`` in eager mode; while exporting they are built in the graph and not kept
        (the tracer's tensors must not outlive the trace)."""
        cached = self._stacked_heads.get(mask_ids)
        if cached is not None:
            return cached
        dec = self.decoder
        mlps = [dec.iou_prediction_head, *(dec.output_hypernetworks_mlps[i] for i in mask_ids)]
        linears = [[*(seq[0] for seq in mlp.layers), mlp.fc] for mlp in mlps]
        width = max(layers[-1].out_features for layers in linears)
        stacked = []
        for depth in range(len(linears[0])):
            weights, biases = [], []
            for layers in linears:
                weight, bias = layers[depth].weight.detach(), layers[depth].bias.detach()
                pad = width - weight.shape[0] if depth == len(layers) - 1 else 0
                weights.append(F.pad(weight, (0, 0, 0, pad)).transpose(0, 1))
                biases.append(F.pad(bias, (0, pad))[None])
            stacked.append((torch.stack(weights), torch.stack(biases)))
        if not is_exporting():
            self._stacked_heads[mask_ids] = stacked
        return stacked

    def _stackable_heads(self) -> bool:
        """Whether the IoU head and the hypernetwork MLPs have the same depth, hidden widths and
        activation (the published decoders do), so they run as one stack of batched products."""
        dec = self.decoder
        mlps = [dec.iou_prediction_head, *dec.output_hypernetworks_mlps]
        shapes = {
            tuple((seq[0].in_features, seq[0].out_features, type(seq[1])) for seq in mlp.layers)
            + ((mlp.fc.in_features,),)
            for mlp in mlps
        }
        return len(shapes) == 1 and all(isinstance(seq[1], torch.nn.GELU) for seq in mlps[0].layers)

    @inference
    def heads(
        self, queries: torch.Tensor, mask_ids: list[int], reduced: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Output tokens ``queries (M, T, D)`` -> hypernetwork outputs ``(M, K, C)`` of the mask tokens
        ``mask_ids`` and their predicted IoU ``(M, K)``. ``reduced``: ``queries`` holds only the IoU
        token and those mask tokens, in that order (``decode_tokens(..., mask_ids=...)``)."""
        dec = self.decoder
        rows = list(range(1 + len(mask_ids))) if reduced else output_rows(mask_ids)
        if not self._stack_heads:
            mlps = dec.output_hypernetworks_mlps
            pairs = zip(mask_ids, rows[1:], strict=True)
            hyper = torch.stack([mlps[i](queries[:, row]) for i, row in pairs], dim=1)
            return hyper, dec.iou_prediction_head(queries[:, rows[0]])[:, mask_ids]
        stacked = self._heads_weights(tuple(mask_ids))
        x = queries[:, rows].transpose(0, 1)  # (1+K, M, D)
        for depth, (weight, bias) in enumerate(stacked):
            x = torch.baddbmm(bias, x, weight)
            if depth < len(stacked) - 1:
                x = F.gelu(x)
        iou = x[0, :, : self.num_mask_tokens][:, mask_ids]
        hyper = x[1:, :, : dec.output_hypernetworks_mlps[0].fc.out_features].transpose(0, 1)
        return hyper, iou

    @inference
    def upscale_masks(self, size: tuple[int, int], keys: torch.Tensor, hyper: torch.Tensor) -> torch.Tensor:
        """Image tokens ``(M, hw, D)`` on an ``(h, w)`` grid and hypernetwork outputs ``(M, K, C)`` -> logits
        ``(M, K, 4h, 4w)``."""
        m = keys.shape[0]
        h, w = size
        x = keys.reshape(-1, keys.shape[-1])
        steps = len(self._upscaling)
        for step, (weight, bias, norm) in enumerate(self._upscaling):
            x = torch.addmm(bias, x, weight)  # rows: pixels, columns (dy, dx, c)
            c_out = weight.shape[1] // 4
            x = x.reshape(m, -1, c_out)  # (M, pixels, C) with pixels in sub-pixel order
            if isinstance(norm, torch.nn.GroupNorm):
                x = self._group_norm(x, norm, h << (step + 1), w << (step + 1))
            torch.ops.aten.gelu_(x)
            x = x.reshape(-1, c_out)
        masks = torch.bmm(hyper.to(x.dtype), x.reshape(m, -1, x.shape[-1]).transpose(1, 2))  # (M, K, pixels)
        # pixels are ordered (y, x, dy1, dx1, dy2, dx2, ...): sub-pixel offsets to channels ordered
        # (dy1, dy2, ..., dx1, dx2, ...), then one pixel shuffle puts them in raster order
        k = masks.shape[1]
        if is_exporting():
            # graph form: a transpose with (h, w) as its inner block, then the small permutation of the
            # offsets over contiguous (h w) planes (ONNX Runtime is slow on one transpose with tiny axes)
            planes = masks.reshape(m * k, h * w, 4**steps).transpose(1, 2)  # (M*K, offsets, hw)
            planes = planes.reshape(m * k, *([2, 2] * steps), h * w)
            order = [0, *(1 + 2 * i for i in range(steps)), *(2 + 2 * i for i in range(steps)), 1 + 2 * steps]
            sub = planes.permute(*order).reshape(m * k, 4**steps, h, w)
        else:
            grid = masks.reshape(m * k, h, w, *([2, 2] * steps))
            order = [0, *(3 + 2 * i for i in range(steps)), *(4 + 2 * i for i in range(steps)), 1, 2]
            sub = grid.permute(*order).reshape(m * k, 4**steps, h, w)
        return F.pixel_shuffle(sub, 2**steps).reshape(m, k, h * 2**steps, w * 2**steps).float()

    def _group_norm(self, x: torch.Tensor, norm: torch.nn.GroupNorm, h: int, w: int) -> torch.Tensor:
        """GroupNorm with one group over ``(M, pixels, C)``: statistics per prompt, affine per channel.

        Eagerly the rows are viewed as a channels-last ``(M, C, h, w)`` image (their sub-pixel order
        does not change a one-group statistic), which torch normalises in one vectorised pass with
        float32 statistics and affine."""
        if norm.num_groups != 1:
            raise ValueError("the fast decoder supports GroupNorm with one group")
        m, _, c = x.shape
        if not is_exporting():
            image = x.reshape(m, h, w, c).permute(0, 3, 1, 2)
            normed = F.group_norm(image, 1, norm.weight, norm.bias, norm.eps)
            return normed.permute(0, 2, 3, 1).reshape(m, -1, c)
        # graph form: centred first, so the variance has no cancellation, for any number of prompts
        flat = x.reshape(m, -1)
        centred = flat - flat.mean(1, keepdim=True)
        variance = (centred * centred).mean(1)
        rstd = torch.rsqrt(variance + norm.eps).reshape(-1, 1, 1)
        return torch.addcmul(norm.bias, centred.reshape(x.shape), rstd * norm.weight)
