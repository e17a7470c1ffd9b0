"""The finetuning loss: focal + dice with the minimum over outputs, and MSE on the predicted IoU."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainer.finetune.losses import LossConfig, dice_loss, focal_loss, mask_iou, segmentation_loss


def test_focal_without_weighting_is_scaled_cross_entropy():
    logits = torch.randn(2, 8, 8)
    target = (torch.rand(2, 8, 8) > 0.5).float()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = torch.exp(-ce)
    expected = (ce * (1 - p_t) ** 2).mean(dim=(-2, -1))
    assert torch.allclose(focal_loss(logits, target, alpha=-1), expected, atol=1e-6)
    assert torch.allclose(focal_loss(logits, target, alpha=-1, gamma=0), ce.mean(dim=(-2, -1)), atol=1e-6)


def test_dice_and_iou_limits():
    target = torch.zeros(1, 16, 16)
    target[0, 4:12, 4:12] = 1
    perfect = (target * 2 - 1) * 50
    assert dice_loss(perfect, target).item() < 1e-2
    assert dice_loss(-perfect, target).item() > 0.9
    assert mask_iou(perfect > 0, target > 0).item() == 1.0
    half = target.clone()
    half[0, 4:12, 4:8] = 0
    assert mask_iou(half > 0, target > 0).item() == pytest.approx(0.5)


def test_min_over_outputs_trains_only_the_best_output():
    target = torch.zeros(1, 1, 16, 16)
    target[..., 2:10, 2:10] = 1
    good = (target[:, :, None] * 2 - 1) * 5
    logits = torch.cat([torch.zeros_like(good), good, -good], dim=2).requires_grad_(True)
    iou_pred = torch.full((1, 1, 3), 0.5, requires_grad=True)
    out = segmentation_loss(logits, iou_pred, target)
    assert out.selected.tolist() == [[1]]
    out.total.backward()
    grad = logits.grad.abs().flatten(3).sum(-1)[0, 0]
    assert grad[1] > 0 and grad[0] == 0 and grad[2] == 0
    assert iou_pred.grad.abs().min() > 0  # the IoU head learns every output by default
    assert out.actual_iou[0, 0].tolist() == pytest.approx([0.0, 1.0, 0.0])
    mean = segmentation_loss(
        logits.detach(), iou_pred.detach(), target, config=LossConfig(min_over_outputs=False)
    )
    assert mean.total > out.total


def test_weights_and_padding():
    logits = torch.randn(2, 3, 3, 8, 8)
    iou_pred = torch.rand(2, 3, 3)
    target = (torch.rand(2, 3, 8, 8) > 0.5).float()
    valid = torch.tensor([[True, True, False], [True, False, False]])
    out = segmentation_loss(logits, iou_pred, target, valid)
    garbage = target.clone()
    garbage[~valid] = 1 - garbage[~valid]
    assert torch.allclose(segmentation_loss(logits, iou_pred, garbage, valid).total, out.total)
    manual = 20 * out.focal + out.dice + out.iou
    assert torch.allclose(out.total, manual, atol=1e-5)
    only_dice = segmentation_loss(logits, iou_pred, target, valid, LossConfig(focal_weight=0, iou_weight=0))
    assert torch.allclose(only_dice.total, only_dice.dice, atol=1e-6)  # selection by dice alone


def test_target_at_another_resolution_resizes_the_logits():
    logits = torch.randn(1, 2, 3, 16, 16)
    target = (torch.rand(1, 2, 32, 32) > 0.5).float()
    out = segmentation_loss(logits, torch.rand(1, 2, 3), target)
    assert out.actual_iou.shape == (1, 2, 3) and torch.isfinite(out.total)


def test_min_only_for_ambiguous_prompts_trains_every_output_on_boxes():
    target = torch.zeros(1, 2, 16, 16)
    target[..., 2:10, 2:10] = 1
    logits = torch.randn(1, 2, 3, 16, 16, requires_grad=True)
    config = LossConfig(min_only_for_ambiguous=True)
    out = segmentation_loss(
        logits, torch.rand(1, 2, 3), target, config=config, ambiguous=torch.tensor([[True, False]])
    )
    out.total.backward()
    touched = logits.grad.abs().flatten(3).sum(-1)[0] > 0
    assert touched[0].sum() == 1  # the single-point prompt: only its best output
    assert touched[1].all()  # the box: all three outputs


class _FixedSam(torch.nn.Module):
    """Stands in for EfficientSAM: the same 3 outputs and predicted IoUs for every prompt."""

    img_size = 1024

    def __init__(self, logits: torch.Tensor, iou_pred: torch.Tensor) -> None:
        super().__init__()
        self.logits, self.iou_pred = logits, iou_pred
        self.scale = torch.nn.Parameter(torch.ones(()))

    def get_image_embeddings(self, images):
        return images

    def predict_masks(self, embeddings, points, labels):
        return self.logits * self.scale, self.iou_pred


def test_training_miou_scores_the_output_the_model_picks_not_the_best_one():
    from trainer.finetune.task import FinetuneModel

    target = torch.zeros(1, 1, 4, 4)
    target[..., :2, :2] = 1
    perfect = torch.where(target[0, 0] > 0, 10.0, -10.0)
    one_pixel = torch.full((4, 4), -10.0)
    one_pixel[0, 0] = 10.0
    everything = torch.full((4, 4), 10.0)
    logits = torch.stack([perfect, one_pixel, everything])[None, None]  # (1, 1, 3, 4, 4)
    iou_pred = torch.tensor([[[0.1, 0.9, 0.5]]])  # the model is most confident in the one-pixel output
    batch = {
        "image": torch.zeros(1, 3, 8, 8),
        "masks": target,
        "valid": torch.ones(1, 1, dtype=torch.bool),
        "points": torch.tensor([[[[0.0, 0.0], [7.0, 7.0]]]]),
        "labels": torch.tensor([[[2, 3]]]),
        "click_seed": torch.zeros(1, dtype=torch.int64),
    }
    out = FinetuneModel(_FixedSam(logits, iou_pred), LossConfig())(batch)
    assert out["miou"].item() == pytest.approx(0.25)  # what eval would score: the most confident output
    assert out["miou_best_of_3"].item() == pytest.approx(1.0)
    assert "miou_after_clicks" not in out
    clicked = FinetuneModel(_FixedSam(logits, iou_pred), LossConfig(), iterative_clicks=1)(batch)
    assert clicked["miou_after_clicks"].item() == pytest.approx(0.25)
