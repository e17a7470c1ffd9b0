"""Loading the app's model, and saying in the app's own words why a load failed.

:func:`load_for_app` is what the engine worker runs: the engine's ``load_predictor`` with two fallbacks
a desktop user expects. A CUDA device that this machine does not have gives the CPU instead (the
status bar says so), and a checkpoint the user picked is loaded as the architecture it holds (vit_t,
vit_s or tiny) rather than refused for not being the model of the settings.

:func:`failure_kind` sorts a load error into what the user can do about it: ``missing`` (no weights
installed: download or choose a file), ``device`` and ``backend`` (change them in Settings), ``file``
(the chosen file cannot be used) or ``other``. :func:`gui_failure_text` writes the matching message,
naming buttons and Settings instead of command-line options.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from efficientsam_studio.errors import CheckpointError, StudioError

MISSING, DEVICE, BACKEND, FILE, OTHER = "missing", "device", "backend", "file", "other"
ONNX_SUFFIXES = (".onnx",)


def _is_onnx_path(checkpoint: str | None) -> bool:
    return bool(checkpoint) and (
        Path(checkpoint).suffix.lower() in ONNX_SUFFIXES or Path(checkpoint).is_dir()
    )


def load_for_app(config: Any) -> Any:
    """``load_predictor`` for an ``EngineConfig``, with the fallbacks of the module docstring."""
    from efficientsam_studio.engine import load_predictor
    from efficientsam_studio.engine.device import DeviceError

    kwargs: dict[str, Any] = {"model": config.model, "device": config.device, "backend": config.backend}
    if config.checkpoint:
        kwargs["checkpoint"] = config.checkpoint
    try:
        return _load_as_file_holds(load_predictor, kwargs, config)
    except DeviceError:
        if not str(config.device).lower().startswith("cuda"):
            raise
    kwargs["device"] = "cpu"  # no such CUDA device here: the CPU, and the status bar says so
    return _load_as_file_holds(load_predictor, kwargs, config)


def _load_as_file_holds(load_predictor: Any, kwargs: dict[str, Any], config: Any) -> Any:
    try:
        return load_predictor(**kwargs)
    except CheckpointError:
        if not getattr(config, "model_from_file", False) or not config.checkpoint:
            raise
        if _is_onnx_path(config.checkpoint) or str(config.backend).startswith("onnx"):
            raise
        held = file_architecture(config.checkpoint)
        if held is None or held == config.model:
            raise
    return load_predictor(**{**kwargs, "model": held})


def cuda_available() -> bool:
    """Whether a CUDA device can run the model here (through torch, or else ONNX Runtime)."""
    try:
        import torch

        if torch.cuda.is_available():
            return True
    except ImportError:
        pass
    try:
        import onnxruntime
    except ImportError:
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def file_architecture(path: str | Path) -> str | None:
    """The EfficientSAM model (``vit_t``, ``vit_s``, ``tiny``) whose checkpoint ``path`` holds, or None."""
    try:
        from efficientsam_studio.engine.checkpoints import inspect_checkpoint
        from efficientsam_studio.model import MODEL_CONFIGS
    except ImportError:
        return None
    try:
        architecture = inspect_checkpoint(path).architecture
    except (StudioError, OSError, ValueError, RuntimeError):
        return None
    return architecture if architecture in MODEL_CONFIGS else None


def failure_kind(exc: BaseException, config: Any) -> str:
    """What kind of problem ``exc`` (raised loading ``config``) is; see the module docstring."""
    from efficientsam_studio.engine.loader import BackendError

    try:
        from efficientsam_studio.engine.device import DeviceError
    except ImportError:  # pragma: no cover - the module imports without torch
        DeviceError = ()  # noqa: N806
    try:
        from efficientsam_studio.engine.onnx_backend import OnnxModelError
    except ImportError:  # pragma: no cover
        OnnxModelError = ()  # noqa: N806
    checkpoint = getattr(config, "checkpoint", None)
    if isinstance(exc, DeviceError):
        return DEVICE
    if isinstance(exc, BackendError):
        return BACKEND
    if OnnxModelError and isinstance(exc, OnnxModelError):
        if not checkpoint:
            return MISSING
        return FILE if _is_onnx_path(checkpoint) else BACKEND
    if isinstance(exc, CheckpointError):
        return FILE if checkpoint else MISSING
    if isinstance(exc, StudioError) and "installed" in str(exc) and "pip install" in str(exc):
        return BACKEND  # neither torch nor onnxruntime, or onnxruntime missing for ONNX files
    return FILE if checkpoint else OTHER


_CLI_HINT = re.compile(r"efsam-studio |(^|\s)--[a-z]|pip install")


def sentence(text: str) -> str:
    """``text`` as a sentence: upper-case start, one full stop at the end."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?", "…")) else text + "."


def _clause(text: str) -> str:
    """``text`` after a colon: as it starts, with one full stop at the end."""
    text = text.strip()
    return text if not text or text.endswith((".", "!", "?", "…")) else text + "."


def without_cli_hints(text: str) -> str:
    """``text`` less its parts that tell the user to run a command or pass a command-line option."""
    text = re.sub(r"\s*\(e\.g\.[^)]*\)", "", text)
    parts = [part for part in re.split(r";\s+|\.\s+", text) if part and not _CLI_HINT.search(part)]
    kept = "; ".join(part.strip().rstrip(".") for part in parts)
    kept = re.sub(r",?\s*(run|or|use)\s*$", "", kept).strip(" :;,")
    return re.sub(r"choose model '(\w+)'", r"choose model \1 in Settings", kept)


def missing_weights_text(model: str) -> str:
    """Why no weights were found for ``model``, and the buttons that get them."""
    try:
        from efficientsam_studio.engine import weights
        from efficientsam_studio.paths import weights_dir

        damaged = weights.damaged_files(model)
    except (ImportError, StudioError, KeyError, ValueError):
        return f"Model {model} has no published weights; choose a checkpoint file of it."
    if damaged:
        names = ", ".join(path.name for path, _size, _published in damaged)
        return (
            f"The installed {model} weights are damaged ({names}). "
            "Download them again, or choose a checkpoint or ONNX file you have."
        )
    return (
        f"No {model} weights are installed (looked in {weights_dir()}). "
        "Download them, or choose a checkpoint or ONNX file you have."
    )


def gui_failure_text(kind: str, raw: str, config: Any) -> str:
    """A message for the app's user about a failed load of ``config`` (``raw``: the engine's message)."""
    device, backend = getattr(config, "device", "auto"), getattr(config, "backend", "auto")
    checkpoint = getattr(config, "checkpoint", None) or ""
    if kind == MISSING:
        if str(backend).startswith("onnx"):
            return (
                f"No ONNX files of model {config.model} are installed for backend {backend}. "
                "Download them, choose an ONNX file, or choose backend auto in Settings."
            )
        return missing_weights_text(config.model)
    if kind == DEVICE:
        detail = _clause(without_cli_hints(raw))
        return f"The model cannot run on device {device}: {detail} Choose device cpu or auto in Settings."
    if kind == BACKEND:
        if checkpoint and str(backend).startswith("onnx") and not _is_onnx_path(checkpoint):
            return (
                f"Backend {backend} reads ONNX files, and {Path(checkpoint).name} is a PyTorch checkpoint. "
                "Choose backend auto or torch in Settings, or choose an ONNX file."
            )
        detail = _clause(without_cli_hints(raw)) or "it is not installed."
        return f"Backend {backend} cannot be used: {detail} Choose another backend in Settings."
    if kind == FILE:
        detail = _clause(without_cli_hints(raw.replace(f"{checkpoint}: ", "", 1)))
        return (
            f"The weights file {checkpoint} cannot be used: {detail} Choose another file, or clear the "
            "file in Settings to use the installed weights."
        )
    return sentence(without_cli_hints(raw)) or "The model could not be loaded."


_DOWNLOAD_WORDING = (
    (
        "check the network connection and run the command again",
        "check the network connection and click Download again",
    ),
    ("run the command again", "click Download again"),
    ("the next run resumes from there", "the next download resumes from there"),
)


def gui_download_text(message: str) -> str:
    """A download error of the weights manager in the app's words (its own speak of the command line)."""
    for cli, gui in _DOWNLOAD_WORDING:
        message = message.replace(cli, gui)
    return sentence(without_cli_hints(message) if _CLI_HINT.search(message) else message)
