"""SAM's image encoder (vit_b / vit_l / vit_h) as the frozen SAMI teacher, runnable at any input size.

This is a training-only network: the studio never runs SAM, so it lives beside the trainer rather than in
``efficientsam_studio.model``; the neck's LayerNorm2d is the model package's.

Layout of the published checkpoints (``sam_vit_*.pth``, plain state_dicts): the ``image_encoder.*`` keys
``patch_embed.proj.*``, ``pos_embed`` (1, 64, 64, C), ``blocks.i.{norm1,norm2,attn.qkv,attn.proj,
attn.rel_pos_h,attn.rel_pos_w,mlp.lin1,mlp.lin2}.*`` and ``neck.{0,1,2,3}.*``. They load strictly into
:class:`SamImageEncoder` built at the checkpoint's own size (1024 px, a 64 x 64 token grid).

Running at another size (SAMI uses the student's 224 px, a 14 x 14 grid), every trained weight is used:

- the absolute ``pos_embed`` is resized bicubically (antialiased) from 64 x 64 to the token grid;
- a global block's relative-position tables, trained for offsets -63..63 tokens, are resampled to offsets
  -(g-1)..(g-1) of a g x g grid *at the same image scale*: offset ``o`` reads the trained table at
  ``o * 64 / g`` through a triangle (linear, antialiased) filter as wide as that step, so at 224 px each of
  the 27 new rows averages about 9 of the 127 trained rows and all 127 contribute;
- a windowed block keeps its 14-token windows and (27, d) tables in token units, as at 1024 px. When the
  grid is no larger than a window (14 x 14 at 224 px) the whole grid is one window, with no padding
  tokens; smaller grids use the central ``2g-1`` rows of the table (larger offsets cannot occur).

Output: the neck's ``(B, 256, g, g)`` features (``output="neck"``, SAMI's default target) or the trunk's
``(B, C, g, g)`` features (``output="backbone"``). Input: ``(B, 3, S, S)`` normalised RGB, S divisible by 16.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from efficientsam_studio.engine.checkpoints import read_checkpoint
from efficientsam_studio.errors import CheckpointError
from efficientsam_studio.model.common import LayerNorm2d

OUTPUTS = ("neck", "backbone")


@dataclass(frozen=True)
class SamEncoderConfig:
    """Shape of a SAM image encoder. ``global_blocks``: indices of the global-attention blocks."""

    embed_dim: int
    depth: int
    num_heads: int
    global_blocks: tuple[int, ...]
    img_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    out_chans: int = 256
    mlp_ratio: float = 4.0

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> SamEncoderConfig:
        """Infer the configuration from an encoder state_dict (keys without ``image_encoder.``)."""
        try:
            grid = state["pos_embed"].shape[1]
            embed_dim = state["pos_embed"].shape[3]
            patch = state["patch_embed.proj.weight"].shape[-1]
            depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
            head_dim = state["blocks.0.attn.rel_pos_h"].shape[1]
            rows = [state[f"blocks.{i}.attn.rel_pos_h"].shape[0] for i in range(depth)]
            hidden = state["blocks.0.mlp.lin1.weight"].shape[0]
            out_chans = state["neck.0.weight"].shape[0]
        except KeyError as exc:
            raise CheckpointError(f"not a SAM image encoder state_dict (no {exc.args[0]!r} tensor)") from exc
        except (IndexError, ValueError) as exc:
            raise CheckpointError(
                "not a SAM image encoder state_dict (its tensors do not have SAM's shapes)"
            ) from exc
        global_blocks = tuple(i for i, r in enumerate(rows) if r == 2 * grid - 1)
        window_rows = {r for r in rows if r != 2 * grid - 1}
        if len(window_rows) > 1:
            raise CheckpointError(
                f"not a SAM image encoder this trainer can run (several window sizes: table rows "
                f"{sorted(window_rows)})"
            )
        window = (window_rows.pop() + 1) // 2 if window_rows else 0
        return cls(
            embed_dim=embed_dim,
            depth=depth,
            num_heads=embed_dim // head_dim,
            global_blocks=global_blocks,
            img_size=grid * patch,
            patch_size=patch,
            window_size=window,
            out_chans=out_chans,
            mlp_ratio=hidden / embed_dim,
        )


#: The published SAM image encoders.
SAM_ENCODER_CONFIGS: dict[str, SamEncoderConfig] = {
    "vit_b": SamEncoderConfig(768, 12, 12, (2, 5, 8, 11)),
    "vit_l": SamEncoderConfig(1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": SamEncoderConfig(1280, 32, 16, (7, 15, 23, 31)),
}


def resample_rel_pos(table: torch.Tensor, size: int, scale: float) -> torch.Tensor:
    """Relative-position table for offsets ``-(size-1)..size-1`` from a ``(2n-1, d)`` table.

    Offset ``o`` reads the source at offset ``o * scale`` through a triangle filter of half-width
    ``max(scale, 1)`` (linear interpolation when enlarging, antialiased averaging when shrinking).
    ``scale == 1`` with ``size <= n`` picks the central rows exactly. Returns ``(2*size-1, d)``.
    """
    rows = table.shape[0]
    if rows == 2 * size - 1 and scale == 1.0:
        return table
    center = (rows - 1) / 2
    offsets = torch.arange(-(size - 1), size, device=table.device, dtype=torch.float32)
    src = center + offsets * scale
    width = max(scale, 1.0)
    j = torch.arange(rows, device=table.device, dtype=torch.float32)
    weights = (1.0 - (j[None, :] - src[:, None]).abs() / width).clamp_min(0.0)
    weights = weights / weights.sum(dim=1, keepdim=True)
    return weights.to(table.dtype) @ table


def _decomposed_rel_pos_bias(
    q: torch.Tensor, table_h: torch.Tensor, table_w: torch.Tensor, h: int, w: int
) -> torch.Tensor:
    """Additive attention bias ``(N, h*w, h*w)`` from queries ``(N, h*w, d)`` and the row/column tables
    ``(2h-1, d)`` and ``(2w-1, d)``."""
    idx_h = torch.arange(h, device=q.device)[:, None] - torch.arange(h, device=q.device)[None, :] + (h - 1)
    idx_w = torch.arange(w, device=q.device)[:, None] - torch.arange(w, device=q.device)[None, :] + (w - 1)
    rel_h = table_h[idx_h]  # (h, h, d)
    rel_w = table_w[idx_w]  # (w, w, d)
    r_q = q.reshape(q.shape[0], h, w, q.shape[-1])
    bias_h = torch.einsum("nhwc,hkc->nhwk", r_q, rel_h)
    bias_w = torch.einsum("nhwc,wkc->nhwk", r_q, rel_w)
    bias = bias_h[:, :, :, :, None] + bias_w[:, :, :, None, :]
    return bias.reshape(q.shape[0], h * w, h * w)


class _RelPosAttention(nn.Module):
    """Multi-head self-attention over an ``(B, h, w, C)`` token map with decomposed relative position."""

    def __init__(self, dim: int, num_heads: int, table_size: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.randn(2 * table_size - 1, head_dim) * 0.02)
        self.rel_pos_w = nn.Parameter(torch.randn(2 * table_size - 1, head_dim) * 0.02)

    def forward(self, x: torch.Tensor, table_h: torch.Tensor, table_w: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        heads = self.num_heads
        qkv = self.qkv(x).reshape(b, h * w, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, b * heads, h * w, c // heads).unbind(0)
        bias = _decomposed_rel_pos_bias(q, table_h, table_w, h, w).to(q.dtype)
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], attn_mask=bias[:, None])
        out = out.reshape(b, heads, h, w, c // heads).permute(0, 2, 3, 1, 4).reshape(b, h, w, c)
        return self.proj(out)


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(F.gelu(self.lin1(x)))


def _partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """``(B, H, W, C)`` -> ``(B * windows, window, window, C)``, zero-padding H and W up to multiples."""
    b, h, w, c = x.shape
    pad_h, pad_w = (window - h % window) % window, (window - w % window) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.reshape(b, hp // window, window, wp // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window, window, c), (hp, wp)


def _unpartition(
    x: torch.Tensor, window: int, padded: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    hp, wp = padded
    b = x.shape[0] // ((hp // window) * (wp // window))
    x = x.reshape(b, hp // window, wp // window, window, window, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, hp, wp, -1)[:, : size[0], : size[1]]


class _Block(nn.Module):
    """Pre-norm transformer block; windowed (``window > 0``) or global attention."""

    def __init__(self, dim: int, num_heads: int, hidden: int, window: int, trained_grid: int) -> None:
        super().__init__()
        self.window = window
        self.trained_grid = trained_grid
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _RelPosAttention(dim, num_heads, window if window else trained_grid)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, hidden)

    def _tables(self, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.window:
            return (
                resample_rel_pos(self.attn.rel_pos_h, min(self.window, h), 1.0),
                resample_rel_pos(self.attn.rel_pos_w, min(self.window, w), 1.0),
            )
        return (
            resample_rel_pos(self.attn.rel_pos_h, h, self.trained_grid / h),
            resample_rel_pos(self.attn.rel_pos_w, w, self.trained_grid / w),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[1], x.shape[2]
        table_h, table_w = self._tables(h, w)
        y = self.norm1(x)
        if self.window and (h > self.window or w > self.window):
            parts, padded = _partition(y, self.window)
            y = _unpartition(self.attn(parts, table_h, table_w), self.window, padded, (h, w))
        else:
            y = self.attn(y, table_h, table_w)
        x = x + y
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class SamImageEncoder(nn.Module):
    """SAM's ViT image encoder; see the module docstring for how other input sizes are handled."""

    def __init__(self, config: SamEncoderConfig) -> None:
        super().__init__()
        self.config = config
        c = config.embed_dim
        self.patch_embed = _PatchEmbed(config.patch_size, c)
        self.pos_embed = nn.Parameter(torch.randn(1, config.grid, config.grid, c) * 0.02)
        hidden = int(c * config.mlp_ratio)
        self.blocks = nn.ModuleList(
            _Block(
                c,
                config.num_heads,
                hidden,
                0 if i in config.global_blocks else config.window_size,
                config.grid,
            )
            for i in range(config.depth)
        )
        self.neck = nn.Sequential(
            nn.Conv2d(c, config.out_chans, kernel_size=1, bias=False),
            LayerNorm2d(config.out_chans),
            nn.Conv2d(config.out_chans, config.out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(config.out_chans),
        )

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        """The absolute position embedding for an ``h`` x ``w`` token grid: ``(1, h, w, C)``."""
        pos = self.pos_embed
        if pos.shape[1:3] == (h, w):
            return pos
        resized = F.interpolate(
            pos.permute(0, 3, 1, 2), size=(h, w), mode="bicubic", align_corners=False, antialias=True
        )
        return resized.permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor, output: str = "neck") -> torch.Tensor:
        """``(B, 3, S, S)`` normalised images -> ``(B, 256, S/16, S/16)`` (neck) or ``(B, C, ...)``."""
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        x = self.patch_embed(x)
        x = x + self.position_embedding(x.shape[1], x.shape[2])
        for block in self.blocks:
            x = block(x)
        x = x.permute(0, 3, 1, 2)
        return self.neck(x) if output == "neck" else x

    def feature_channels(self, output: str = "neck") -> int:
        return self.config.out_chans if output == "neck" else self.config.embed_dim


def sam_config_name(config: SamEncoderConfig) -> str:
    """``"vit_b"``/``"vit_l"``/``"vit_h"`` for a published configuration, ``"custom"`` otherwise."""
    for name, known in SAM_ENCODER_CONFIGS.items():
        if known == config:
            return name
    return "custom"


def extract_image_encoder(state: dict, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The ``image_encoder.*`` entries of a SAM state_dict, prefix removed (also under ``"model"``)."""
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    prefix = "image_encoder."
    encoder = {k[len(prefix) :]: v for k, v in state.items() if isinstance(k, str) and k.startswith(prefix)}
    if not encoder:
        raise CheckpointError(
            f"{source} has no 'image_encoder.*' weights; give a SAM checkpoint such as sam_vit_h_4b8939.pth "
            "(https://dl.fbaipublicfiles.com/segment_anything/)"
        )
    return encoder


def load_sam_teacher(path: str | Path) -> SamImageEncoder:
    """Build the SAM image encoder a checkpoint describes and load its weights strictly; frozen, eval mode."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"teacher {path} is a folder but not a teacher cache (it has no plan.json); give a SAM "
            "checkpoint file (sam_vit_h_4b8939.pth) or a folder made by --stage sami-cache"
        )
    if not path.is_file():
        raise CheckpointError(
            f"teacher checkpoint {path} does not exist; download a SAM checkpoint "
            "(sam_vit_h_4b8939.pth, sam_vit_l_0b3195.pth or sam_vit_b_01ec64.pth)"
        )
    raw = read_checkpoint(path, "teacher checkpoint")
    state = extract_image_encoder(raw, str(path))
    try:
        config = SamEncoderConfig.from_state_dict(state)
    except CheckpointError as exc:
        raise CheckpointError(
            f"teacher checkpoint {path} is {exc}; the teacher is a SAM checkpoint (sam_vit_h_4b8939.pth, "
            "sam_vit_l_0b3195.pth or sam_vit_b_01ec64.pth), not an EfficientSAM one"
        ) from exc
    encoder = SamImageEncoder(config)
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"teacher checkpoint {path} does not match a SAM image encoder: {exc}") from exc
    encoder.eval()
    encoder.requires_grad_(False)
    return encoder


def save_sam_checkpoint(encoder: SamImageEncoder, path: str | Path) -> Path:
    """Write ``encoder`` as a SAM-layout state_dict (``image_encoder.*`` keys), loadable by SAM's code."""
    path = Path(path)
    state = {f"image_encoder.{k}": v.detach().cpu() for k, v in encoder.state_dict().items()}
    torch.save(state, path)
    return path
