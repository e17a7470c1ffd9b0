"""Finetuning EfficientSAM (encoder and decoder together) as a task of the shared training loop.

One training step: encode the images once, decode every sampled prompt, and, with iterative clicks,
decode again after adding a click drawn from the error region of the previous prediction (the encoder's
output is reused; the loss of every round is averaged). The loss is :func:`~trainer.finetune.losses.
segmentation_loss`. Defaults follow the paper (AdamW (0.9, 0.999), lr 4e-4, weight decay 0.1, linear
decay to zero, global batch 128, 5 epochs, 1024 input); the loop owns the optimiser and the schedule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from efficientsam_studio.model import EfficientSam, build_model
from trainer.run_folder import FINETUNE_EXPORT
from trainer.task import TrainTask

from .datasets import DataConfig, FinetuneDataset, collate
from .export import export_weights, initialise, parse_init
from .losses import LossConfig, LossOutput, per_image_mean, segmentation_loss
from .prompts import LABEL_PAD, error_region_clicks
from .sources import CocoInstances, DatasetError, ImageSource, Sa1bFolder, Sa1bTar

EXPORT_NAME = FINETUNE_EXPORT
DATA_FORMATS = ("auto", "sa1b", "coco")


@dataclass
class FinetuneConfig:
    """What is finetuned on what. ``data``: an SA-1B folder, a tar shard or a folder of shards, or a COCO
    instances JSON (then ``images`` is its image folder). ``init``: ``scratch``, ``sami:PATH`` or
    ``efficientsam:PATH``."""

    encoder: str = "vit_t"
    data: Path | None = None
    data_format: str = "auto"
    images: Path | None = None
    init: str = "scratch"
    data_config: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    seed: int = 0


def open_source(data: Path, data_format: str = "auto", images: Path | None = None) -> ImageSource:
    """The :class:`ImageSource` for ``data`` (see :class:`FinetuneConfig`); ``auto`` guesses from the path."""
    data = Path(data)
    if data_format not in DATA_FORMATS:
        raise DatasetError(f"--data-format must be one of {', '.join(DATA_FORMATS)}, got {data_format!r}")
    if data_format == "auto":
        if data.suffix.lower() == ".json":
            data_format = "coco"
        else:
            data_format = "sa1b"
    if data_format == "coco":
        if images is None:
            raise DatasetError(
                f"{data}: COCO data needs --images, the folder its file_name fields are relative to"
            )
        return CocoInstances(data, images)
    if data.is_file() and data.suffix.lower() == ".tar":
        return Sa1bTar(data)
    if data.is_dir() and any(data.glob("*.tar")) and not any(data.glob("*.json")):
        return Sa1bTar(data)
    if not data.exists():
        raise DatasetError(f"{data}: no such file or folder")
    return Sa1bFolder(data)


def _iou_of(loss: LossOutput, output: torch.Tensor) -> torch.Tensor:
    """The true IoU ``(B, Q)`` of output ``output`` (int64 ``(B, Q)``) of every prompt."""
    return loss.actual_iou.gather(-1, output.unsqueeze(-1)).squeeze(-1)


class FinetuneModel(nn.Module):
    """EfficientSAM plus its training forward (one call per micro-batch, as DDP wants).

    ``forward(batch)`` takes a collated batch (see :mod:`trainer.finetune.datasets`) and returns
    ``{"loss", "focal", "dice", "iou_mse", "miou", "miou_best_of_3", "masks"}`` (plus
    ``"miou_after_clicks"`` with iterative clicks). The mIoU figures are true IoUs on the training
    masks, averaged like the loss: ``miou`` scores the output the model itself picks (the highest
    predicted IoU) for the first prompt, as ``efsam-studio eval`` does; ``miou_best_of_3`` the best of
    the 3 outputs for the same prompt (an oracle, higher than any prediction can rely on);
    ``miou_after_clicks`` the picked output after the last corrective click.
    """

    def __init__(self, sam: EfficientSam, loss: LossConfig, iterative_clicks: int = 0) -> None:
        super().__init__()
        self.sam = sam
        self.loss_config = loss
        self.iterative_clicks = iterative_clicks

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, targets, valid = batch["image"], batch["masks"], batch["valid"]
        points, labels = batch["points"], batch["labels"]
        embeddings = self.sam.get_image_embeddings(images)
        rounds = []
        first_confident = last_confident = None
        for round_index in range(self.iterative_clicks + 1):
            logits, iou_pred = self.sam.predict_masks(embeddings, points, labels)
            ambiguous = (labels >= 0).sum(-1) == 1
            out = segmentation_loss(logits, iou_pred, targets, valid, self.loss_config, ambiguous)
            rounds.append(out)
            last_confident = iou_pred.detach().argmax(dim=-1)
            if first_confident is None:
                first_confident = last_confident
            if round_index == self.iterative_clicks:
                break
            points, labels = self._add_click(
                logits, out.selected, targets, points, labels, batch, round_index
            )
        first = rounds[0]
        out = {
            "loss": torch.stack([r.total for r in rounds]).mean(),
            "focal": torch.stack([r.focal for r in rounds]).mean(),
            "dice": torch.stack([r.dice for r in rounds]).mean(),
            "iou_mse": torch.stack([r.iou for r in rounds]).mean(),
            "miou": per_image_mean(_iou_of(first, first_confident), valid),
            "miou_best_of_3": per_image_mean(first.actual_iou.max(dim=-1).values, valid),
            "masks": valid.sum(),
        }
        if len(rounds) > 1:
            out["miou_after_clicks"] = per_image_mean(_iou_of(rounds[-1], last_confident), valid)
        return out

    def _add_click(
        self,
        logits: torch.Tensor,
        selected: torch.Tensor,
        targets: torch.Tensor,
        points: torch.Tensor,
        labels: torch.Tensor,
        batch: dict[str, torch.Tensor],
        round_index: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append one corrective click per prompt, drawn from the error of the selected output."""
        with torch.no_grad():
            index = selected[..., None, None, None].expand(-1, -1, 1, *logits.shape[-2:])
            predicted = logits.gather(2, index)[:, :, 0] > 0
            target = targets > 0.5
            if predicted.shape[-2:] != target.shape[-2:]:
                predicted = (
                    nn.functional.interpolate(
                        predicted[:, :, None].float(), size=target.shape[-2:], mode="nearest"
                    )[:, :, 0]
                    > 0.5
                )
            coords, new_labels = [], []
            for b in range(predicted.shape[0]):
                generator = torch.Generator(device=predicted.device)
                generator.manual_seed(int(batch["click_seed"][b]) * 16 + round_index)
                c, lab = error_region_clicks(predicted[b], target[b], generator)
                coords.append(c)
                new_labels.append(lab)
            coords_t, labels_t = torch.stack(coords), torch.stack(new_labels)
            # grid pixel (col, row) of the R x R target -> input-space pixel index at the cell's centre
            cell = self.sam.img_size / target.shape[-1]
            coords_t = torch.where(coords_t >= 0, coords_t * cell + (cell - 1) / 2, coords_t)
            labels_t = torch.where(batch["valid"], labels_t, torch.full_like(labels_t, LABEL_PAD))
        return (
            torch.cat([points, coords_t.unsqueeze(2).to(points.dtype)], dim=2),
            torch.cat([labels, labels_t.unsqueeze(2).to(labels.dtype)], dim=2),
        )


class FinetuneTask(TrainTask):
    """Finetuning on the shared loop; exports ``RUN_DIR/efficientsam.pt`` in the published format."""

    name = "finetune"
    count_keys = ("corrupt_images", "invalid_annotations", "masks")
    resume_may_change = ("data", "data_format", "images", "init")
    option_names = {
        "encoder": "--encoder",
        "data_config.max_masks": "--max-masks",
        "data_config.input_size": "--input-size",
        "data_config.filter.min_stability": "--min-stability",
        "data_config.prompts.box_probability": "--box-probability",
        "data_config.prompts.max_points": "--max-points",
        "data_config.prompts.iterative_clicks": "--iterative-clicks",
        "loss.focal_weight": "--focal-weight",
    }

    export_files = (EXPORT_NAME, Path(EXPORT_NAME).with_suffix(".json").name)

    def __init__(self, config: FinetuneConfig) -> None:
        self.config = config
        if config.data is None:
            raise DatasetError("finetuning needs --data (see `efsam-studio train --help`)")
        self.source = open_source(config.data, config.data_format, config.images)
        self.init_info: dict[str, Any] = {}

    def input_paths(self) -> dict[str, Path | None]:
        return {
            "--init": parse_init(self.config.init)[1],
            "--data": self.config.data,
            "--images": self.config.images,
        }

    def build_model(self) -> nn.Module:
        sam = build_model(self.config.encoder)
        self.init_info = initialise(sam, self.config.encoder, self.config.init)
        return FinetuneModel(sam, self.config.loss, self.config.data_config.prompts.iterative_clicks)

    def train_dataset(self) -> Dataset:
        return FinetuneDataset(self.source, self.config.data_config, seed=self.config.seed)

    def collate(self, items: list[Any]) -> Any:
        return collate(items)

    def no_weight_decay(self) -> set[str]:
        return {"sam.image_encoder.pos_embed"}

    def train_step(self, model: nn.Module, batch: Any, device: torch.device) -> dict[str, torch.Tensor]:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        out = model(batch)
        out["corrupt_images"] = batch["corrupt_images"].sum()
        out["invalid_annotations"] = batch["invalid_annotations"].sum()
        return out

    def describe(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "task": self.name,
            "encoder": cfg.encoder,
            "data": str(cfg.data),
            "data_format": cfg.data_format,
            "images": str(cfg.images) if cfg.images else None,
            "init": cfg.init,
            "data_config": asdict(cfg.data_config),
            "loss": asdict(cfg.loss),
        }

    def resume_settings(self, described: dict[str, Any]) -> dict[str, Any]:
        """As the base class, with the two output-loss flags named as the ``--output-loss`` choice."""
        from .cli import OUTPUT_LOSSES

        settings = super().resume_settings(described)
        flags = (
            settings.pop("loss.min_over_outputs", None),
            settings.pop("loss.min_only_for_ambiguous", None),
        )
        if flags != (None, None):
            names = [name for name, pair in OUTPUT_LOSSES.items() if pair == flags]
            settings["--output-loss"] = names[0] if names else flags
        return settings

    def export(self, model: nn.Module, out_dir: Path) -> Path:
        """Write ``out_dir/efficientsam.pt`` (``{"model": state_dict}``) and ``efficientsam.json``."""
        sam = model.sam if isinstance(model, FinetuneModel) else model
        return export_weights(
            sam, Path(out_dir) / EXPORT_NAME, {**self.describe(), "model": self.config.encoder}
        )
