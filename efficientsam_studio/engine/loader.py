"""``load_predictor``: model name + checkpoint + device + backend -> a ready :class:`Predictor`.

Backends are looked up in a small table; another backend registers a factory with
:func:`register_backend`. A factory receives ``(model, checkpoint or None, device)`` and returns a
predictor; the torch factory uses :func:`resolve_checkpoint` when no checkpoint is given.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from efficientsam_studio.errors import CheckpointError, StudioError

if TYPE_CHECKING:  # base imports torch; the ONNX backend must load without it
    from .base import Predictor

BackendFactory = Callable[[str, "Path | None", str], "Predictor"]


class BackendError(StudioError):
    """An unknown inference backend was requested."""


def resolve_checkpoint(model: str, checkpoint: str | Path | None) -> Path:
    """``checkpoint`` as a Path, or the installed catalogue weights of ``model``.

    Raises CheckpointError saying how to get the weights when none are installed.
    """
    if checkpoint is not None:
        return Path(checkpoint).expanduser()
    try:
        from efficientsam_studio.engine import weights
    except ImportError:
        raise CheckpointError(
            f"no checkpoint given for model {model!r}; pass a checkpoint file (--checkpoint PATH)"
        ) from None
    try:
        path = weights.installed_path(model)
    except (KeyError, ValueError, StudioError) as exc:
        raise CheckpointError(
            f"model {model!r} has no published weights to install ({exc}); "
            "pass a checkpoint file (--checkpoint PATH)"
        ) from None
    if path is None:
        raise CheckpointError(weights.missing_weights_message(model))
    return Path(path)


def _torch_missing(backend: str) -> BackendError:
    return BackendError(
        f"the {backend} backend needs torch: pip install 'efficientsam-studio[train]'; "
        "or use the ONNX backend (backend 'onnx' or 'auto', with the [cpu] or [gpu] extra)"
    )


def _load_torch(model: str, checkpoint: Path | None, device: str) -> Predictor:
    try:
        from efficientsam_studio.model import get_config, load_model
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        raise _torch_missing("torch") from None

    from .device import resolve_device
    from .torch_backend import TorchPredictor

    try:
        get_config(model)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    torch_device = resolve_device(device)
    path = resolve_checkpoint(model, checkpoint)
    return TorchPredictor(load_model(model, path, torch_device), model, torch_device)


def _load_onnx(model: str, checkpoint: Path | None, device: str, precision: str = "fp32") -> Predictor:
    from .onnx_backend import load_onnx_predictor

    return load_onnx_predictor(model, checkpoint, device, precision)


def _load_torch_bf16(model: str, checkpoint: Path | None, device: str) -> Predictor:
    try:
        from .torch_bf16 import load_bf16_predictor
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        raise _torch_missing("torch-bf16") from None

    return load_bf16_predictor(model, checkpoint, device)


def _load_auto(model: str, checkpoint: Path | None, device: str) -> Predictor:
    from .onnx_backend import load_auto_predictor

    return load_auto_predictor(model, checkpoint, device)


_BACKENDS: dict[str, BackendFactory] = {
    "torch": _load_torch,
    "onnx": _load_onnx,
    "onnx-int8": lambda model, checkpoint, device: _load_onnx(model, checkpoint, device, "int8"),
    "torch-bf16": _load_torch_bf16,
    "auto": _load_auto,
}
"""Backend name -> factory; ``auto``: torch where it is installed, else ONNX Runtime (see
:func:`~.onnx_backend.load_auto_predictor`)."""


BACKEND_CHOICES = ("auto", "torch", "onnx", "torch-bf16", "onnx-int8")
"""The built-in backends, in the order the command line and the settings dialog offer them."""

BACKEND_DESCRIPTIONS = {
    "auto": "the faster exact backend available: torch where it is installed, else ONNX Runtime",
    "torch": "PyTorch in float32, CPU or CUDA: the published model's results",
    "onnx": "ONNX Runtime in float32, CPU or CUDA; needs no torch",
    "torch-bf16": "PyTorch in bfloat16, several times faster on CPUs with AMX or AVX512-BF16 and on "
    "CUDA GPUs; masks move slightly (best-mask IoU about 0.99 against float32, 0.975 at worst in tests)",
    "onnx-int8": "ONNX Runtime with an int8 encoder (from export-onnx --int8); masks move more "
    "(best-mask IoU >= 0.93 against float32)",
}
"""One line per built-in backend, for help texts and tooltips."""


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make ``load_predictor(..., backend=name)`` call ``factory(model, checkpoint, device)``."""
    _BACKENDS[name] = factory


def available_backends() -> list[str]:
    """Names accepted by ``load_predictor(backend=...)``."""
    return sorted(_BACKENDS)


def predictor_device(predictor: object) -> str:
    """The device a predictor really runs on, for reports: the torch device (``cpu``, ``cuda:0``) or
    the ONNX Runtime execution providers without the ``ExecutionProvider`` suffix (``onnx CPU``)."""
    device = getattr(predictor, "device", None)
    if device is not None:
        return str(device)
    providers = getattr(predictor, "providers", None)
    if providers:
        return "onnx " + "+".join(str(p).removesuffix("ExecutionProvider") for p in providers)
    return "unknown"


def load_predictor(
    model: str = "vit_t",
    checkpoint: str | Path | None = None,
    device: str = "auto",
    backend: str = "torch",
) -> Predictor:
    """A predictor for ``model`` (``vit_t``, ``vit_s``, ``tiny``) on ``device`` (auto | cpu | cuda)
    with ``backend`` (see :func:`available_backends`).

    Without ``checkpoint`` the weights installed by ``efsam-studio weights download`` are used.
    Raises CheckpointError (missing, corrupt or wrong file), DeviceError, or BackendError.
    """
    factory = _BACKENDS.get(backend)
    if factory is None:
        raise BackendError(f"unknown backend {backend!r}; choose one of: {', '.join(available_backends())}")
    return factory(model, None if checkpoint is None else Path(checkpoint).expanduser(), device)
