"""Finetuning loss: focal + dice on the masks and MSE on the predicted IoU (segment-anything's recipe).

Shapes: ``B`` images, ``Q`` prompts (masks) per image, ``M`` mask outputs per prompt (3), masks ``H x W``
(the model's 256 x 256 low-resolution logits by default; the target decides the resolution and the logits
are resized bilinearly to it when they differ).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossConfig:
    """Weights and options of :func:`segmentation_loss`.

    ``focal_weight`` : ``dice_weight`` = 20 : 1 and ``iou_weight`` 1 as in segment-anything.
    ``focal_alpha`` (negative to disable class weighting) and ``focal_gamma`` as in RetinaNet.
    ``min_over_outputs``: the mask loss of each prompt is that of its lowest-loss output (gradient flows
    through that output only); otherwise the mean over outputs. ``min_only_for_ambiguous``: take the
    minimum only for single-point prompts (the ambiguous ones, as segment-anything trains its multimask
    outputs) and train every output on boxes and multi-point prompts, so that whichever output the
    predictor ranks first is good for them. ``iou_on_all_outputs``: the IoU head is
    trained on every output (the predictor ranks the outputs by it); otherwise only on the selected one.
    """

    focal_weight: float = 20.0
    dice_weight: float = 1.0
    iou_weight: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    min_over_outputs: bool = True
    min_only_for_ambiguous: bool = False
    iou_on_all_outputs: bool = True


@dataclass
class LossOutput:
    """``total`` scalar (what is backpropagated) and its detached parts, plus the index of the selected
    output per prompt (``selected`` int64 ``(B, Q)``) and the true IoU of every output (``(B, Q, M)``)."""

    total: torch.Tensor
    focal: torch.Tensor
    dice: torch.Tensor
    iou: torch.Tensor
    selected: torch.Tensor
    actual_iou: torch.Tensor

    def as_dict(self) -> dict[str, float]:
        return {
            "loss": float(self.total.detach()),
            "focal": float(self.focal),
            "dice": float(self.dice),
            "iou_mse": float(self.iou),
        }


def focal_loss(
    logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Sigmoid focal loss averaged over the last two (pixel) axes: ``(..., H, W) -> (...)``."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.mean(dim=(-2, -1))


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft dice loss ``1 - (2|p t| + s) / (|p| + |t| + s)`` per mask: ``(..., H, W) -> (...)``."""
    prob = logits.sigmoid().flatten(-2)
    target = target.flatten(-2)
    numerator = 2 * (prob * target).sum(-1) + smooth
    denominator = prob.sum(-1) + target.sum(-1) + smooth
    return 1 - numerator / denominator


def mask_iou(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of bool masks ``(..., H, W) -> (...)`` (1.0 when both are empty)."""
    predicted, target = predicted.flatten(-2), target.flatten(-2)
    intersection = (predicted & target).sum(-1).float()
    union = (predicted | target).sum(-1).float()
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union))


def per_image_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over the valid prompts of each image, then over images: ``(B, Q) -> ()``.

    Averaging per image first makes the loss of a micro-batch the mean of its samples' losses, so that
    gradient accumulation and DDP (which average over micro-batches and processes) equal one large batch.
    An image without valid prompts counts as 0.
    """
    weight = valid.to(values.dtype)
    return ((values * weight).sum(-1) / weight.sum(-1).clamp(min=1)).mean()


def segmentation_loss(
    logits: torch.Tensor,
    iou_pred: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor | None = None,
    config: LossConfig = LossConfig(),
    ambiguous: torch.Tensor | None = None,
) -> LossOutput:
    """Loss of a batch of predictions.

    ``logits`` ``(B, Q, M, h, w)``; ``iou_pred`` ``(B, Q, M)``; ``target`` ``(B, Q, H, W)`` in {0, 1}
    (float or bool); ``valid`` bool ``(B, Q)`` marks real prompts (padding is ignored; default all);
    ``ambiguous`` bool ``(B, Q)`` marks prompts of a single point (see ``min_only_for_ambiguous``).
    Every part is averaged over the valid prompts of each image, then over images (:func:`per_image_mean`).
    """
    batch, queries, outputs = logits.shape[:3]
    target = target.to(logits.dtype)
    if logits.shape[-2:] != target.shape[-2:]:
        logits = F.interpolate(
            logits.flatten(0, 1), size=target.shape[-2:], mode="bilinear", align_corners=False
        ).unflatten(0, (batch, queries))
    logits = logits.float()
    expanded = target.float().unsqueeze(2).expand(-1, -1, outputs, -1, -1)
    focal = focal_loss(logits, expanded, config.focal_alpha, config.focal_gamma)
    dice = dice_loss(logits, expanded)
    mask_loss = config.focal_weight * focal + config.dice_weight * dice  # (B, Q, M)
    with torch.no_grad():
        actual_iou = mask_iou(logits > 0, expanded > 0.5)
    if valid is None:
        valid = torch.ones(batch, queries, dtype=torch.bool, device=logits.device)
    selected = mask_loss.detach().argmin(dim=-1)
    use_min = torch.full_like(valid, config.min_over_outputs)
    if config.min_over_outputs and config.min_only_for_ambiguous and ambiguous is not None:
        use_min = ambiguous.to(torch.bool)
    pick = lambda t: torch.where(use_min, t.gather(-1, selected.unsqueeze(-1)).squeeze(-1), t.mean(-1))
    mask_term, focal_term, dice_term = pick(mask_loss), pick(focal), pick(dice)
    iou_error = (iou_pred.float() - actual_iou) ** 2
    if config.iou_on_all_outputs:
        iou_term = iou_error.mean(-1)
    else:
        iou_term = iou_error.gather(-1, selected.unsqueeze(-1)).squeeze(-1)
    total = per_image_mean(mask_term + config.iou_weight * iou_term, valid)
    return LossOutput(
        total=total,
        focal=per_image_mean(focal_term, valid).detach(),
        dice=per_image_mean(dice_term, valid).detach(),
        iou=per_image_mean(iou_term, valid).detach(),
        selected=selected,
        actual_iou=actual_iou,
    )
