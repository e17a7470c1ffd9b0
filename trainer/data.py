"""Training images: listing, RandomResizedCrop + horizontal flip, normalisation, corrupt-file skipping.

Coordinates: a crop box is ``(x0, y0, width, height)`` in pixels of the upright RGB image (x to the right,
y down, origin at the top-left corner). The flip is applied after cropping and resizing.

Randomness of sample ``index`` in ``epoch`` comes only from ``numpy.random.default_rng([seed, epoch,
index])``, so an epoch is the same whatever the number of processes or data-loader workers, and a resumed
run sees exactly the samples an uninterrupted run would.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from efficientsam_studio.annotations.images import list_images, load_image
from efficientsam_studio.errors import ImageLoadError, StudioError
from efficientsam_studio.model import PIXEL_MEAN, PIXEL_STD


class TrainingDataError(StudioError):
    """The training data folder cannot be used (missing, empty, no readable images)."""


@dataclass(frozen=True)
class CropConfig:
    """RandomResizedCrop + flip: output ``size`` x ``size`` pixels, crop area fraction ``scale`` of the
    image, aspect ratio (width / height) in ``ratio`` (log-uniform), flip probability ``hflip``."""

    size: int = 224
    scale: tuple[float, float] = (0.2, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5


def find_training_images(root: str | Path) -> list[Path]:
    """Every image under ``root``, recursively: ImageNet-style class folders or a plain folder.

    Labels (the class folder names) are not used. Sorted, so the index of an image is stable.
    """
    root = Path(root)
    try:
        paths = list_images(root, recursive=True)
    except ImageLoadError as exc:
        raise TrainingDataError(f"--data {root}: {exc}") from exc
    if not paths:
        raise TrainingDataError(
            f"--data {root} holds no images; give a folder of images or of class folders "
            "(DIR/<class>/<image>.jpg, as ImageNet's train folder)"
        )
    return paths


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one sample in one epoch."""
    return np.random.default_rng([int(seed), int(epoch), int(index)])


def sample_crop(
    height: int, width: int, rng: np.random.Generator, scale: Sequence[float], ratio: Sequence[float]
) -> tuple[int, int, int, int]:
    """A RandomResizedCrop box ``(x0, y0, w, h)`` inside an image of ``height`` x ``width`` pixels.

    Ten tries at a random area fraction and log-uniform aspect ratio; if none fits, the largest centred
    box whose aspect ratio lies in ``ratio``.
    """
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            y0 = int(rng.integers(0, height - h + 1))
            x0 = int(rng.integers(0, width - w + 1))
            return x0, y0, w, h
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def apply_crop(image: np.ndarray, box: Sequence[int], flip: bool, size: int) -> np.ndarray:
    """Crop ``box`` (x0, y0, w, h) from an ``(H, W, 3)`` uint8 image, resize to ``size`` x ``size``
    (area averaging when shrinking, bilinear when enlarging) and mirror left-right if ``flip``."""
    x0, y0, w, h = (int(v) for v in box)
    patch = image[y0 : y0 + h, x0 : x0 + w]
    interp = cv2.INTER_AREA if (w >= size and h >= size) else cv2.INTER_LINEAR
    out = cv2.resize(patch, (size, size), interpolation=interp)
    if flip:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 RGB -> ``(3, H, W)`` float32, scaled to 0..1 and normalised by EfficientSAM's
    PIXEL_MEAN/PIXEL_STD (SAM's 0..255 mean and std divided by 255 are the same numbers)."""
    x = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(PIXEL_MEAN).view(3, 1, 1)
    std = torch.tensor(PIXEL_STD).view(3, 1, 1)
    return (x - mean) / std


def load_first_readable(paths: Sequence[Path], index: int) -> tuple[int, np.ndarray | None, int]:
    """Load ``paths[index]``, or the next readable image after it (wrapping around).

    Returns ``(used_index, image, skipped)``, ``skipped`` counting the unreadable files passed over; the
    image is ``None`` only when no file at all can be read. Each unreadable file is reported by a warning.
    """
    skipped = 0
    for offset in range(len(paths)):
        j = (index + offset) % len(paths)
        try:
            return j, load_image(paths[j]), skipped
        except ImageLoadError as exc:
            skipped += 1
            warnings.warn(f"skipping unreadable training image: {exc}", stacklevel=2)
    return index, None, skipped


class AugmentedImages(Dataset):
    """Images under a folder, each drawn as a random resized crop, possibly flipped.

    Item ``i``: ``{"image": (3, S, S) float32 normalised, "index": int (the image used), "crop": (4,) int64
    (x0, y0, w, h), "flip": bool, "corrupt_images": int (1 when image ``i`` could not be read)}`` plus
    ``"mask_noise": (noise_tokens,) float32`` uniform noise when ``noise_tokens > 0`` (SAMI's masking).
    An unreadable file is replaced by the next readable one; it is counted by its own item only (once an
    epoch), not again by a neighbouring item that passes over it.
    """

    def __init__(self, paths: Sequence[Path], crop: CropConfig, seed: int = 0, noise_tokens: int = 0) -> None:
        self.paths = list(paths)
        self.crop = crop
        self.seed = seed
        self.noise_tokens = noise_tokens
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        rng = sample_rng(self.seed, self.epoch, i)
        used, image, _ = load_first_readable(self.paths, i)
        if image is None:
            raise TrainingDataError(f"none of the {len(self.paths)} training images can be read")
        box = sample_crop(image.shape[0], image.shape[1], rng, self.crop.scale, self.crop.ratio)
        flip = bool(rng.random() < self.crop.hflip)
        item: dict[str, Any] = {
            "image": to_tensor(apply_crop(image, box, flip, self.crop.size)),
            "index": used,
            "crop": torch.tensor(box, dtype=torch.int64),
            "flip": flip,
            "corrupt_images": int(used != i),
        }
        if self.noise_tokens:
            item["mask_noise"] = torch.from_numpy(rng.random(self.noise_tokens, dtype=np.float32))
        return item
