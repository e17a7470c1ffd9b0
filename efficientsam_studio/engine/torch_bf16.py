"""``backend="torch-bf16"``: the torch predictor with the encoder and decoder in bfloat16 (opt-in).

On CPUs with AMX or AVX512-BF16 (Intel Sapphire Rapids and later, AMD Zen 4 and later) the encoder's
matrix products and fused attention, and the decoder's image-sized products, run in bfloat16 several
times faster than in float32 (the decoder keeps its softmaxes, normalisation statistics and prompt
tokens in float32). The results move slightly (at most 0.05 in logits and a best-mask IoU of at least
0.986 against float32 on the reference cases; see ``benchmarks/README.md``), so this is a choice the
user makes, not the default; the embedding cache keys it apart from float32 (``model_key`` ends in
``:bf16``).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch

from efficientsam_studio.errors import StudioError

from .cache import state_dict_checksum
from .torch_backend import TorchPredictor


def bf16_fast_on(device: torch.device) -> bool:
    """Whether bfloat16 matrix products are fast on ``device``: CUDA, or a CPU with AMX / AVX512-BF16."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(check is not None and check() for check in checks)


class TorchBf16Predictor(TorchPredictor):
    """:class:`TorchPredictor` whose ``encode_image`` runs under bfloat16 autocast (float32 output) and
    whose decoder runs its image-sized products in bfloat16."""

    backend = "torch-bf16"
    decoder_dtype = torch.bfloat16

    def encode_image(self, image: np.ndarray) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            return super().encode_image(image).float()

    @cached_property
    def model_key(self) -> str:
        """Cache identity: model name, weights checksum and ``bf16``."""
        return f"{self.model_name}:{state_dict_checksum(self.model.state_dict())}:bf16"


def load_bf16_predictor(model: str, checkpoint, device: str) -> TorchBf16Predictor:
    """The factory behind ``load_predictor(backend="torch-bf16")``; refuses devices without fast bf16."""
    from .loader import _load_torch

    base = _load_torch(model, checkpoint, device)
    if not bf16_fast_on(base.device):
        raise StudioError(
            f"backend 'torch-bf16' needs a CPU with AMX or AVX512-BF16, or a CUDA GPU with bfloat16; "
            f"{base.device} has neither, so it would be slower than float32: use backend 'onnx' or 'torch'"
        )
    return TorchBf16Predictor(base.model, model, base.device)
