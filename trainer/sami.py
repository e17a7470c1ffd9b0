"""SAMI: masked image pretraining that reconstructs a SAM teacher's features (EfficientSAM paper, §3.2).

The student encoder is ``efficientsam_studio.model.ImageEncoderViT`` itself, so its weights load into
EfficientSAM's image encoder unchanged. What SAMI trains: ``patch_embed``, ``pos_embed`` (the 14 x 14 grid
slots; the class-token slot 0 is kept as initialised) and the blocks. The neck is not on the
reconstruction path (the paper reconstructs the teacher's features from the encoder's tokens through the
decoder and a linear head), so it is frozen at its seeded initialisation and exported as such; finetuning
trains it.

:class:`SamiDecoder` and its cross-attention blocks are a training-only head (discarded after
pretraining, never part of the product's model), which is why they are defined here and not in
``efficientsam_studio.model``.

Shapes: images ``(B, 3, S, S)``; a ``g x g`` token grid, ``L = g * g`` tokens in row-major order
(index ``y * g + x``); teacher targets ``(B, L, D_t)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from efficientsam_studio.errors import StudioError
from efficientsam_studio.model import MODEL_CONFIGS, ImageEncoderViT

#: Student encoders beyond the model registry's: width, depth, heads.
STUDENT_SHAPES: dict[str, tuple[int, int, int]] = {"vit_b": (768, 12, 12)}


def student_names() -> tuple[str, ...]:
    """The encoders SAMI trains: the registry's (vit_t, vit_s and the test size tiny) and vit_b."""
    names = [name for name in MODEL_CONFIGS if name != "tiny"] + list(STUDENT_SHAPES)
    return (*names, *(["tiny"] if "tiny" in MODEL_CONFIGS else []))


def student_shape(name: str) -> tuple[int, int, int]:
    """``(width, depth, heads)`` of a student (see :func:`student_names`); StudioError for another name."""
    if name in STUDENT_SHAPES:
        return STUDENT_SHAPES[name]
    if name not in MODEL_CONFIGS:
        raise StudioError(f"--encoder {name!r}: SAMI trains {', '.join(student_names())}")
    config = MODEL_CONFIGS[name]
    return config.encoder_dim, config.encoder_depth, config.encoder_heads


def build_student_encoder(name: str) -> ImageEncoderViT:
    """A randomly initialised EfficientSAM image encoder of the named size (published key layout)."""
    width, depth, heads = student_shape(name)
    return ImageEncoderViT(embed_dim=width, depth=depth, num_heads=heads)


def random_masking(noise: torch.Tensor, mask_ratio: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAE-style per-sample random masking from uniform ``noise`` ``(B, L)``, vectorised.

    The ``L - round_down(L * mask_ratio)`` tokens with the smallest noise stay visible. Returns
    ``(ids_keep (B, K), ids_masked (B, L - K), ids_restore (B, L))``: ``cat([kept, masked])`` gathered
    with ``ids_restore`` is back in the original order.
    """
    length = noise.shape[1]
    keep = max(1, length - int(length * mask_ratio))
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    return ids_shuffle[:, :keep], ids_shuffle[:, keep:], ids_restore


def _gather_tokens(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``x`` ``(B, L, C)`` at token indices ``ids`` ``(B, K)`` -> ``(B, K, C)``."""
    return torch.gather(x, 1, ids[..., None].expand(-1, -1, x.shape[-1]))


def sincos_pos_embed(grid: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding ``(grid * grid, dim)``: half the channels encode y, half x."""
    if dim % 4:
        raise ValueError(f"decoder width {dim} must be a multiple of 4")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter)
    coords = torch.arange(grid, device=device, dtype=torch.float32)
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")

    def encode(pos: torch.Tensor) -> torch.Tensor:
        angles = pos.reshape(-1)[:, None] * omega[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return torch.cat([encode(ys), encode(xs)], dim=1)


class CrossAttention(nn.Module):
    """Multi-head attention of queries ``(B, M, D)`` over keys/values ``(B, N, D)`` -> ``(B, M, D)``."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"decoder width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, m, d = queries.shape
        heads = self.num_heads
        q = self.q(queries).reshape(b, m, heads, d // heads).transpose(1, 2)
        kv = self.kv(context).reshape(b, context.shape[1], 2, heads, d // heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, kv[0], kv[1])
        return self.proj(out.transpose(1, 2).reshape(b, m, d))


class CrossAttentionBlock(nn.Module):
    """Pre-norm block: ``q + attn(norm_q(q), norm_kv(context))``, then ``q + mlp(norm2(q))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim, eps=1e-6)
        self.norm_kv = nn.LayerNorm(dim, eps=1e-6)
        self.attn = CrossAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        queries = queries + self.attn(self.norm_q(queries), self.norm_kv(context))
        return queries + self.mlp(self.norm2(queries))


@dataclass(frozen=True)
class DecoderConfig:
    """SAMI decoder: ``depth`` cross-attention blocks ``width`` wide (paper: 8 x 512; heads silent, 16)."""

    depth: int = 8
    width: int = 512
    heads: int = 16


class SamiDecoder(nn.Module):
    """Reconstructs teacher features for all ``L`` tokens from the visible encoder tokens.

    Visible tokens are embedded to the decoder width; each masked position starts as the learned mask
    token; both get a fixed sine-cosine position embedding. In every block the masked-position queries
    attend to keys/values = visible tokens + masked-position tokens (the visible ones stay as embedded).
    The outputs of the masked positions are merged with the visible tokens, put back in the original
    order, normalised and projected linearly to the teacher's width: ``(B, L, teacher_dim)``.
    """

    def __init__(self, encoder_dim: int, teacher_dim: int, config: DecoderConfig = DecoderConfig()) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Linear(encoder_dim, config.width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, config.width))
        nn.init.normal_(self.mask_token, std=0.02)
        self.blocks = nn.ModuleList(
            CrossAttentionBlock(config.width, config.heads) for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(config.width, eps=1e-6)
        self.head = nn.Linear(config.width, teacher_dim)
        self.apply(_init_linear)

    def forward(
        self,
        visible: torch.Tensor,
        ids_keep: torch.Tensor,
        ids_masked: torch.Tensor,
        ids_restore: torch.Tensor,
        grid: int,
    ) -> torch.Tensor:
        pos = sincos_pos_embed(grid, self.config.width, visible.device).to(visible.dtype)[None]
        pos = pos.expand(visible.shape[0], -1, -1)
        kept = self.embed(visible) + _gather_tokens(pos, ids_keep)
        masked = self.mask_token.to(kept.dtype) + _gather_tokens(pos, ids_masked)
        for block in self.blocks:
            masked = block(masked, torch.cat([kept, masked], dim=1))
        merged = _gather_tokens(torch.cat([kept, masked], dim=1), ids_restore)
        return self.head(self.norm(merged))


def _init_linear(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class SamiModel(nn.Module):
    """Student encoder + SAMI decoder; ``forward`` returns the loss dict of one batch.

    ``forward(images (B,3,S,S), noise (B,L), target (B,L,D_t))`` -> ``{"loss": MSE over all tokens and
    channels, "loss_masked": MSE over masked tokens (no gradient), "loss_visible": over visible ones}``.
    """

    def __init__(
        self,
        encoder: ImageEncoderViT,
        teacher_dim: int,
        decoder: DecoderConfig = DecoderConfig(),
        mask_ratio: float = 0.75,
    ) -> None:
        super().__init__()
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask ratio must be in [0, 1), got {mask_ratio}")
        self.encoder = encoder
        self.encoder.neck.requires_grad_(False)
        self.decoder = SamiDecoder(encoder.embed_dim, teacher_dim, decoder)
        self.mask_ratio = mask_ratio

    def encode_visible(self, images: torch.Tensor, ids_keep: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Encoder blocks over the visible tokens only: ``(B, K, C)`` and the grid side ``g``."""
        enc = self.encoder
        x = enc.patch_embed(images).permute(0, 2, 3, 1)
        b, h, w, c = x.shape
        if h != w:
            raise ValueError(f"SAMI needs square inputs, got a {h} x {w} token grid")
        x = (x + enc.pos_embed_for_grid((h, w))).reshape(b, h * w, c)
        x = _gather_tokens(x, ids_keep)
        for block in enc.blocks:
            x = block(x)
        return x, h

    def forward(
        self, images: torch.Tensor, noise: torch.Tensor, target: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        ids_keep, ids_masked, ids_restore = random_masking(noise, self.mask_ratio)
        visible, grid = self.encode_visible(images, ids_keep)
        if target.shape[1] != grid * grid:
            raise ValueError(f"teacher target has {target.shape[1]} tokens, the student {grid * grid}")
        pred = self.decoder(visible, ids_keep, ids_masked, ids_restore, grid)
        err = (pred.float() - target.float()).pow(2).mean(dim=-1)  # (B, L)
        with torch.no_grad():
            is_masked = torch.zeros_like(err, dtype=torch.bool).scatter_(1, ids_masked, True)
            loss_masked = err[is_masked].mean() if ids_masked.numel() else err.new_zeros(())
            loss_visible = err[~is_masked].mean()
        return {"loss": err.mean(), "loss_masked": loss_masked, "loss_visible": loss_visible}


def export_encoder_state(encoder: ImageEncoderViT) -> dict[str, torch.Tensor]:
    """The encoder's weights under ``image_encoder.*``, as in the published EfficientSAM checkpoints."""
    return {f"image_encoder.{k}": v.detach().cpu().clone() for k, v in encoder.state_dict().items()}
