"""SAMI pretraining as a :class:`trainer.task.TrainTask`: student + decoder, teacher online or cached.

The export, ``RUN_DIR/encoder.pt``, is ``{"model": {"image_encoder.*": tensor}, "meta": {...}}``: the
published EfficientSAM key layout, loadable strictly into ``efficientsam_studio.model``'s image encoder
(``model.image_encoder.load_state_dict(...)`` after stripping the prefix) and by the finetuning stage.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from efficientsam_studio.errors import StudioError
from trainer.cache import TeacherCache, TeacherCacheError, is_teacher_cache
from trainer.checkpoint import atomic_torch_save
from trainer.data import (
    AugmentedImages,
    CropConfig,
    apply_crop,
    find_training_images,
    load_first_readable,
    sample_rng,
    to_tensor,
)
from trainer.run_folder import SAMI_EXPORT
from trainer.sami import DecoderConfig, SamiModel, build_student_encoder, export_encoder_state
from trainer.task import TrainTask
from trainer.teacher import OUTPUTS, load_sam_teacher

EXPORT_NAME = SAMI_EXPORT


@dataclass
class SamiConfig:
    """What SAMI trains on and how. ``teacher``: a SAM checkpoint (online teacher) or a cache folder.

    ``data`` may be omitted with a cache (its recorded data root is used). ``input_size`` and the crop
    are taken from the cache when one is given. ``target``: the teacher output reconstructed, ``neck`` or
    ``backbone``; None means ``neck`` with an online teacher and the output a cache holds with a cache
    (a cache holding the other output is refused).
    """

    encoder: str = "vit_t"
    teacher: Path | None = None
    data: Path | None = None
    input_size: int = 224
    mask_ratio: float = 0.75
    target: str | None = None
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    crop_scale: tuple[float, float] = (0.2, 1.0)
    hflip: float = 0.5
    seed: int = 0


class CachedSamiDataset(Dataset):
    """Images with a cached teacher view: item ``i`` replays view ``epoch % views`` of the ``i``-th image.

    Item: ``{"image": (3, S, S), "target": (L, C) float32, "mask_noise": (L,), "index", "corrupt_images"}``.
    Images whose every view failed when the cache was built are left out.
    """

    def __init__(self, cache: TeacherCache, data_root: Path | None = None, seed: int = 0) -> None:
        self.cache = cache
        root = Path(data_root) if data_root else Path(cache.plan["data_root"])
        self.paths = [root / rel for rel in cache.plan["images"]]
        usable = sorted(set(cache.image_of[cache.ok].tolist()))
        self.images = usable
        self.samples_of = {i: np.flatnonzero((cache.image_of == i) & cache.ok).tolist() for i in usable}
        self.size = cache.plan["input_size"]
        self.tokens = cache.plan["grid"] ** 2
        self.seed = seed
        self.epoch = 0
        if not usable:
            raise TeacherCacheError(f"teacher cache {cache.folder} holds no readable image")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Any]:
        skipped = 0  # counted by the item of the unreadable image only, not by neighbours passing over it
        for offset in range(len(self.images)):
            image_index = self.images[(i + offset) % len(self.images)]
            _, image, bad = load_first_readable([self.paths[image_index]], 0)
            if offset == 0:
                skipped = bad
            if image is not None:
                break
        else:
            raise TeacherCacheError(
                f"none of the images of teacher cache {self.cache.folder} can be read now"
            )
        samples = self.samples_of[image_index]
        k = samples[self.epoch % len(samples)]
        rng = sample_rng(self.seed, self.epoch, i)
        pixels = apply_crop(image, self.cache.crops[k], bool(self.cache.flips[k]), self.size)
        return {
            "image": to_tensor(pixels),
            "target": torch.from_numpy(np.asarray(self.cache.features(k), dtype=np.float32)),
            "mask_noise": torch.from_numpy(rng.random(self.tokens, dtype=np.float32)),
            "index": image_index,
            "corrupt_images": skipped,
        }


class SamiTask(TrainTask):
    """SAMI on the shared loop; the loss is the MSE over all tokens (see :class:`trainer.sami.SamiModel`)."""

    name = "sami"
    count_keys = ("corrupt_images",)
    resume_may_change = ("teacher",)
    option_names = {
        "encoder": "--encoder",
        "teacher_source": "--teacher (a SAM checkpoint or a cache)",
        "target": "--target",
        "input_size": "--input-size",
        "mask_ratio": "--mask-ratio",
        "decoder.depth": "--decoder-depth",
        "decoder.width": "--decoder-width",
        "decoder.heads": "--decoder-heads",
    }

    export_files = (EXPORT_NAME,)

    def __init__(self, config: SamiConfig) -> None:
        self.config = config
        if config.target is not None and config.target not in OUTPUTS:
            raise StudioError(f"--target must be one of {OUTPUTS}, got {config.target!r}")
        if config.teacher is None:
            raise StudioError(
                "--teacher is required: a SAM checkpoint (sam_vit_h_4b8939.pth) or a cache folder"
            )
        self.teacher: nn.Module | None = None
        self.cache: TeacherCache | None = None
        if is_teacher_cache(config.teacher):
            self.cache = TeacherCache.open(config.teacher)
            cached = self.cache.plan.get("target", "neck")
            if config.target is not None and config.target != cached:
                raise StudioError(
                    f"--target {config.target}: the teacher cache {config.teacher} holds the teacher's "
                    f"{cached} features; leave --target out (or give --target {cached}) to train on them, "
                    f"or build a cache with --stage sami-cache --target {config.target}"
                )
            self.target = cached
            self.input_size = int(self.cache.plan["input_size"])
            self.teacher_dim = int(self.cache.plan["channels"])
        else:
            self.target = config.target or "neck"
            self.teacher = load_sam_teacher(config.teacher)
            self.input_size = config.input_size
            self.teacher_dim = self.teacher.feature_channels(self.target)
            if config.data is None:
                raise StudioError("--data is required with an online teacher: a folder of images")
        if self.input_size % 16:
            raise StudioError(f"--input-size {self.input_size} is not a multiple of 16 (the patch size)")
        self.grid = self.input_size // 16

    def input_paths(self) -> dict[str, Path | None]:
        return {"--teacher": self.config.teacher, "--data": self.config.data}

    def build_model(self) -> nn.Module:
        encoder = build_student_encoder(self.config.encoder)
        return SamiModel(encoder, self.teacher_dim, self.config.decoder, self.config.mask_ratio)

    def setup(self, device: torch.device) -> None:
        if self.teacher is not None:
            self.teacher.to(device)

    def train_dataset(self) -> Dataset:
        if self.cache is not None:
            return CachedSamiDataset(self.cache, self.config.data, seed=self.config.seed)
        crop = CropConfig(size=self.input_size, scale=self.config.crop_scale, hflip=self.config.hflip)
        paths = find_training_images(self.config.data)
        return AugmentedImages(paths, crop, seed=self.config.seed, noise_tokens=self.grid**2)

    def no_weight_decay(self) -> set[str]:
        return {"encoder.pos_embed", "decoder.mask_token"}

    def train_step(self, model: nn.Module, batch: Any, device: torch.device) -> dict[str, torch.Tensor]:
        images = batch["image"].to(device, non_blocking=True)
        noise = batch["mask_noise"].to(device, non_blocking=True)
        if "target" in batch:
            target = batch["target"].to(device, non_blocking=True)
        else:
            with torch.no_grad():
                features = self.teacher(images, output=self.target)
            target = features.flatten(2).transpose(1, 2).float()
        out = model(images, noise, target)
        out["corrupt_images"] = batch["corrupt_images"].sum()
        return out

    def describe(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "task": self.name,
            "encoder": cfg.encoder,
            "teacher": str(cfg.teacher),
            "teacher_source": "cache" if self.cache is not None else "checkpoint",
            "target": self.target,
            "input_size": self.input_size,
            "mask_ratio": cfg.mask_ratio,
            "decoder": asdict(cfg.decoder),
        }

    def export(self, model: nn.Module, out_dir: Path) -> Path:
        """Write ``out_dir/encoder.pt`` (image encoder only, published key layout)."""
        state = export_encoder_state(model.encoder)
        meta = {**self.describe(), "neck": "initialised, not trained by SAMI"}
        return atomic_torch_save({"model": state, "meta": meta}, Path(out_dir) / EXPORT_NAME)
