"""Initialisation and export of finetuned EfficientSAM weights.

Export format: exactly the published one, ``torch.save({"model": state_dict})`` with the published key
layout, so ``efsam-studio weights import`` (vit_t, vit_s), ``load_predictor(model, checkpoint=PATH)``,
``efsam-studio segment --checkpoint PATH`` and the desktop app load it unchanged. A small JSON beside it
(``<name>.json``) records how it was trained.

Initialisation (``--init``): ``scratch`` (random), ``sami:PATH`` (an encoder exported by the SAMI stage:
``image_encoder.*`` keys, loaded strictly into the image encoder; prompt encoder and decoder random) or
``efficientsam:PATH`` (a whole EfficientSAM checkpoint of the same size, e.g. the published
``efficient_sam_vitt.pt``, loaded strictly).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from efficientsam_studio.errors import CheckpointError, StudioError
from trainer.checkpoint import atomic_torch_save

INIT_KINDS = ("scratch", "sami", "efficientsam")


class InitError(StudioError):
    """An ``--init`` value that cannot be used."""


def parse_init(text: str | None) -> tuple[str, Path | None]:
    """``"scratch"`` / ``"sami:PATH"`` / ``"efficientsam:PATH"`` -> ``(kind, path)``."""
    if not text or text == "scratch":
        return "scratch", None
    kind, sep, path = text.partition(":")
    if not sep or kind not in INIT_KINDS[1:] or not path:
        raise InitError(
            f"--init {text!r}: use scratch, sami:PATH (a SAMI encoder export) or "
            "efficientsam:PATH (an EfficientSAM checkpoint)"
        )
    return kind, Path(path).expanduser()


def initialise(model: nn.Module, encoder: str, init: str | None) -> dict[str, Any]:
    """Load ``init`` into the EfficientSam ``model`` (of size ``encoder``); returns a description.

    A checkpoint of another size is refused with the ``--encoder`` it needs (read from the weights of an
    EfficientSAM checkpoint, from the metadata of a SAMI export)."""
    from efficientsam_studio.engine.checkpoints import (
        extract_state_dict,
        identify_architecture,
        read_checkpoint,
        validate_state_dict,
    )

    kind, path = parse_init(init)
    if kind == "scratch":
        return {"init": "scratch"}
    if not path.is_file():
        raise InitError(f"--init {kind}:{path}: no such file")
    raw = read_checkpoint(path)
    state = extract_state_dict(raw, path, encoder_only=kind == "sami")
    if kind == "efficientsam":
        architecture = identify_architecture(state)
        if architecture in ("vit_t", "vit_s", "tiny") and architecture != encoder:
            raise InitError(
                f"--init efficientsam:{path} holds an EfficientSAM {architecture} checkpoint, but --encoder "
                f"is {encoder}; use --encoder {architecture}"
            )
        validate_state_dict(state, encoder, path)
        model.load_state_dict(state, strict=True)
        return {"init": "efficientsam", "path": str(path)}
    meta = raw.get("meta") if isinstance(raw, dict) else None
    trained = meta.get("encoder") if isinstance(meta, dict) else None
    if isinstance(trained, str) and trained != encoder:
        raise InitError(
            f"--init sami:{path} is a SAMI export of a {trained} encoder, but --encoder is {encoder}; "
            f"use --encoder {trained}"
        )
    prefix = "image_encoder."
    encoder_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not encoder_state:
        raise CheckpointError(f"{path}: holds no image_encoder.* weights; give the encoder.pt of a SAMI run")
    try:
        model.image_encoder.load_state_dict(encoder_state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: does not fit the {encoder} image encoder ({str(exc).splitlines()[0]}); "
            "use the --encoder the SAMI run was trained with"
        ) from exc
    return {"init": "sami", "path": str(path)}


def export_weights(model: nn.Module, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write ``{"model": state_dict}`` (CPU float32 tensors) atomically, and ``meta`` as JSON beside it."""
    state = {k: v.detach().to("cpu", torch.float32).clone() for k, v in model.state_dict().items()}
    target = atomic_torch_save({"model": state}, Path(path))
    if meta is not None:
        target.with_suffix(".json").write_text(json.dumps(meta, indent=2, default=str))
    return target
