"""Choosing the torch device: ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda[:N]``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from efficientsam_studio.errors import StudioError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


class DeviceError(StudioError):
    """The requested device does not exist on this machine or is not a known name."""


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` -> ``cuda`` when ``torch.cuda.is_available()`` else ``cpu``; ``cpu``; ``cuda`` or ``cuda:N``.

    Raises DeviceError when CUDA is asked for and absent, or the name is not one of the above.
    """
    import torch

    if isinstance(name, torch.device):
        name = str(name)
    text = str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {name!r} was requested but CUDA is not available to torch {torch.__version__} "
                "on this machine (no NVIDIA GPU, or a CPU-only torch build); use --device cpu or auto"
            )
        index = text.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise DeviceError(
                f"device {name!r} does not exist; this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
        return torch.device(text)
    raise DeviceError(f"unknown device {name!r}; choose one of: {', '.join(DEVICE_CHOICES)}")
