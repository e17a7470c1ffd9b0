"""``efsam-studio export-onnx``: write an ONNX encoder and decoder of a checkpoint, checked against torch.

Without ``--out`` the files go into the weights store, where ``load_predictor(backend="onnx")`` and
``backend="auto"`` find them for that checkpoint (see ``efficientsam_studio.engine.onnx_backend``). An
output folder that cannot be written is reported before the model is loaded.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export-onnx",
        help="export a model to ONNX (encoder + decoder) for the fast ONNX Runtime backend",
        description="Export the encoder and decoder of a checkpoint to ONNX, run both in ONNX Runtime and "
        "report their largest difference from torch. Without --out the files are stored where the "
        "onnx and auto backends find them.",
    )
    p.add_argument("--model", default="vit_t", choices=["vit_t", "vit_s", "tiny"], help="model name")
    p.add_argument("--checkpoint", type=Path, default=None, help="weights file (default: installed weights)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: the weights store)")
    p.add_argument(
        "--int8",
        action="store_true",
        help="also write an int8 (dynamically quantised) encoder, used by backend 'onnx-int8'",
    )
    p.set_defaults(func=run)


def _refuse_onnx_checkpoint(checkpoint: Path) -> None:
    """An ONNX file or folder given as the checkpoint: say that export-onnx starts from torch weights."""
    from efficientsam_studio.engine.checkpoints import looks_like_onnx
    from efficientsam_studio.errors import StudioError

    head = b""
    if checkpoint.is_file():
        try:
            with open(checkpoint, "rb") as handle:
                head = handle.read(16)
        except OSError:
            return  # loading it reports the cause
    if looks_like_onnx(head) or (checkpoint.is_dir() and any(checkpoint.glob("*.onnx"))):
        raise StudioError(
            f"--checkpoint {checkpoint} is already ONNX: export-onnx starts from the torch checkpoint (.pt) "
            f"those files came from; to run them, use segment or label with --backend onnx --checkpoint "
            f"{checkpoint}"
        )


def run(args: argparse.Namespace) -> int:
    import importlib.util

    from efficientsam_studio.errors import StudioError

    if importlib.util.find_spec("torch") is None:
        raise StudioError("export-onnx needs torch: pip install 'efficientsam-studio[train]'")
    from efficientsam_studio.annotations.storage import output_problem
    from efficientsam_studio.cli.export_cmd import check_output
    from efficientsam_studio.engine.loader import resolve_checkpoint
    from efficientsam_studio.engine.onnx_backend import export_dir_for
    from efficientsam_studio.engine.onnx_export import export_onnx
    from efficientsam_studio.model import load_model

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    logging.getLogger("torch").setLevel(logging.ERROR)
    checkpoint = resolve_checkpoint(args.model, args.checkpoint)
    _refuse_onnx_checkpoint(checkpoint)
    out = args.out if args.out is not None else export_dir_for(args.model, checkpoint)
    if args.out is not None:
        check_output("--out", out, folder=True, targets=(), protected={})
    elif (problem := output_problem(out, folder=True)) is not None:
        raise StudioError(f"cannot write into the weights store: {problem}; give --out or set EFSAM_HOME")
    model = load_model(args.model, checkpoint, "cpu")
    print(f"exporting {args.model} from {checkpoint} to {out} ...", flush=True)
    report = export_onnx(model, args.model, out, quantize="int8" if args.int8 else None)
    for line in report.lines():
        print(line)
    return 0
