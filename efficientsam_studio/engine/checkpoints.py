"""Reading checkpoint files safely and telling what architecture they hold.

Files are read with ``torch.load(weights_only=True, map_location="cpu")``: tensors and plain containers
only, never arbitrary pickled code. Accepted forms: ``{"model": state_dict}`` (the published format),
a bare state_dict, or a ``.zip`` archive holding one such ``.pt`` (how the published vit_s is shipped).
Every failure raises :class:`~efficientsam_studio.errors.CheckpointError` naming the file and the problem;
an ONNX model given as a checkpoint is recognised from its first bytes and named as one, a file of
``efsam-studio train`` that is not EfficientSAM weights (a training checkpoint, a SAMI encoder export) is
named as such with the file to use instead, and for a damaged file of the weights store the message gives
the command that downloads it again.
"""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from efficientsam_studio.errors import CheckpointError

if TYPE_CHECKING:
    import torch

SAM_ENCODERS = {768: "sam_vit_b", 1024: "sam_vit_l", 1280: "sam_vit_h"}
"""SAM image encoder width -> name, for recognising SAM checkpoints given by mistake."""

_SAM_TITLES = {"sam_vit_b": "SAM ViT-B", "sam_vit_l": "SAM ViT-L", "sam_vit_h": "SAM ViT-H"}
_LIST_AT_MOST = 5


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint file holds: ``architecture`` is a registry name (``vit_t``, ``vit_s``,
    ``tiny``), a SAM name (``sam_vit_b``/``l``/``h``) or ``unknown``."""

    path: Path
    architecture: str
    num_tensors: int
    num_parameters: int


def _torch_archive_members(names: list[str]) -> bool:
    return any(n.endswith("data.pkl") or n == "version" or n.endswith("/version") for n in names)


def _open_payload(path: Path) -> io.BytesIO | Path:
    """The bytes ``torch.load`` should read: the file itself, or the ``.pt`` inside a plain zip."""
    if not zipfile.is_zipfile(path):
        return path
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if _torch_archive_members(names):
                return path  # a torch.save file is itself a zip archive
            inner = [n for n in names if n.endswith((".pt", ".pth")) and not n.startswith("__MACOSX/")]
            if len(inner) != 1:
                found = ", ".join(names[:_LIST_AT_MOST]) or "nothing"
                raise CheckpointError(
                    f"{path}: the zip archive should hold exactly one .pt checkpoint, found: {found}"
                )
            return io.BytesIO(archive.read(inner[0]))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise CheckpointError(
            f"{path}: the zip archive is truncated or corrupt ({exc}); {_reread_hint(path)}"
        ) from exc


_ONNX_MODEL_TAGS = frozenset({0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72})
"""Protobuf tags of the ``ModelProto`` fields that follow ``ir_version`` (producer, domain, graph, ...)."""


def looks_like_onnx(head: bytes) -> bool:
    """Whether ``head``, the first bytes of a file, starts an ONNX model rather than a torch checkpoint.

    An ONNX ``ModelProto`` is protobuf starting with field 1 (``ir_version``, a small varint: ``08 nn``)
    followed by another of its fields, usually the producer name (``12 07 pytorch``); a torch checkpoint
    starts with ``PK\\x03\\x04`` (zip) or ``\\x80`` (pickle).
    """
    if len(head) < 3 or head[0] != 0x08:
        return False
    return 1 <= head[1] < 0x80 and head[2] in _ONNX_MODEL_TAGS


def _reread_hint(path: Path) -> str:
    """How to get a good copy of ``path``: the download command for a file of the weights store, else
    a general word."""
    try:
        from efficientsam_studio.engine.weights_catalogue import CATALOGUE
        from efficientsam_studio.paths import weights_dir

        store = weights_dir().resolve()
        if path.resolve().parent == store:
            for name, entry in CATALOGUE.items():
                if entry.format == "torch" and path.name == entry.files[0].installed_name:
                    return f"download it again: efsam-studio weights download {name} --force"
    except (ImportError, OSError, RuntimeError):
        pass
    return "download or copy it again"


def _torch_detail(text: str) -> str:
    """The useful first sentence of a torch error, without the notes meant for torch's developers."""
    text = re.split(r"\s*This is an internal \w+ error", text, maxsplit=1)[0]
    return _short(text)


def read_checkpoint(path: str | Path, what: str | None = None) -> Any:
    """Unpickle ``path`` with ``weights_only=True`` onto the CPU and return the stored object.

    Every failure is a one-line CheckpointError naming the file (after ``what``, e.g. ``"teacher
    checkpoint"``, when given) and the problem, without the advice torch's own errors carry."""
    import torch

    path = Path(path)
    subject = f"{what} {path}" if what else str(path)
    if not path.exists():
        raise CheckpointError(f"{subject}: no such checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{subject}: is not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{subject}: the file is empty; {_reread_hint(path)}")
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise CheckpointError(f"{subject}: cannot be read ({exc.strerror or exc})") from None
    if looks_like_onnx(head):
        hint = "" if what else ": use --backend onnx"
        raise CheckpointError(f"{subject} is an ONNX model, not a torch checkpoint{hint}")
    payload = _open_payload(path)
    try:
        return torch.load(payload, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        match = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if match:
            raise CheckpointError(
                f"{subject}: holds Python objects besides tensors ({match.group(1)}), which are not loaded "
                "for safety; save the weights as torch.save({'model': model.state_dict()}, path)"
            ) from exc
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)
        reason = detail.group(1).strip() if detail else _short(text)
        raise CheckpointError(
            f"{subject}: is corrupt, not a readable checkpoint ({_short(reason)}); {_reread_hint(path)}"
        ) from exc
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile, KeyError) as exc:
        raise CheckpointError(
            f"{subject}: is truncated or corrupt and cannot be read as a torch checkpoint "
            f"({_torch_detail(str(exc))}); {_reread_hint(path)}"
        ) from exc


def _short(text: str, limit: int = 160) -> str:
    first = text.strip().splitlines()[0] if text.strip() else "no details"
    return first if len(first) <= limit else first[: limit - 3] + "..."


TRAINER_CHECKPOINT_FORMAT = "efsam-trainer-checkpoint"
"""The ``format`` entry of the checkpoints ``efsam-studio train`` writes (RUN_DIR/checkpoint.pt)."""

SAMI_EXPORT = "encoder.pt"
"""The file a SAMI run of ``efsam-studio train`` exports its encoder to (RUN_DIR/encoder.pt)."""
FINETUNE_EXPORT = "efficientsam.pt"
"""The file a finetuning run exports its EfficientSAM weights to (RUN_DIR/efficientsam.pt)."""

_TRAINER_EXPORTS = {"sami": SAMI_EXPORT, "finetune": FINETUNE_EXPORT}


def _training_file_problem(obj: Any, path: Path) -> str | None:
    """Why ``obj`` (a loaded file) is a file of ``efsam-studio train`` rather than EfficientSAM weights, and
    which file to use instead; None for anything else."""
    if not isinstance(obj, dict):
        return None
    if obj.get("format") == TRAINER_CHECKPOINT_FORMAT:
        task = obj.get("task")
        export = path.parent / _TRAINER_EXPORTS.get(str(task), FINETUNE_EXPORT)
        if task == "sami":
            return (
                f"{path}: is a SAMI training checkpoint (for --resume), not EfficientSAM weights; its run "
                f"exports the encoder to {export}: finetune it with efsam-studio train --init sami:{export}"
            )
        return (
            f"{path}: is a training checkpoint (for --resume), not EfficientSAM weights; use the weights "
            f"its run exported: {export}"
        )
    meta, model = obj.get("meta"), obj.get("model")
    if isinstance(meta, dict) and meta.get("task") == "sami" and isinstance(model, dict):
        return (
            f"{path}: holds a SAMI-pretrained image encoder only, not a whole EfficientSAM model; "
            f"finetune it first: efsam-studio train --init sami:{path}"
        )
    return None


def extract_state_dict(obj: Any, path: str | Path, encoder_only: bool = False) -> dict[str, torch.Tensor]:
    """The state_dict inside a loaded checkpoint object (``{"model": sd}`` or a bare ``sd``).

    A ``module.`` prefix on every key (saved from DistributedDataParallel) is removed. Files of
    ``efsam-studio train`` that are not EfficientSAM weights raise a CheckpointError naming the file to
    use instead: a training checkpoint (``RUN_DIR/checkpoint.pt``) and, unless ``encoder_only``, a SAMI
    encoder export (``encoder.pt``, which only ``--init sami:PATH`` reads).
    """
    import torch

    problem = _training_file_problem(obj, Path(path))
    if problem is not None and not (encoder_only and obj.get("format") != TRAINER_CHECKPOINT_FORMAT):
        raise CheckpointError(problem)
    candidate = obj.get("model", obj) if isinstance(obj, dict) else obj
    if not isinstance(candidate, dict) or not candidate:
        kind = type(obj).__name__
        raise CheckpointError(f"{path}: holds a {kind}, not a state dict of model weights")
    not_tensors = [k for k, v in candidate.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        shown = ", ".join(map(str, not_tensors[:_LIST_AT_MOST]))
        raise CheckpointError(
            f"{path}: is not a state dict of model weights (entries that are not tensors: {shown}); "
            "expected {'model': state_dict} or a bare state_dict"
        )
    if all(str(k).startswith("module.") for k in candidate):
        candidate = {k[len("module.") :]: v for k, v in candidate.items()}
    return candidate


def identify_architecture(state_dict: dict[str, torch.Tensor]) -> str:
    """``vit_t`` / ``vit_s`` / ``tiny`` / ``sam_vit_b`` / ``sam_vit_l`` / ``sam_vit_h`` / ``unknown``.

    EfficientSAM has a ``(1, 197, C)`` ``pos_embed`` and global attention; SAM has a
    ``(1, 64, 64, C)`` ``pos_embed`` and relative positions (``attn.rel_pos_h``).
    """
    from efficientsam_studio.model import MODEL_CONFIGS

    pos = state_dict.get("image_encoder.pos_embed")
    is_sam = any(k.startswith("image_encoder.blocks.") and k.endswith("attn.rel_pos_h") for k in state_dict)
    if pos is not None and pos.ndim == 4:
        is_sam = True
    if is_sam:
        width = int(pos.shape[-1]) if pos is not None else -1
        return SAM_ENCODERS.get(width, "unknown")
    if pos is None or pos.ndim != 3 or "prompt_encoder.invalid_points.weight" not in state_dict:
        return "unknown"
    width = int(pos.shape[-1])
    depth = len({k.split(".")[2] for k in state_dict if k.startswith("image_encoder.blocks.")})
    for name, config in MODEL_CONFIGS.items():
        if (config.encoder_dim, config.encoder_depth) == (width, depth):
            return name
    return "unknown"


def _expected_shapes(name: str) -> dict[str, tuple[int, ...]]:
    import torch

    from efficientsam_studio.model import build_model

    with torch.device("meta"):
        model = build_model(name)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def validate_state_dict(state_dict: dict[str, torch.Tensor], name: str, path: str | Path) -> None:
    """Check that ``state_dict`` fits model ``name`` key for key and shape for shape.

    Raises CheckpointError saying what the file is instead (a SAM checkpoint, another EfficientSAM
    size) or listing a few missing, unexpected or mis-shaped entries.
    """
    from efficientsam_studio.model import get_config

    try:
        get_config(name)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    architecture = identify_architecture(state_dict)
    if architecture in _SAM_TITLES:
        raise CheckpointError(
            f"{path}: this looks like a {_SAM_TITLES[architecture]} checkpoint, not EfficientSAM; "
            "use efficient_sam_vitt.pt or efficient_sam_vits.pt "
            "(SAM weights serve only as a training teacher)"
        )
    if architecture not in ("unknown", name):
        raise CheckpointError(
            f"{path}: holds an EfficientSAM {architecture} checkpoint, but model {name!r} was requested; "
            f"choose model {architecture!r} (e.g. --model {architecture})"
        )
    expected = _expected_shapes(name)
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} instead of {shape}"
        for k, shape in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != shape
    ]
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong)):
        if items:
            more = f" (+{len(items) - _LIST_AT_MOST} more)" if len(items) > _LIST_AT_MOST else ""
            problems.append(f"{label}: {', '.join(items[:_LIST_AT_MOST])}{more}")
    if problems:
        raise CheckpointError(
            f"{path}: does not match the EfficientSAM {name} layout; " + "; ".join(problems)
        )


def load_state_dict_file(path: str | Path, name: str) -> dict[str, torch.Tensor]:
    """Read ``path`` and return its state_dict after checking it fits model ``name``."""
    state_dict = extract_state_dict(read_checkpoint(path), path)
    validate_state_dict(state_dict, name, path)
    return state_dict


def inspect_checkpoint(path: str | Path) -> CheckpointInfo:
    """Read ``path`` and report its architecture and size without building a model."""
    state_dict = extract_state_dict(read_checkpoint(path), path)
    return CheckpointInfo(
        path=Path(path),
        architecture=identify_architecture(state_dict),
        num_tensors=len(state_dict),
        num_parameters=int(sum(v.numel() for v in state_dict.values())),
    )
