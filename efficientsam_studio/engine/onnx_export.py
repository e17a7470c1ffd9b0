"""Export an EfficientSAM model to an ONNX encoder and decoder, checked against torch.

Graph contracts (this project's export; the published ONNX pair is described in ``onnx_backend``):

Encoder ``<model>_encoder.onnx``
    input ``images``: float32 ``(1, 3, 1024, 1024)``, RGB **0..255** already resized bilinearly to
    1024x1024 (done outside with OpenCV: ``onnx_backend.resize_for_encoder``).
    The /255 and the ImageNet normalisation are folded into the patch-embedding convolution, and the
    resized positional embedding is a constant. Attention is one fused ``com.microsoft.MultiHeadAttention``
    node per block (ONNX Runtime's CPU kernel never materialises the 4096x4096 score matrix).
    output ``image_embeddings``: float32 ``(1, 256, 64, 64)``.

Decoder context ``<model>_context.onnx`` (format 2)
    input ``image_embeddings`` ``(1, 256, 64, 64)``; outputs the decoder's per-image context
    (:meth:`~efficientsam_studio.model.fast_decoder.FastMaskDecoder.prepare`): ``image_tokens``
    ``(4096, 256)``, ``first_layer_keys`` ``(H, d, 4096)``, ``first_layer_values`` ``(H, 4096, d)``,
    ``first_layer_queries`` ``(H, d, 4096)``. Run once per image.

Decoder ``<model>_decoder.onnx``
    inputs the four context tensors (format 2) or, in format 1 exports, ``image_embeddings``
    ``(1, 256, 64, 64)`` with the per-image preparation inside the graph on every call;
    ``point_coords`` float32 ``(Q, N, 2)``, ``(x, y)`` in original image pixels, -1 for padding;
    ``point_labels`` float32 ``(Q, N)`` (1 positive, 0 negative, 2/3 box corners, -1 padding);
    ``orig_im_size`` int64 ``(2,)`` = ``(H, W)``. Q prompts and N points are dynamic; prompts are padded
    to 6 points (or cut to the first 6) inside.
    outputs ``low_res_logits`` float32 ``(Q, 3, 256, 256)`` and ``iou_predictions`` ``(Q, 3)``: the three
    multimask outputs in the model's order (unsorted). Upsampling to ``(H, W)`` happens outside, only
    for the masks that are returned (bicubic, see ``onnx_backend``).
    The graph computes the decoder in the inference form of
    :class:`~efficientsam_studio.model.fast_decoder.FastMaskDecoder` (same outputs as the module to
    float32 rounding).

Metadata (``metadata_props``): ``efsam.kind`` (encoder/decoder), ``efsam.model``, ``efsam.weights_sha256``
(:func:`~efficientsam_studio.engine.cache.state_dict_checksum` of the weights), ``efsam.precision``
(fp32, int8) and ``efsam.format`` (graph contract version). The backend reads them to recognise the files
and to key the embedding cache, so torch and ONNX fp32 embeddings of the same weights share entries.

int8 variant (``quantize="int8"``): dynamic int8 quantisation of the encoder's MatMul weights (ONNX
Runtime ``quantize_dynamic``); the attention itself stays fp32. Its agreement with fp32 is measured by
:func:`compare_encoders` and recorded in ``benchmarks/README.md``.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from efficientsam_studio.engine.cache import state_dict_checksum
from efficientsam_studio.errors import StudioError
from efficientsam_studio.model import EfficientSam

from .onnx_backend import context_beside
from .onnx_graphs import (
    ContextGraph,
    DecoderGraph,
    EncoderGraph,
    PromptDecoderGraph,
    onnx_multi_head_attention,
)

log = logging.getLogger(__name__)

EXPORT_FORMAT = "2"
"""Version of the graph contracts above: 2 splits the decoder's per-image context into its own file;
the backend also reads format 1 decoders (context inside the graph)."""
OPSET = 20
ENCODER_INPUT = "images"
DECODER_INPUTS = ("image_embeddings", "point_coords", "point_labels", "orig_im_size")
"""Inputs of a self-contained (format 1) decoder graph, :class:`DecoderGraph`."""
CONTEXT_OUTPUTS = ("image_tokens", "first_layer_keys", "first_layer_values", "first_layer_queries")
PROMPT_DECODER_INPUTS = (*CONTEXT_OUTPUTS, "point_coords", "point_labels", "orig_im_size")
"""Inputs of the decoder graph that takes the context, :class:`PromptDecoderGraph` (format 2)."""
DECODER_OUTPUTS = ("low_res_logits", "iou_predictions")


class ExportError(StudioError):
    """The export failed or the exported graph does not agree with torch."""


def export_file_names(model_name: str, precision: str = "fp32") -> tuple[str, str]:
    """``(encoder, decoder)`` file names of an export, e.g. ``vit_t_encoder.onnx``, ``vit_t_decoder.onnx``;
    the int8 encoder is ``vit_t_encoder.int8.onnx`` (the decoder stays fp32)."""
    suffix = "" if precision == "fp32" else f".{precision}"
    return f"{model_name}_encoder{suffix}.onnx", f"{model_name}_decoder.onnx"


@dataclass
class ExportReport:
    """Files written and their agreement with the torch model (max abs differences)."""

    encoder: Path
    decoder: Path
    encoder_max_abs_diff: float
    logits_max_abs_diff: float
    iou_max_abs_diff: float
    seconds: float
    int8_encoder: Path | None = None
    int8_embedding_max_abs_diff: float | None = None
    context: Path | None = None

    def lines(self) -> list[str]:
        out = [
            f"encoder: {self.encoder}",
            f"decoder: {self.decoder}",
            *([f"decoder context: {self.context}"] if self.context is not None else []),
            f"agreement with torch (max abs diff): embedding {self.encoder_max_abs_diff:.2e}, "
            f"low-res logits {self.logits_max_abs_diff:.2e}, IoU {self.iou_max_abs_diff:.2e}",
        ]
        if self.int8_encoder is not None:
            out.append(
                f"int8 encoder: {self.int8_encoder} (embedding max abs diff vs fp32 torch: "
                f"{self.int8_embedding_max_abs_diff:.2e}; see benchmarks/README.md for the mask agreement)"
            )
        out.append(f"done in {self.seconds:.1f} s")
        return out


def _set_metadata(path: Path, props: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def _export(module: nn.Module, args: tuple, path: Path, input_names, output_names, dynamic_shapes) -> None:
    import onnxscript  # noqa: F401  (fail early with a clear message when the export extra is missing)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            opset_version=OPSET,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_shapes=dynamic_shapes,
            custom_translation_table={
                torch.ops.efsam_export.multi_head_attention.default: onnx_multi_head_attention
            },
            verbose=False,
        )
    program.save(str(path), external_data=False)


def export_decoder(graph: DecoderGraph, example: tuple[torch.Tensor, ...], path: Path) -> None:
    """Write ``graph`` to ``path`` (no metadata, no check), with the prompt and point counts dynamic.

    ``example`` holds one set of the graph's inputs (their values do not matter, only their dtypes and
    the shapes of the image inputs): the four of ``DECODER_INPUTS``, or for a
    :class:`PromptDecoderGraph` the seven of ``PROMPT_DECODER_INPUTS``.
    """
    prompts = torch.export.Dim("prompts", min=1, max=4096)
    points = torch.export.Dim("points", min=1, max=64)
    names = PROMPT_DECODER_INPUTS if isinstance(graph, PromptDecoderGraph) else DECODER_INPUTS
    image_inputs = len(names) - 3
    dynamic = (*([None] * image_inputs), {0: prompts, 1: points}, {0: prompts, 1: points}, None)
    with torch.no_grad():
        _export(graph, example, path, names, DECODER_OUTPUTS, dynamic)


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_onnx(
    model: EfficientSam,
    model_name: str,
    out_dir: str | Path,
    quantize: str | None = None,
    check: bool = True,
    seed: int = 0,
) -> ExportReport:
    """Write ``<model_name>_encoder.onnx``, ``<model_name>_context.onnx`` and ``<model_name>_decoder.onnx``
    into ``out_dir`` (format 2, see the module docstring).

    They are run in ONNX Runtime right after export on a random image and two prompt sets and compared
    with the torch model (differences in the report; :class:`ExportError` when they exceed 1e-3).
    ``quantize="int8"`` also writes ``<model_name>_encoder.int8.onnx``. Files are written under temporary
    names and renamed when complete.
    """
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ExportError(
            f"ONNX export needs the onnx and onnxscript packages ({exc}); install them with "
            "pip install 'efficientsam-studio[train]'"
        ) from None
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.float().eval()
    weights = state_dict_checksum(model.state_dict())
    enc_name, dec_name = export_file_names(model_name)
    enc_path, dec_path = out_dir / enc_name, out_dir / dec_name
    ctx_path = context_beside(dec_path)  # where the backend looks for it
    ctx_name = ctx_path.name
    enc_tmp, dec_tmp = out_dir / f".{enc_name}.part", out_dir / f".{dec_name}.part"
    ctx_tmp = out_dir / f".{ctx_name}.part"

    rng = np.random.default_rng(seed)
    size = model.img_size
    image = torch.from_numpy(rng.uniform(0, 255, (1, 3, size, size)).astype(np.float32))
    coords = torch.tensor([[[200.0, 300.0], [640.0, 420.0]], [[10.0, 20.0], [700.0, 470.0]]])
    labels = torch.tensor([[1.0, 0.0], [2.0, 3.0]])
    orig = torch.tensor([480, 720], dtype=torch.int64)

    encoder_graph = EncoderGraph(model)
    decoder_graph = PromptDecoderGraph(model)
    context_graph = ContextGraph(decoder_graph)
    with torch.no_grad():
        from efficientsam_studio.engine.preprocess import normalize

        reference_embedding = model.image_encoder(normalize(image / 255.0))
        # the reference is the module's decoder, not the inference form that the graph computes
        model_coords, model_labels = decoder_graph.model_prompts(coords, labels, orig)
        ref_logits, ref_iou = model.predict_masks(reference_embedding, model_coords[None], model_labels[None])
        ref_logits, ref_iou = ref_logits[0], ref_iou[0]
    try:
        with torch.no_grad():
            _export(encoder_graph, (image,), enc_tmp, [ENCODER_INPUT], ["image_embeddings"], None)
            _export(
                context_graph, (reference_embedding,), ctx_tmp, ["image_embeddings"], CONTEXT_OUTPUTS, None
            )
            context = context_graph(reference_embedding)
            export_decoder(decoder_graph, (*context, coords, labels, orig), dec_tmp)
        common = {"efsam.model": model_name, "efsam.weights_sha256": weights, "efsam.format": EXPORT_FORMAT}
        _set_metadata(enc_tmp, {**common, "efsam.kind": "encoder", "efsam.precision": "fp32"})
        _set_metadata(ctx_tmp, {**common, "efsam.kind": "decoder-context", "efsam.precision": "fp32"})
        _set_metadata(dec_tmp, {**common, "efsam.kind": "decoder", "efsam.precision": "fp32"})

        enc_diff = logit_diff = iou_diff = 0.0
        embedding = reference_embedding.numpy()
        if check:
            embedding = _session(enc_tmp).run(None, {ENCODER_INPUT: image.numpy()})[0]
            enc_diff = float(np.abs(embedding - reference_embedding.numpy()).max())
            onnx_context = _session(ctx_tmp).run(None, {"image_embeddings": reference_embedding.numpy()})
            feeds = {
                **dict(zip(CONTEXT_OUTPUTS, onnx_context, strict=True)),
                "point_coords": coords.numpy(),
                "point_labels": labels.numpy(),
                "orig_im_size": orig.numpy(),
            }
            onnx_logits, onnx_iou = _session(dec_tmp).run(None, feeds)
            logit_diff = float(np.abs(onnx_logits - ref_logits.numpy()).max())
            iou_diff = float(np.abs(onnx_iou - ref_iou.numpy()).max())
            worst = max(enc_diff, logit_diff, iou_diff)
            if not np.isfinite(worst) or worst > 1e-3:
                raise ExportError(
                    f"the exported graphs disagree with torch (embedding {enc_diff:.2e}, logits "
                    f"{logit_diff:.2e}, IoU {iou_diff:.2e}); nothing was written to {out_dir}"
                )
        enc_tmp.replace(enc_path)
        ctx_tmp.replace(ctx_path)
        dec_tmp.replace(dec_path)
    finally:
        for leftover in (enc_tmp, ctx_tmp, dec_tmp):
            leftover.unlink(missing_ok=True)
    report = ExportReport(enc_path, dec_path, enc_diff, logit_diff, iou_diff, 0.0, context=ctx_path)
    if quantize == "int8":
        int8_path = out_dir / export_file_names(model_name, "int8")[0]
        report.int8_encoder = quantize_encoder_int8(enc_path, int8_path)
        quantized = _session(report.int8_encoder).run(None, {ENCODER_INPUT: image.numpy()})[0]
        report.int8_embedding_max_abs_diff = float(np.abs(quantized - reference_embedding.numpy()).max())
    elif quantize is not None:
        raise ExportError(f"unknown quantisation {quantize!r}; the only choice is int8")
    report.seconds = time.perf_counter() - start
    return report


def quantize_encoder_int8(fp32_path: Path, out_path: Path) -> Path:
    """Dynamic int8 quantisation of the MatMul weights of an exported encoder (attention stays fp32)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = out_path.with_name(f".{out_path.name}.part")
    try:
        quantize_dynamic(
            str(fp32_path), str(tmp), op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8
        )
        _set_metadata(tmp, {**read_metadata(fp32_path), "efsam.precision": "int8"})
        tmp.replace(out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return out_path


def read_metadata(path: Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}
