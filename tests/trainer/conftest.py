"""Fixtures of the trainer tests: a random SAM-layout teacher checkpoint and folders of synthetic images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from trainer.teacher import SamEncoderConfig, SamImageEncoder

#: A reduced SAM image encoder with the published key pattern: 1024 px input (a 64 x 64 grid, so the
#: global blocks' tables have 127 rows), window 14 (27-row tables), global attention at blocks 1 and 3.
SMALL_SAM = SamEncoderConfig(embed_dim=32, depth=4, num_heads=2, global_blocks=(1, 3), out_chans=32)


def write_sam_checkpoint(path: Path, config: SamEncoderConfig = SMALL_SAM, seed: int = 0) -> Path:
    """A random SAM checkpoint in the published layout: image_encoder.*, prompt_encoder.*, mask_decoder.*."""
    torch.manual_seed(seed)
    encoder = SamImageEncoder(config)
    with torch.no_grad():
        for name, param in encoder.named_parameters():
            if "rel_pos" in name:
                param.normal_(0.0, 0.5)  # SAM initialises them to zero; trained tables are far from it
    state = {f"image_encoder.{k}": v for k, v in encoder.state_dict().items()}
    state["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"] = torch.randn(2, 128)
    state["mask_decoder.iou_token.weight"] = torch.randn(1, 256)
    torch.save(state, path)
    return path


def write_images(
    folder: Path, count: int, size: tuple[int, int] = (72, 88), seed: int = 0, classes: int = 2
) -> list[Path]:
    """Smooth random colour images in ImageNet-style class folders (folder/class_k/img_i.png)."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        small = rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
        image = cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
        sub = folder / f"class_{i % classes}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"img_{i}.png"
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def teacher_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sam_checkpoint(tmp_path_factory.mktemp("teacher") / "sam_small.pth")


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("images")
    write_images(root, 16)
    return root


@pytest.fixture(scope="session")
def finetune_learning_run(tmp_path_factory: pytest.TempPathFactory):
    """A tiny model finetuned from scratch on synthetic shapes, with its before/after box mIoU."""
    from tests.trainer.finetune_training import learning_run

    return learning_run(tmp_path_factory)


@pytest.fixture(scope="session")
def trained_tiny_checkpoint(finetune_learning_run) -> Path:
    """``{"model": state_dict}`` of a "tiny" model that segments synthetic shapes from a box (trained once
    per session; see ``tests/trainer/finetune_training.py``)."""
    return finetune_learning_run.checkpoint
