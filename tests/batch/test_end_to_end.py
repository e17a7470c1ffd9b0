"""End to end: a small model trained on synthetic shapes labels a folder from boxes through the CLI.

The model is the finetuning learning run's (``tests/trainer/finetune_training.py``), trained once per
session and shared with the trainer tests. Its held-out images each hold one drawn shape with its exact
mask; ``efsam-studio label --boxes`` must recover those shapes from their tight boxes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from efficientsam_studio.annotations import masks as mask_ops
from efficientsam_studio.annotations.project import Project
from efficientsam_studio.cli.main import main
from tests.trainer.finetune_training import learning_run


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / np.logical_or(a, b).sum())


@pytest.mark.slow
def test_boxes_mode_recovers_drawn_objects_with_a_trained_model(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EFSAM_HOME", str(tmp_path / "home"))
    run = learning_run(tmp_path_factory)
    coco = json.loads(run.heldout_annotations.read_text())
    files = {image["id"]: image["file_name"] for image in coco["images"]}
    folder = tmp_path / "images"
    shutil.copytree(run.heldout_images, folder)

    truth: dict[str, np.ndarray] = {}
    lines = ["image,x0,y0,x1,y1,label,score"]
    for annotation in coco["annotations"]:
        name = files[annotation["image_id"]]
        x, y, w, h = annotation["bbox"]
        lines.append(f"{name},{x},{y},{x + w},{y + h},shape,1.0")
        truth[name] = mask_ops.decode(annotation["segmentation"]).astype(bool)
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("\n".join(lines) + "\n")

    status = main([
        "label", str(folder), "--out", "labels", "--boxes", str(boxes), "--model", "tiny",
        "--checkpoint", str(run.checkpoint), "--backend", "torch", "--no-cache",
    ])  # fmt: skip
    assert status == 0

    project = Project.open(folder / "labels.efsam.json", read_only=True)
    document = project.document
    ious = {}
    for instance in document.iter_instances():
        name = Path(document.image(instance.image_id).path).name
        assert name not in ious, f"{name}: one box gave more than one instance"
        assert document.category(instance.category_id).name == "shape"
        assert instance.source == "ai"
        ious[name] = _iou(instance.mask(), truth[name])
    project.close()

    assert set(ious) == set(truth)
    assert np.mean(list(ious.values())) > 0.8, ious
    untrained_like_box_fill = run.box_fill_miou
    assert np.mean(list(ious.values())) > untrained_like_box_fill
