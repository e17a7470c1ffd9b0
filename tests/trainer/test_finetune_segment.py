"""The exported finetuned checkpoint works in ``efsam-studio segment`` and segments a synthetic object."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from efficientsam_studio.annotations import masks as mask_ops
from efficientsam_studio.cli.main import main
from trainer.evaluate import iou
from trainer.finetune.prompts import mask_to_box


@pytest.mark.slow
def test_segment_command_with_the_finetuned_checkpoint(finetune_learning_run, tmp_path, capsys):
    run = finetune_learning_run
    document = json.loads(run.heldout_annotations.read_text())
    largest = max(document["annotations"], key=lambda a: a["area"])
    image = next(i for i in document["images"] if i["id"] == largest["image_id"])
    target = mask_ops.decode(largest["segmentation"])
    x0, y0, x1, y1 = (int(v) for v in mask_to_box(target))
    out = tmp_path / "mask.png"
    status = main([
        "segment", str(run.heldout_images / image["file_name"]), "--model", "tiny", "--checkpoint",
        str(run.checkpoint), "--box", f"{x0},{y0},{x1},{y1}", "--output", str(out), "--json",
        "--device", "cpu",
    ])  # fmt: skip
    assert status == 0
    result = json.loads(capsys.readouterr().out)
    mask = cv2.imread(str(out), cv2.IMREAD_GRAYSCALE) > 127
    assert mask.shape == target.shape
    score = iou(mask, target)
    print(f"\nsegment: IoU {score:.3f} with the ground truth; predicted IoU {result['best']['score']:.3f}")
    assert score >= 0.7
    untrained = tmp_path / "untrained.png"
    assert main([
        "segment", str(run.heldout_images / image["file_name"]), "--model", "tiny", "--checkpoint",
        str(run.untrained), "--box", f"{x0},{y0},{x1},{y1}", "--output", str(untrained), "--device", "cpu",
    ]) == 0  # fmt: skip
    assert iou(cv2.imread(str(untrained), cv2.IMREAD_GRAYSCALE) > 127, target) < score - 0.3
    assert np.isfinite(result["best"]["score"])
