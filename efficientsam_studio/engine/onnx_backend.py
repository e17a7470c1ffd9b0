"""The ONNX Runtime backend: :class:`OnnxPredictor`, with numpy, OpenCV and onnxruntime only (no torch).

It runs two kinds of encoder/decoder pairs, recognised by their input names:

- this project's export (``efsam-studio export-onnx``, contracts in ``onnx_export``): encoder input
  ``images`` (RGB 0..255 resized to 1024x1024 here with OpenCV); the decoder's per-image context from
  ``<model>_context.onnx`` beside the decoder, computed once per image (format 2; format 1 decoders take
  ``image_embeddings`` and prepare it on every call), then decoder inputs ``point_coords (Q, N, 2)``,
  ``point_labels (Q, N)``, ``orig_im_size``; Q prompts per call.
- the published pair (``efficient_sam_vitt_encoder.onnx`` / ``_decoder.onnx``): encoder input
  ``batched_images (B, 3, H, W)`` in [0, 1] at the original size (resize and normalisation inside);
  decoder inputs ``image_embeddings``, ``batched_point_coords (1, 1, N, 2)``, ``batched_point_labels
  (1, 1, N)``, ``orig_im_size``; outputs by position (masks, IoU, low-res logits), one prompt per call.
  Only its low-res logits are used, so masks follow the same rule as every backend: bicubic > 0.

The model size a pair holds is read from the files where they tell it: an export's metadata
(``efsam.model``), a published encoder's SHA-256 (the catalogue's digests) or, failing that, its published
file name. A pair of another size than the model asked for is refused, as the torch backend refuses
such a checkpoint; files that do not tell are taken for the model asked for.

Where files come from (``load_onnx_predictor``):

- ``checkpoint`` = an encoder ``.onnx`` file (its decoder is the sibling file), or a folder holding a pair;
- ``checkpoint`` = a torch checkpoint: the export of exactly that file in the weights store,
  ``weights_dir()/onnx/<model>-<first 16 hex of the file's SHA-256>/`` (``efsam-studio export-onnx``
  writes there when no ``--out`` is given);
- no checkpoint: the export of the installed catalogue weights (what ``efsam-studio export-onnx --model
  vit_t`` writes), else the installed published pair (``efsam-studio weights download vit_t_onnx``).
  Exports of other checkpoints are never taken for the catalogue weights: when the store holds only
  those, the error names their folders and says to pass the checkpoint they were made from (or the
  folder).

For ``precision="int8"`` the encoder ``<model>_encoder.int8.onnx`` (``export-onnx --int8``) must be there
too; when only it is missing, the error says so.

Execution providers: ``device="auto"`` uses CUDA when onnxruntime-gpu provides it, else the CPU;
``"cuda"`` requires it; ``"cpu"`` forces the CPU. CPU sessions use all graph optimisations and one
intra-op thread per physical core.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from efficientsam_studio.errors import CheckpointError, StudioError

from .cache import file_checksum
from .device import DeviceError
from .numpy_predictor import NumpyPredictor

INPUT_SIZE = 1024
PRECISIONS = ("fp32", "int8")
PUBLISHED_NAMES = {"vit_t": "efficient_sam_vitt", "vit_s": "efficient_sam_vits"}


class OnnxModelError(CheckpointError):
    """An ONNX file is missing, unreadable, or not an EfficientSAM encoder/decoder."""


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise StudioError(
            "the ONNX backend needs onnxruntime: pip install 'efficientsam-studio[cpu]' "
            "(or [gpu] for CUDA), or use backend='torch'"
        ) from None
    return onnxruntime


def physical_cores() -> int:
    """Physical CPU cores available to this process (hyper-threads not counted); at least 1."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:
        available = os.cpu_count() or 1
    try:
        cores: set[tuple[str, str]] = set()
        physical = core = ""
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                name, _, value = line.partition(":")
                name, value = name.strip(), value.strip()
                if name == "physical id":
                    physical = value
                elif name == "core id":
                    core = value
                elif not name and core:
                    cores.add((physical, core))
                    physical = core = ""
        if core:
            cores.add((physical, core))
        if cores:
            return max(1, min(available, len(cores)))
    except OSError:
        pass
    return max(1, available)


def providers_for(device: str) -> list[str]:
    """ONNX Runtime execution providers for ``device`` (auto | cpu | cuda); DeviceError if unavailable."""
    available = _ort().get_available_providers()
    text = str(device).strip().lower()
    if text == "cpu":
        return ["CPUExecutionProvider"]
    if text == "auto":
        return (["CUDAExecutionProvider"] if "CUDAExecutionProvider" in available else []) + [
            "CPUExecutionProvider"
        ]
    if text == "cuda" or text.startswith("cuda:"):
        if "CUDAExecutionProvider" not in available:
            raise DeviceError(
                "device 'cuda' was requested but this onnxruntime has no CUDA provider "
                f"(available: {', '.join(available)}); install onnxruntime-gpu instead of onnxruntime, "
                "or use --device cpu"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise DeviceError(f"unknown device {device!r}; choose one of: auto, cpu, cuda")


def make_session(path: str | Path, providers: list[str], threads: int | None = None) -> Any:
    """An InferenceSession with all graph optimisations and ``threads`` (default: physical cores)."""
    ort = _ort()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or physical_cores()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise OnnxModelError(f"{path}: cannot be loaded by ONNX Runtime ({exc})") from None


def resize_for_encoder(image: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` -> float32 ``(1, 3, size, size)``, values 0..255, bilinear (half-pixel
    centres, no antialias: the published preprocessing, whose /255 and normalisation are in the graph)."""
    pixels = image.astype(np.float32)
    if pixels.shape[:2] != (size, size):
        pixels = cv2.resize(pixels, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))[None]


class OnnxPredictor(NumpyPredictor):
    """SamPredictor-style predictor on an ONNX encoder and decoder (API of ``NumpyPredictor``).

    Args:
        encoder_path, decoder_path: the pair (this project's export or the published one).
        model_name: registry name for reports; read from the files' metadata when they carry it.
        device: auto | cpu | cuda (execution providers, see :func:`providers_for`).
        threads: CPU intra-op threads (default: physical cores).

    Attributes: ``kind`` ("export" or "published"), ``precision`` ("fp32", "int8"), ``providers``
    (those the sessions use), ``model_key`` (cache identity of the encoder).
    """

    backend = "onnx"

    def __init__(
        self,
        encoder_path: str | Path,
        decoder_path: str | Path,
        model_name: str | None = None,
        device: str = "auto",
        threads: int | None = None,
    ) -> None:
        self.encoder_path, self.decoder_path = Path(encoder_path), Path(decoder_path)
        for path in (self.encoder_path, self.decoder_path):
            if not path.is_file():
                raise OnnxModelError(f"{path}: no such ONNX file")
        providers = providers_for(device)
        self.encoder = make_session(self.encoder_path, providers, threads)
        self.decoder = make_session(self.decoder_path, providers, threads)
        self.providers = self.encoder.get_providers()
        enc_inputs = [i.name for i in self.encoder.get_inputs()]
        dec_inputs = [i.name for i in self.decoder.get_inputs()]
        meta = self.encoder.get_modelmeta().custom_metadata_map
        if enc_inputs == ["images"] and "point_coords" in dec_inputs:
            self.kind = "export"
            self.precision = meta.get("efsam.precision", "fp32")
            name = _check_model(self.encoder_path, meta.get("efsam.model"), model_name)
            weights = meta.get("efsam.weights_sha256") or f"file-{file_checksum(self.encoder_path)}"
            self.model_key = f"{name}:{weights}:{self.precision}"
        elif enc_inputs == ["batched_images"] and "batched_point_coords" in dec_inputs:
            self.kind = "published"
            self.precision = "fp32"
            digest = file_checksum(self.encoder_path)
            name = _check_model(self.encoder_path, published_model(self.encoder_path, digest), model_name)
            self.model_key = f"{name}:published-onnx-{digest[:16]}:fp32"
        else:
            raise OnnxModelError(
                f"{self.encoder_path} / {self.decoder_path}: not an EfficientSAM encoder/decoder pair "
                f"(encoder inputs {enc_inputs}, decoder inputs {dec_inputs}); use files written by "
                "efsam-studio export-onnx or the published efficient_sam_*_encoder/decoder.onnx"
            )
        self._dec_outputs = [o.name for o in self.decoder.get_outputs()]
        # format 2: the decoder takes the per-image context, which its own graph computes
        self.context_graph = None
        if self.kind == "export" and "image_embeddings" not in dec_inputs:
            context_path = context_beside(self.decoder_path)
            if not context_path.is_file():
                raise OnnxModelError(
                    f"{self.decoder_path} needs its per-image context graph {context_path.name} beside it; "
                    "export the model again with efsam-studio export-onnx"
                )
            self.context_graph = make_session(context_path, providers, threads)
            self._context_names = [o.name for o in self.context_graph.get_outputs()]
        self._context: tuple[np.ndarray, dict[str, np.ndarray]] | None = None
        super().__init__(name, decode_chunk=16 if self.kind == "export" else 1)

    def prepare_decoding(self) -> None:
        """Compute the decoder's per-image context of the current image now (format 2 exports), so the
        first prompt does not wait for it."""
        self._image_feeds()

    def _image_feeds(self) -> dict[str, np.ndarray]:
        """The decoder's image inputs for the current embedding (its context, made once per image)."""
        embedding = self._embedding
        if self.context_graph is None:
            return {"image_embeddings": embedding}
        if self._context is None or self._context[0] is not embedding:
            outputs = self.context_graph.run(None, {"image_embeddings": embedding})
            self._context = (embedding, dict(zip(self._context_names, outputs, strict=True)))
        return self._context[1]

    def reset_image(self) -> None:
        super().reset_image()
        self._context = None

    def _encode(self, image: np.ndarray) -> np.ndarray:
        if self.kind == "export":
            feed = {"images": resize_for_encoder(image)}
        else:
            pixels = image.transpose(2, 0, 1)[None].astype(np.float32) * np.float32(1 / 255)
            feed = {"batched_images": pixels}
        return np.ascontiguousarray(self.encoder.run(None, feed)[0], dtype=np.float32)

    def _decode(self, coords: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        size = np.asarray(self.original_size, dtype=np.int64)
        if self.kind == "export":
            # only the columns some prompt uses: the graph decodes all padding as one token
            used = max(1, int((labels != -1).sum(axis=1).max())) if len(labels) else labels.shape[1]
            feed = {
                **self._image_feeds(),
                "point_coords": np.ascontiguousarray(coords[:, :used], dtype=np.float32),
                "point_labels": np.ascontiguousarray(labels[:, :used], dtype=np.float32),
                "orig_im_size": size,
            }
            logits, iou = self.decoder.run(None, feed)
            return logits, iou
        logit_parts, iou_parts = [], []
        for c, lab in zip(coords, labels, strict=True):
            # the published graph pads after scaling to 1024-space; padding given here would be scaled
            real = lab != -1
            feed = {
                "image_embeddings": self._embedding,
                "batched_point_coords": c[real][None, None].astype(np.float32),
                "batched_point_labels": lab[real][None, None].astype(np.float32),
                "orig_im_size": size,
            }
            outputs = self.decoder.run(self._dec_outputs[1:3], feed)
            iou_parts.append(outputs[0].reshape(-1))
            logit_parts.append(outputs[1].reshape(-1, *outputs[1].shape[-2:]))
        return np.stack(logit_parts), np.stack(iou_parts)


def published_model(encoder: Path, sha256: str) -> str | None:
    """The model of a published ONNX encoder: from its digest when it is the catalogue's file, else from
    its published file name (``efficient_sam_vitt_encoder.onnx``); ``None`` when neither tells."""
    from .weights_catalogue import CATALOGUE

    for entry in CATALOGUE.values():
        if entry.format == "onnx" and entry.files[0].checksum is not None:
            if entry.files[0].checksum.value.lower() == sha256:
                return entry.model
    return next((m for m, prefix in PUBLISHED_NAMES.items() if encoder.name.startswith(prefix)), None)


def _check_model(encoder: Path, recorded: str | None, requested: str | None) -> str:
    """The model name of an ONNX pair: the one its files record (export metadata, published digest or
    name), which must be the one requested; the requested one when the files do not tell."""
    if recorded and requested and recorded != requested:
        raise OnnxModelError(
            f"{encoder}: holds an EfficientSAM {recorded} ONNX model, but model {requested!r} was requested; "
            f"choose model {recorded!r} (e.g. --model {recorded})"
        )
    return recorded or requested or "unknown"


# -- finding the files -------------------------------------------------------------------------------


def export_dir_for(model: str, checkpoint: str | Path) -> Path:
    """Where ``export-onnx`` puts (and the backend looks for) the export of a torch checkpoint file."""
    from efficientsam_studio.paths import weights_dir

    return weights_dir() / "onnx" / f"{model}-{file_checksum(checkpoint)[:16]}"


def context_beside(decoder: Path) -> Path:
    """The per-image context graph of an exported decoder: ``<model>_context.onnx`` beside it."""
    return decoder.with_name(decoder.name.replace("_decoder.onnx", "_context.onnx"))


def _decoder_beside(encoder: Path) -> Path:
    name = encoder.name
    for precision in PRECISIONS[1:]:
        name = name.replace(f"_encoder.{precision}.onnx", "_encoder.onnx")
    return encoder.with_name(name.replace("_encoder", "_decoder"))


def _pair_in_dir(folder: Path, model: str, precision: str) -> tuple[Path, Path] | None:
    suffix = "" if precision == "fp32" else f".{precision}"
    candidates = [(folder / f"{model}_encoder{suffix}.onnx", folder / f"{model}_decoder.onnx")]
    if model in PUBLISHED_NAMES and precision == "fp32":
        tag = PUBLISHED_NAMES[model]
        candidates.append((folder / f"{tag}_encoder.onnx", folder / f"{tag}_decoder.onnx"))
    return next(((e, d) for e, d in candidates if e.is_file() and d.is_file()), None)


def _missing_int8(folder: Path, model: str, precision: str) -> bool:
    """True when ``folder`` holds the fp32 export of ``model`` but ``precision`` int8 was asked for."""
    return precision == "int8" and _pair_in_dir(folder, model, "fp32") is not None


def _int8_hint(folder: Path, model: str, command: str) -> str:
    return (
        f"the ONNX export in {folder} has no int8 encoder ({model}_encoder.int8.onnx): run {command} --int8 "
        "to write it, or use backend 'onnx' for the float32 encoder"
    )


def _other_exports(model: str) -> list[Path]:
    """Export folders of ``model`` in the weights store (one per exported checkpoint), sorted."""
    from efficientsam_studio.paths import weights_dir

    root = weights_dir() / "onnx"
    try:
        folders = sorted(p for p in root.glob(f"{model}-*") if p.is_dir())
    except OSError:
        return []
    return [folder for folder in folders if _pair_in_dir(folder, model, "fp32") is not None]


def _stored_checkpoint(model: str) -> Path | None:
    """The store's torch checkpoint of ``model`` even where it is not counted as installed (a size other
    than the published one): an export of exactly its bytes was made from a file that loaded."""
    from efficientsam_studio.paths import weights_dir

    from .weights_catalogue import CATALOGUE

    entry = CATALOGUE.get(model)
    if entry is None or entry.format != "torch":
        return None
    path = weights_dir() / entry.files[0].installed_name
    return path if path.is_file() else None


def find_onnx_pair(
    model: str, checkpoint: str | Path | None = None, precision: str = "fp32"
) -> tuple[Path, Path]:
    """``(encoder, decoder)`` for ``model`` following the rules in this module's docstring.

    Raises OnnxModelError saying how to make or get the files when there are none.
    """
    if precision not in PRECISIONS:
        raise OnnxModelError(f"unknown ONNX precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if path.suffix == ".onnx":
            return path, _decoder_beside(path)
        if path.is_dir():
            pair = _pair_in_dir(path, model, precision)
            if pair is None:
                if _missing_int8(path, model, precision):
                    raise OnnxModelError(
                        f"{path}: holds the float32 ONNX pair of {model} but no int8 encoder "
                        f"({model}_encoder.int8.onnx); export it with efsam-studio export-onnx --int8"
                    )
                raise OnnxModelError(f"{path}: holds no {precision} ONNX pair of {model}")
            return pair
        if not path.is_file():
            raise OnnxModelError(f"{path}: no such file")
        store = export_dir_for(model, path)
        pair = _pair_in_dir(store, model, precision)
        if pair is None:
            command = f"efsam-studio export-onnx --model {model} --checkpoint {path}"
            if _missing_int8(store, model, precision):
                raise OnnxModelError(_int8_hint(store, model, command))
            flag = " --int8" if precision == "int8" else ""
            raise OnnxModelError(f"{path} has not been exported to ONNX yet: run {command}{flag}")
        return pair
    from . import weights

    installed = None
    try:
        installed = weights.installed_path(model)
    except StudioError:
        installed = None
    stored = installed or _stored_checkpoint(model)
    store = None if stored is None else export_dir_for(model, stored)
    if store is not None:
        pair = _pair_in_dir(store, model, precision)
        if pair is not None:
            return pair
    published = None
    if precision == "fp32":
        try:
            published = weights.installed_onnx(model)
        except StudioError:
            published = None
    if published is not None:
        return published
    if store is not None and _missing_int8(store, model, precision):
        raise OnnxModelError(_int8_hint(store, model, f"efsam-studio export-onnx --model {model}"))
    flag = " --int8" if precision == "int8" else ""
    if installed is not None:
        hint = f"run efsam-studio export-onnx --model {model}{flag}"
    elif precision == "fp32":
        hint = f"run efsam-studio weights download {model}_onnx, or download {model} and export it"
    else:
        hint = f"download {model} (efsam-studio weights download {model}) and export it with --int8"
    others = [folder for folder in _other_exports(model) if folder != store]
    if others:
        listed = ", ".join(str(folder) for folder in others[:3]) + (" ..." if len(others) > 3 else "")
        hint += (
            f". The weights store holds ONNX exports of {'other ' if installed is not None else ''}{model} "
            f"checkpoints ({listed}); to use one, "
            "pass the checkpoint it was exported from (--checkpoint PATH) or its folder"
        )
    what = "no ONNX files" if precision == "fp32" else "no int8 ONNX files"
    whose = f"the installed {model} weights" if installed is not None else f"model {model!r}"
    raise OnnxModelError(f"{what} for {whose}: {hint}")


def load_onnx_predictor(
    model: str, checkpoint: str | Path | None = None, device: str = "auto", precision: str = "fp32"
) -> OnnxPredictor:
    """The factory behind ``load_predictor(backend="onnx")`` (and ``"onnx-int8"``)."""
    encoder, decoder = find_onnx_pair(model, checkpoint, precision)
    return OnnxPredictor(encoder, decoder, model_name=model, device=device)


def load_auto_predictor(model: str, checkpoint: str | Path | None = None, device: str = "auto") -> Any:
    """``backend="auto"``: the fastest exact backend installed.

    That is torch (float32) where torch is installed: on a CPU its decoder is the faster of the two and
    its encoder as fast as ONNX Runtime's (``benchmarks/README.md``). ONNX Runtime runs where torch is
    not installed (a bundle without it), for a checkpoint given as ONNX files (an ``.onnx`` file or a
    folder), which only it reads, and for a model whose torch weights are not installed while its
    published ONNX pair is. ``torch-bf16`` is faster still but moves the results slightly, so
    it stays a choice the user makes."""
    path = None if checkpoint is None else Path(checkpoint).expanduser()
    onnx_files = path is not None and (path.suffix == ".onnx" or path.is_dir())
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
    if onnx_files or not have_torch:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise StudioError(
                "neither torch nor onnxruntime is installed: pip install 'efficientsam-studio[cpu]'"
                if not have_torch
                else f"{path} is an ONNX model, which needs onnxruntime: pip install onnxruntime"
            ) from None
        return load_onnx_predictor(model, checkpoint, device)
    if path is None and _onnx_instead_of_missing_torch_weights(model):
        return load_onnx_predictor(model, None, device)
    from .loader import _load_torch

    return _load_torch(model, path, device)


def _onnx_instead_of_missing_torch_weights(model: str) -> bool:
    """Whether ``auto`` should run the installed published ONNX pair of ``model``: its torch weights
    are not installed, the pair is, and onnxruntime can read it."""
    from . import weights

    try:
        if weights.installed_path(model) is not None or weights.installed_onnx(model) is None:
            return False
        import onnxruntime  # noqa: F401
    except (ImportError, KeyError, ValueError, StudioError):
        return False
    return True
