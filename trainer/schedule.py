"""Learning-rate schedules set every optimiser step.

``lr = blr * effective_batch / 256`` (MAE's scaling rule), then a linear warmup from 0 to the peak and a
decay after it: a half-cycle cosine to ``min_lr`` (SAMI), a straight line to ``min_lr`` (finetuning) or a
constant. Steps count optimiser steps (one step = ``accum`` micro-batches on every process); fractional
steps are allowed so a schedule can be sampled anywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

DECAYS = ("cosine", "linear", "constant")


def scaled_lr(blr: float, effective_batch: int) -> float:
    """Absolute learning rate for a base lr given per 256 images: ``blr * effective_batch / 256``."""
    return blr * effective_batch / 256.0


@dataclass(frozen=True)
class LrSchedule:
    """Warmup then decay, as a function of the optimiser step.

    ``peak_lr`` is reached at ``warmup_steps``; the decay ends at ``total_steps`` with ``min_lr``.
    """

    peak_lr: float
    total_steps: int
    warmup_steps: int = 0
    decay: str = "cosine"
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        if self.decay not in DECAYS:
            raise ValueError(f"decay must be one of {DECAYS}, got {self.decay!r}")

    def lr_at(self, step: float) -> float:
        """Learning rate at optimiser step ``step`` (0-based; the lr used for the update of that step)."""
        if self.warmup_steps > 0 and step < self.warmup_steps:
            return self.peak_lr * step / self.warmup_steps
        if self.decay == "constant":
            return self.peak_lr
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min(max((step - self.warmup_steps) / span, 0.0), 1.0)
        if self.decay == "cosine":
            factor = 0.5 * (1.0 + math.cos(math.pi * progress))
        else:
            factor = 1.0 - progress
        return self.min_lr + (self.peak_lr - self.min_lr) * factor

    def state_dict(self) -> dict:
        return {
            "peak_lr": self.peak_lr,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "decay": self.decay,
            "min_lr": self.min_lr,
        }


def apply_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set ``lr`` on every parameter group, times the group's optional ``lr_scale``."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
