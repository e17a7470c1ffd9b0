"""Image pre-processing of the published EfficientSAM models.

RGB uint8 ``(H, W, 3)`` -> float ``(1, 3, 1024, 1024)``: values divided by 255 into [0, 1], resized
bilinearly to 1024x1024 without keeping the aspect ratio and without padding (align_corners=False,
no antialias), then normalised with the ImageNet mean and std.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from efficientsam_studio.errors import StudioError

if TYPE_CHECKING:  # torch is imported where it is used, so the ONNX backend can check images without it
    import torch

INPUT_SIZE = 1024
"""Side of the square model input, in pixels."""


class ImageInputError(StudioError):
    """An array given as an image is not RGB uint8 of shape (H, W, 3)."""


def check_rgb_image(image: np.ndarray) -> np.ndarray:
    """Return ``image`` if it is a non-empty ``(H, W, 3)`` uint8 array; ImageInputError otherwise."""
    if not isinstance(image, np.ndarray):
        raise ImageInputError(f"the image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageInputError(
            f"the image must be RGB of shape (H, W, 3), got shape {image.shape}; "
            "load files with efficientsam_studio.annotations.images.load_image"
        )
    if image.dtype != np.uint8:
        raise ImageInputError(f"the image must be uint8 (0-255), got {image.dtype}")
    return image


def normalize(images: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB in [0, 1] -> ``(x - mean) / std`` with the ImageNet statistics."""
    from efficientsam_studio.model import PIXEL_MEAN, PIXEL_STD

    mean = images.new_tensor(PIXEL_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(PIXEL_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def preprocess_image(
    image: np.ndarray, device: torch.device | str = "cpu", size: int = INPUT_SIZE
) -> torch.Tensor:
    """RGB uint8 ``(H, W, 3)`` -> normalised float32 ``(1, 3, size, size)`` on ``device``.

    Channels are converted one at a time, so a large photo needs one float plane of its size at
    most, not three; the result is the same as converting all at once.
    """
    import torch
    import torch.nn.functional as F

    check_rgb_image(image)
    pixels = torch.from_numpy(image).to(device)  # (H, W, 3) uint8
    planes = []
    for channel in range(3):
        plane = pixels[:, :, channel].float().div_(255)[None, None]  # (1, 1, H, W) in [0, 1]
        if plane.shape[-2:] != (size, size):
            plane = F.interpolate(plane, size=(size, size), mode="bilinear", align_corners=False)
        planes.append(plane)
    return normalize(torch.cat(planes, dim=1))
