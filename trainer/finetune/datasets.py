"""The finetuning dataset: one image, up to K sampled masks, one prompt per mask.

Items (dicts of tensors, collated by :func:`collate`):

- ``image``: float32 ``(3, S, S)``, the image resized to the model input (S = 1024) and normalised
  exactly as the engine does (:func:`efficientsam_studio.engine.preprocess.preprocess_image`);
- ``masks``: float32 ``(K, R, R)`` in {0, 1}, the sampled masks stretched to the loss resolution
  (R = 256, the model's low-resolution logits) like the image (area interpolation, threshold 0.5);
- ``points``: float32 ``(K, P, 2)`` ``(x, y)`` in input space (``x * S / W``, the engine's
  ``to_model_space``), -1 for padding;
- ``labels``: int64 ``(K, P)`` (1 positive, 0 negative, 2 / 3 box corners, -1 padding);
- ``valid``: bool ``(K,)``, false for padding slots; ``corrupt_images``: int64, 1 when the image could
  not be read (its item then holds no valid masks, and the run goes on);
- ``click_seed``: int64, seeds the corrective clicks drawn during training for this item.

Randomness comes from ``(seed, epoch, index)`` only, so an epoch is the same whatever the number of
processes or workers, and a resumed run sees the same samples.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from efficientsam_studio.engine.preprocess import INPUT_SIZE, preprocess_image
from efficientsam_studio.engine.prompts import to_model_space
from efficientsam_studio.errors import StudioError

from .prompts import PromptConfig, pad_prompts, sample_prompt
from .sources import DatasetError, ImageSource, decode_segmentation

LOW_RES_SIZE = 256


@dataclass(frozen=True)
class MaskFilter:
    """Which annotations may be sampled.

    ``min_area``: pixels; ``max_area_fraction``: masks covering more of the image are dropped (as SAM
    does above 0.9); ``min_stability`` / ``min_predicted_iou``: SA-1B's scores (annotations without the
    field pass).
    """

    min_area: float = 16.0
    max_area_fraction: float = 0.9
    min_stability: float = 0.0
    min_predicted_iou: float = 0.0

    def accepts(self, annotation: dict, image_area: float) -> bool:
        area = float(annotation.get("area", 0.0))
        if area < self.min_area or area > self.max_area_fraction * image_area:
            return False
        if float(annotation.get("stability_score", 1.0)) < self.min_stability:
            return False
        return float(annotation.get("predicted_iou", 1.0)) >= self.min_predicted_iou


@dataclass(frozen=True)
class DataConfig:
    """Sampling of one item: ``max_masks`` (K) masks per image, input side ``input_size`` (S), loss
    resolution ``mask_size`` (R), the annotation filter and the prompt sampler."""

    max_masks: int = 16
    input_size: int = INPUT_SIZE
    mask_size: int = LOW_RES_SIZE
    filter: MaskFilter = field(default_factory=MaskFilter)
    prompts: PromptConfig = field(default_factory=PromptConfig)

    @property
    def prompt_slots(self) -> int:
        """P: points per prompt in an item (a box takes two)."""
        return max(2, self.prompts.max_points)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Stretch a bool ``(H, W)`` mask to ``(size, size)`` like the image (area interpolation, >= 0.5)."""
    resized = cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return resized >= 0.5


class FinetuneDataset(Dataset):
    """Samples masks and prompts from an :class:`~trainer.finetune.sources.ImageSource`."""

    def __init__(self, source: ImageSource, config: DataConfig = DataConfig(), seed: int = 0) -> None:
        if len(source) == 0:
            raise DatasetError("the training data holds no images")
        self.source = source
        self.config = config
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _empty(self, corrupt: int, click_seed: int) -> dict[str, torch.Tensor]:
        cfg = self.config
        return {
            "image": torch.zeros(3, cfg.input_size, cfg.input_size),
            "masks": torch.zeros(cfg.max_masks, cfg.mask_size, cfg.mask_size),
            "points": torch.full((cfg.max_masks, cfg.prompt_slots, 2), -1.0),
            "labels": torch.full((cfg.max_masks, cfg.prompt_slots), -1, dtype=torch.int64),
            "valid": torch.zeros(cfg.max_masks, dtype=torch.bool),
            "corrupt_images": torch.tensor(corrupt, dtype=torch.int64),
            "click_seed": torch.tensor(click_seed, dtype=torch.int64),
        }

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        cfg = self.config
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        click_seed = int(rng.integers(0, 2**31 - 1))
        try:
            record = self.source.read(index)
        except StudioError as exc:
            warnings.warn(f"skipped an unreadable training image: {exc}", stacklevel=2)
            return self._empty(corrupt=1, click_seed=click_seed)
        height, width = record.image.shape[:2]
        eligible = [a for a in record.annotations if cfg.filter.accepts(a, height * width)]
        chosen = rng.permutation(len(eligible))[: cfg.max_masks] if eligible else []
        item = self._empty(corrupt=0, click_seed=click_seed)
        item["image"] = preprocess_image(record.image, size=cfg.input_size)[0]
        prompts, targets = [], []
        for position in chosen:
            annotation = eligible[int(position)]
            mask = decode_segmentation(annotation["segmentation"], height, width, record.name)
            target = resize_mask(mask, cfg.mask_size)
            if not mask.any() or not target.any():
                continue
            prompts.append(sample_prompt(mask, rng, cfg.prompts))
            targets.append(target)
        if prompts:
            count = len(prompts)
            coords, labels = pad_prompts(prompts, cfg.prompt_slots)
            item["points"][:count] = to_model_space(torch.from_numpy(coords), (height, width), cfg.input_size)
            item["labels"][:count] = torch.from_numpy(labels)
            item["masks"][:count] = torch.from_numpy(np.stack(targets)).float()
            item["valid"][:count] = True
        return item


def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack items and drop mask slots that no image of the batch uses (saves decoder work)."""
    batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}
    used = int(batch["valid"].sum(dim=1).max().item()) if batch["valid"].numel() else 0
    used = max(used, 1)
    for key in ("masks", "points", "labels", "valid"):
        batch[key] = batch[key][:, :used]
    return batch
