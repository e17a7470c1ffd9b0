"""Files of ``efsam-studio train`` that are not EfficientSAM weights are named, with the file to use."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from efficientsam_studio.cli.main import main
from efficientsam_studio.engine.checkpoints import (
    extract_state_dict,
    inspect_checkpoint,
    load_state_dict_file,
    read_checkpoint,
)
from efficientsam_studio.errors import CheckpointError


@pytest.fixture(scope="module")
def tiny_state(tiny_checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(tiny_checkpoint, weights_only=True)["model"]


def _training_checkpoint(folder: Path, task: str, state: dict) -> Path:
    """The shape of ``RUN_DIR/checkpoint.pt``: the trainer's format marker and the wrapped model's keys."""
    folder.mkdir(parents=True, exist_ok=True)
    model = {f"sam.{k}": v for k, v in state.items()}
    path = folder / "checkpoint.pt"
    torch.save({"format": "efsam-trainer-checkpoint", "task": task, "model": model, "step": 3}, path)
    return path


def _sami_export(folder: Path, state: dict) -> Path:
    """The shape of a SAMI run's ``encoder.pt``: ``image_encoder.*`` weights and the run's metadata."""
    folder.mkdir(parents=True, exist_ok=True)
    encoder = {k: v for k, v in state.items() if k.startswith("image_encoder.")}
    path = folder / "encoder.pt"
    torch.save({"model": encoder, "meta": {"task": "sami", "encoder": "tiny"}}, path)
    return path


def test_a_finetuning_checkpoint_names_the_exported_weights(tmp_path, tiny_state):
    path = _training_checkpoint(tmp_path / "run", "finetune", tiny_state)
    for load in (lambda: load_state_dict_file(path, "tiny"), lambda: inspect_checkpoint(path)):
        with pytest.raises(CheckpointError) as caught:
            load()
        message = str(caught.value)
        assert "is a training checkpoint (for --resume), not EfficientSAM weights" in message
        assert f"use the weights its run exported: {tmp_path / 'run' / 'efficientsam.pt'}" in message
        assert "missing keys" not in message and "\n" not in message


def test_a_sami_checkpoint_and_a_sami_encoder_name_the_finetuning_step(tmp_path, tiny_state):
    checkpoint = _training_checkpoint(tmp_path / "sami", "sami", tiny_state)
    with pytest.raises(CheckpointError, match="is a SAMI training checkpoint") as caught:
        load_state_dict_file(checkpoint, "tiny")
    assert f"--init sami:{tmp_path / 'sami' / 'encoder.pt'}" in str(caught.value)
    encoder = _sami_export(tmp_path / "sami", tiny_state)
    with pytest.raises(CheckpointError, match="holds a SAMI-pretrained image encoder only") as caught:
        load_state_dict_file(encoder, "tiny")
    assert f"efsam-studio train --init sami:{encoder}" in str(caught.value)
    # finetuning's --init sami:PATH still reads it
    state = extract_state_dict(read_checkpoint(encoder), encoder, encoder_only=True)
    assert state.keys() == {k for k in tiny_state if k.startswith("image_encoder.")}


def test_eval_and_segment_say_which_file_to_use_in_one_line(tmp_path, tiny_state, capsys):
    checkpoint = _training_checkpoint(tmp_path / "run", "finetune", tiny_state)
    command = ["eval", "--checkpoint", str(checkpoint), "--coco", str(tmp_path / "a.json")]
    assert main([*command, "--images", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a training checkpoint" in err and "efficientsam.pt" in err and err.count("\n") == 1
    encoder = _sami_export(tmp_path / "sami", tiny_state)
    image = tmp_path / "image.png"
    cv2.imwrite(str(image), np.zeros((16, 16, 3), np.uint8))
    command = ["segment", str(image), "--model", "tiny", "--checkpoint", str(encoder), "--box", "1,1,5,5"]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "--init sami:" in err and err.count("\n") == 1
