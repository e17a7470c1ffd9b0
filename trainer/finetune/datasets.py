"""The finetuning dataset: one image, up to K sampled masks, one prompt per mask.

Items (dicts of tensors, collated by :func:`collate`):

- ``image``: float32 ``(3, S, S)``, the image resized to the model input (S = 1024) and normalised
  exactly as the engine does (:func:`efficientsam_studio.engine.preprocess.preprocess_image`);
- ``masks``: float32 ``(K, R, R)`` in {0, 1}, the sampled masks stretched to the loss resolution
  (R = 256, the model's low-resolution logits) like the image (area interpolation, threshold 0.5);
- ``points``: float32 ``(K, P, 2)`` ``(x, y)`` in input space (``x * S / W``, the engine's
  ``to_model_space``), -1 for padding;
- ``labels``: int64 ``(K, P)`` (1 positive, 0 negative, 2 / 3 box corners, -1 padding);
- ``valid``: bool ``(K,)``, false for padding slots;
- ``corrupt_images``: int64, 1 when the image of this index could not be read, and
  ``invalid_annotations``: int64, the invalid annotations met while sampling it (see below);
- ``click_seed``: int64, seeds the corrective clicks drawn during training for this item.

An image that cannot be read, or that has no valid annotation passing the :class:`MaskFilter` (none at
all, all invalid or all filtered out), is replaced by the next usable one (wrapping around), as the SAMI
datasets do, so no step trains on an empty sample; when no image of the data has one, the first item
raises a DatasetError saying why. Each unreadable file and each invalid annotation is reported once (a
warning naming the file and the annotation id) and counted at its own index only (once an epoch), not
again when a neighbouring item passes over it. Annotations are checked with
:func:`~trainer.finetune.sources.annotation_problem` before they are decoded; an invalid one does not take
a mask slot. An annotation without the optional ``area`` gets it from its segmentation: a COCO source
computes it once when indexed (:class:`~trainer.finetune.sources.CocoInstances`), and an item computes it
only for annotations whose source could not (SA-1B files; COCO images listed without their size), whose
segmentation it then checks once.

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
from .sources import (
    DatasetError,
    ImageRecord,
    ImageSource,
    annotation_name,
    decode_segmentation,
    record_problem,
    report_invalid,
    segmentation_area,
    segmentation_problem,
)

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
        """Whether ``annotation`` (with its ``area``) may be sampled on an image of ``image_area`` pixels."""
        area = float(annotation["area"])
        if area < self.min_area or area > self.max_area_fraction * image_area:
            return False
        if float(annotation.get("stability_score", 1.0)) < self.min_stability:
            return False
        return float(annotation.get("predicted_iou", 1.0)) >= self.min_predicted_iou

    def describe(self) -> str:
        """The filter in words, for messages."""
        parts = [f"area at least {self.min_area:g} px and at most {self.max_area_fraction:.0%} of the image"]
        if self.min_stability > 0:
            parts.append(f"stability score at least {self.min_stability:g} (--min-stability)")
        if self.min_predicted_iou > 0:
            parts.append(f"predicted IoU at least {self.min_predicted_iou:g}")
        return ", ".join(parts)


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
        self._reported: set[tuple] = set()

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _empty(self, click_seed: int) -> dict[str, torch.Tensor]:
        cfg = self.config
        return {
            "image": torch.zeros(3, cfg.input_size, cfg.input_size),
            "masks": torch.zeros(cfg.max_masks, cfg.mask_size, cfg.mask_size),
            "points": torch.full((cfg.max_masks, cfg.prompt_slots, 2), -1.0),
            "labels": torch.full((cfg.max_masks, cfg.prompt_slots), -1, dtype=torch.int64),
            "valid": torch.zeros(cfg.max_masks, dtype=torch.bool),
            "corrupt_images": torch.tensor(0, dtype=torch.int64),
            "invalid_annotations": torch.tensor(0, dtype=torch.int64),
            "click_seed": torch.tensor(click_seed, dtype=torch.int64),
        }

    def _report_once(self, key: tuple, report) -> None:
        if key not in self._reported:
            self._reported.add(key)
            report()

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        count = len(self.source)
        unreadable = unusable = invalid = 0
        # problems are counted at their own index only, so each counts once an epoch
        own_unreadable = 0
        for offset in range(count):
            position = (int(index) + offset) % count
            try:
                record = self.source.read(position)
            except StudioError as exc:
                unreadable += 1
                own_unreadable = own_unreadable or int(offset == 0)
                message = f"skipped an unreadable training image: {exc}"
                self._report_once(("read", position), lambda m=message: warnings.warn(m, stacklevel=2))
                continue
            item, met = self._sample(record, index)
            if offset == 0:
                invalid = met
            if item is None:
                unusable += 1
                continue
            item["corrupt_images"] = torch.tensor(own_unreadable, dtype=torch.int64)
            item["invalid_annotations"] = torch.tensor(invalid, dtype=torch.int64)
            return item
        warned = "; see the warnings" if unreadable or self._reported else ""
        raise DatasetError(
            f"none of the {count} training images can be used: {unreadable} cannot be read and {unusable} "
            f"have no valid annotation that passes the mask filter ({self.config.filter.describe()}){warned}"
        )

    def _sample(self, record: ImageRecord, index: int) -> tuple[dict[str, torch.Tensor] | None, int]:
        """The item of ``index`` made from ``record`` and the number of invalid annotations met; the item
        is None when no valid annotation of the image passes the filter (another image is used instead)."""
        cfg = self.config
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        click_seed = int(rng.integers(0, 2**31 - 1))
        height, width = record.image.shape[:2]
        invalid = 0

        where = record.extra.get("annotation_file", record.name)

        def skip(position: int, annotation: object, problem: str) -> None:
            name = annotation_name(annotation, position)
            self._report_once((where, name), lambda: report_invalid(where, name, problem))

        eligible = []
        for position, annotation in enumerate(record.annotations):
            problem = record_problem(annotation)
            checked = problem is None and "area" not in annotation
            if checked:  # a source that could not give the area when indexed (SA-1B JSON, unsized COCO image)
                segmentation = annotation["segmentation"]
                problem = segmentation_problem(segmentation, height, width)
                if problem is None:
                    annotation = {**annotation, "area": segmentation_area(segmentation, height, width)}
            if problem is not None:
                invalid += 1
                skip(position, annotation, problem)
            elif cfg.filter.accepts(annotation, height * width):
                eligible.append((position, annotation, checked))
        order = rng.permutation(len(eligible)) if eligible else []
        prompts, targets = [], []
        taken = 0
        for choice in order:
            if taken == cfg.max_masks:
                break
            position, annotation, checked = eligible[int(choice)]
            problem = None if checked else segmentation_problem(annotation["segmentation"], height, width)
            if problem is not None:
                invalid += 1
                skip(position, annotation, problem)
                continue
            taken += 1
            mask = decode_segmentation(annotation["segmentation"], height, width, record.name)
            target = resize_mask(mask, cfg.mask_size)
            if not mask.any() or not target.any():
                continue
            prompts.append(sample_prompt(mask, rng, cfg.prompts))
            targets.append(target)
        if not prompts:
            return None, invalid
        item = self._empty(click_seed)
        item["image"] = preprocess_image(record.image, size=cfg.input_size)[0]
        count = len(prompts)
        coords, labels = pad_prompts(prompts, cfg.prompt_slots)
        item["points"][:count] = to_model_space(torch.from_numpy(coords), (height, width), cfg.input_size)
        item["labels"][:count] = torch.from_numpy(labels)
        item["masks"][:count] = torch.from_numpy(np.stack(targets)).float()
        item["valid"][:count] = True
        return item, invalid


def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack items and drop mask slots that no image of the batch uses (saves decoder work)."""
    batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}
    used = int(batch["valid"].sum(dim=1).max().item()) if batch["valid"].numel() else 0
    used = max(used, 1)
    for key in ("masks", "points", "labels", "valid"):
        batch[key] = batch[key][:, :used]
    return batch
