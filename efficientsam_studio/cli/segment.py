"""``efsam-studio segment IMAGE``: segment one object from points and/or a box, write the best mask.

Example::

    efsam-studio segment photo.jpg --point 250,180 --point 100,400,0 --output cat.png --json

``--point X,Y[,LABEL]`` (pixels; LABEL 1 = object, the default, 0 = background) may be repeated;
``--box X0,Y0,X1,Y1`` (pixels, corners in either order). The best of the three candidate masks is written
as an 8-bit PNG (255 = object, 0 = background); the scores of all candidates are printed (JSON with
``--json``). Prompts follow the engine's rule (:func:`efficientsam_studio.engine.prompts.fit_to_image`):
a point within a pixel of the image is moved onto its edge and one further out is an error; a box is
clipped to the image, and one outside it is an error. Background points alone are a
valid prompt.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from efficientsam_studio.engine.loader import BACKEND_CHOICES
from efficientsam_studio.errors import StudioError

MODEL_CHOICES = ("vit_t", "vit_s", "tiny")
DEVICE_CHOICES = ("auto", "cpu", "cuda")
BACKEND_HELP = "inference backend (default: auto = torch where installed, else ONNX Runtime)"


class SegmentError(StudioError):
    """Bad arguments of ``efsam-studio segment`` (prompts outside the image, unwritable output)."""


def _numbers(text: str, counts: tuple[int, ...], what: str) -> list[float]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in counts:
        raise argparse.ArgumentTypeError(
            f"{what} must be {' or '.join(map(str, counts))} numbers, got {text!r}"
        )
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{what} must be numbers separated by commas, got {text!r}"
        ) from None


def parse_point(text: str) -> tuple[float, float, int]:
    """``"X,Y"`` or ``"X,Y,LABEL"`` -> (x, y, label); label 1 (object) by default, 0 = background."""
    values = _numbers(text, (2, 3), "--point X,Y[,LABEL]")
    label = 1 if len(values) == 2 else values[2]
    if label not in (0, 1):
        raise argparse.ArgumentTypeError(f"a point label is 1 (object) or 0 (background), got {text!r}")
    return values[0], values[1], int(label)


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``"X0,Y0,X1,Y1"`` -> the four pixel coordinates."""
    x0, y0, x1, y1 = _numbers(text, (4,), "--box X0,Y0,X1,Y1")
    return x0, y0, x1, y1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment one object in an image from points and/or a box",
        description="Segment one object from --point and/or --box prompts (image pixels) and write the "
        "best mask as an 8-bit PNG (255 = object). Scores of the three candidates are printed.",
    )
    parser.add_argument("image", metavar="IMAGE", help="the image file")
    parser.add_argument(
        "--point",
        action="append",
        type=parse_point,
        default=[],
        metavar="X,Y[,LABEL]",
        help="a point in pixels; LABEL 1 = object (default), 0 = background. Repeat for more points.",
    )
    parser.add_argument(
        "--box", type=parse_box, metavar="X0,Y0,X1,Y1", help="a box around the object, pixels"
    )
    parser.add_argument("--model", choices=MODEL_CHOICES, default="vit_t", help="model (default: vit_t)")
    parser.add_argument(
        "--checkpoint", metavar="PATH", help="checkpoint file (default: the installed weights of --model)"
    )
    parser.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default="auto",
        help=f"{BACKEND_HELP}; --checkpoint may name an ONNX encoder file or a folder with an exported pair",
    )
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="default: auto")
    parser.add_argument(
        "--output",
        metavar="MASK.png",
        help="where to write the mask (default: IMAGE_STEM_mask.png in the current folder)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def _mask_summary(mask: Any) -> tuple[int, list[int] | None]:
    """Area in pixels and bounding box ``[x0, y0, x1, y1]`` (inclusive pixel indices) of a bool mask."""
    import numpy as np

    area = int(mask.sum())
    if area == 0:
        return 0, None
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    return area, [int(xs[0]), int(ys[0]), int(xs[-1]), int(ys[-1])]


def _write_png(mask: Any, path: Path) -> None:
    import cv2
    import numpy as np

    ok, encoded = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    if not ok:
        raise SegmentError(f"{path}: could not encode the mask as PNG")
    try:
        path.write_bytes(encoded.tobytes())
    except OSError as exc:
        raise SegmentError(f"{path}: cannot write the mask ({exc.strerror or exc})") from None


def _check_prompts(args: argparse.Namespace, height: int, width: int) -> None:
    """Refuse, before the model loads, the prompts the engine would refuse (its rule for the image)."""
    import numpy as np

    from efficientsam_studio.engine.prompts import PromptError, fit_to_image

    if not args.point and args.box is None:
        raise SegmentError("give at least one --point X,Y[,LABEL] or a --box X0,Y0,X1,Y1")
    for x, y, _ in args.point:
        try:
            fit_to_image(np.array([[x, y]]), None, (height, width))
        except PromptError as exc:
            raise SegmentError(f"--point {x:g},{y:g}: {exc}") from None
    if args.box is not None:
        try:
            fit_to_image(None, np.array(args.box), (height, width))
        except PromptError as exc:
            raise SegmentError(f"--box {','.join(f'{v:g}' for v in args.box)}: {exc}") from None


def _output_path(args: argparse.Namespace) -> Path:
    image = Path(args.image)
    output = Path(args.output) if args.output else Path(f"{image.stem}_mask.png")  # in the current folder
    if output.suffix.lower() != ".png":
        raise SegmentError(f"--output {output}: the mask is written as PNG; give a path ending in .png")
    if output.exists() and image.exists() and output.resolve() == image.resolve():
        raise SegmentError(f"--output {output} is the input image; choose another file name")
    return output


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from efficientsam_studio.annotations.images import load_image
    from efficientsam_studio.engine import PromptsTruncatedWarning, load_predictor
    from efficientsam_studio.engine.loader import predictor_device

    output = _output_path(args)
    image = load_image(args.image)
    height, width = image.shape[:2]
    _check_prompts(args, height, width)

    predictor = load_predictor(
        model=args.model, checkpoint=args.checkpoint, device=args.device, backend=args.backend
    )
    started = time.perf_counter()
    predictor.set_image(image)
    encoded = time.perf_counter()
    coords = np.array([[x, y] for x, y, _ in args.point], dtype=np.float32) if args.point else None
    labels = np.array([label for _, _, label in args.point], dtype=np.float32) if args.point else None
    box = np.array(args.box, dtype=np.float32) if args.box is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PromptsTruncatedWarning)
        masks, scores, _ = predictor.predict(coords, labels, box, multimask_output=True)
    decoded = time.perf_counter()
    _write_png(masks[0], output)

    info = predictor.last_prompt_info
    candidates = []
    for rank, (mask, score) in enumerate(zip(masks, scores, strict=True), start=1):
        area, bbox = _mask_summary(mask)
        candidates.append({"rank": rank, "score": round(float(score), 4), "area": area, "bbox": bbox})
    result = {
        "image": str(args.image),
        "size": [height, width],
        "model": args.model,
        "backend": predictor.backend,
        "device": predictor_device(predictor),
        "output": str(output),
        "best": candidates[0],
        "candidates": candidates,
        "prompt": {
            "points": [[x, y] for x, y, _ in args.point],
            "labels": [label for _, _, label in args.point],
            "box": list(args.box) if args.box is not None else None,
        },
        "prompt_note": info.note if info else None,
        "dropped_points": list(info.dropped_points) if info else [],
        "encode_ms": round((encoded - started) * 1000, 1),
        "decode_ms": round((decoded - encoded) * 1000, 1),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    if result["prompt_note"]:
        print(f"note: {result['prompt_note']}", file=sys.stderr)
    print(f"{args.image} ({width}x{height}), model {args.model} ({result['backend']}, {result['device']})")
    print(f"{'rank':>4}  {'score':>6}  {'area px':>9}  bbox x0,y0,x1,y1")
    for c in candidates:
        bbox = ",".join(map(str, c["bbox"])) if c["bbox"] else "(empty)"
        print(f"{c['rank']:>4}  {c['score']:>6.3f}  {c['area']:>9}  {bbox}")
    print(
        f"best mask written to {output}  "
        f"(encode {result['encode_ms']:.0f} ms, decode {result['decode_ms']:.0f} ms)"
    )
    return 0
