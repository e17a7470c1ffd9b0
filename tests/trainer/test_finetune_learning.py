"""A tiny EfficientSAM finetuned from scratch on synthetic SA-1B-format shapes learns to segment them."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_finetuning_from_scratch_learns_box_prompts(finetune_learning_run):
    run = finetune_learning_run
    print(
        f"\nheld-out 1-box mIoU: untrained {run.miou_before:.3f} -> finetuned {run.miou_after:.3f} "
        f"(filled tight box: {run.box_fill_miou:.3f}); {run.steps} steps in {run.train_seconds:.0f} s"
    )
    assert run.miou_before <= 0.3
    assert run.miou_after >= 0.7
