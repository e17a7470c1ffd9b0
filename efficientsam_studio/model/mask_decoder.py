"""Mask decoder: image embedding + prompt tokens -> mask logits at 256x256 and predicted IoU."""

from __future__ import annotations

import torch
from torch import nn

from .common import MLP
from .transformer import TwoWayTransformer


class MaskDecoder(nn.Module):
    """Predicts ``num_multimask_outputs + 1`` masks per prompt with a two-way transformer.

    Output token 0 is the single-mask output, tokens 1..3 the multimask outputs. The upscaling path
    (ConvTranspose 256->64, GroupNorm(1, 64), GELU, ConvTranspose 64->32, GELU) turns the 64x64 image
    tokens into a ``(32, 256, 256)`` map; hypernetwork MLPs (256->256->256->32) turn each mask token
    into weights over those 32 channels. The IoU head (256->256->256->4) has no sigmoid.
    """

    def __init__(
        self,
        transformer_dim: int,
        transformer: TwoWayTransformer,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 2,
        iou_head_hidden_dim: int = 256,
        upscaling_layer_dims: tuple[int, ...] = (64, 32),
    ) -> None:
        super().__init__()
        self.transformer_dim = transformer_dim
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)

        layers = []
        in_dim = transformer_dim
        for i, out_dim in enumerate(upscaling_layer_dims):
            last = i == len(upscaling_layer_dims) - 1
            layers.append(
                nn.Sequential(
                    nn.ConvTranspose2d(in_dim, out_dim, kernel_size=2, stride=2),
                    nn.Identity() if last else nn.GroupNorm(1, out_dim),
                    nn.GELU(),
                )
            )
            in_dim = out_dim
        self.final_output_upscaling_layers = nn.ModuleList(layers)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, in_dim, num_layers=2) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, num_layers=iou_head_depth
        )

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        multimask_output: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode Q prompts per image.

        Args:
            image_embeddings: ``(B, D, h, w)``, one per image.
            image_pe: ``(1, D, h, w)`` dense positional encoding.
            sparse_prompt_embeddings: ``(B, Q, N, D)``, Q prompts of N tokens per image.
            multimask_output: return the 3 multimask outputs (True) or the single-mask output.

        Returns:
            logits ``(B, Q, K, 4h, 4w)`` and IoU predictions ``(B, Q, K)`` with K = 3 or 1, unsorted.
        """
        b, q, n, d = sparse_prompt_embeddings.shape
        _, c, h, w = image_embeddings.shape
        if b == 1:
            # one image: its tokens stay shared (batch 1) and broadcast against the Q prompts, so the
            # prompt-independent work of the decoder runs once, not once per prompt
            shared = image_embeddings
        else:
            shared = image_embeddings[:, None].expand(b, q, c, h, w).reshape(b * q, c, h, w)
        masks, iou = self.predict_masks(shared, image_pe, sparse_prompt_embeddings.reshape(b * q, n, d))
        selected = slice(1, None) if multimask_output else slice(0, 1)
        masks, iou = masks[:, selected], iou[:, selected]
        return masks.reshape(b, q, *masks.shape[1:]), iou.reshape(b, q, -1)

    def predict_masks(
        self, image_embeddings: torch.Tensor, image_pe: torch.Tensor, prompt_tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(M|1, D, h, w)`` embeddings, ``(M, N, D)`` tokens -> 4 masks ``(M, 4, 4h, 4w)``, IoU ``(M, 4)``.

        One embedding (batch 1) is shared by all M prompts: the image-only projections of the first
        transformer layer are computed once and broadcast (see :class:`TwoWayTransformer`).
        """
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        output_tokens = output_tokens.unsqueeze(0).expand(prompt_tokens.shape[0], -1, -1)
        tokens = torch.cat([output_tokens, prompt_tokens], dim=1)

        _, c, h, w = image_embeddings.shape
        hs, src = self.transformer(image_embeddings, image_pe, tokens)
        m = src.shape[0]
        iou_token_out = hs[:, 0]
        mask_tokens_out = hs[:, 1 : 1 + self.num_mask_tokens]

        upscaled = src.reshape(m, h, w, c).permute(0, 3, 1, 2)  # channels-last view, no copy
        for layer in self.final_output_upscaling_layers:
            upscaled = layer(upscaled)
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        _, c_up, h_up, w_up = upscaled.shape
        masks = (hyper_in @ upscaled.reshape(m, c_up, h_up * w_up)).reshape(m, -1, h_up, w_up)
        return masks, self.iou_prediction_head(iou_token_out)
