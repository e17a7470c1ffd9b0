"""``efsam-studio weights``: list, download, import and locate the published model weights.

- ``weights list``: every catalogue entry with its size, whether it is installed (``damaged`` for a file
  whose size is not the published one), and where.
- ``weights download NAME``: download with a progress bar, resuming an interrupted download; damaged
  files are replaced. Interrupted (Ctrl+C), it says where the bytes received so far are kept.
- ``weights import PATH [--name NAME]``: check that a torch checkpoint loads, then install it (an ONNX
  file is not installed: the message says how to use it with the ONNX backend; nor is a checkpoint of
  the ``tiny`` model: it is used with ``--model tiny --checkpoint PATH``).
- ``weights path NAME``: print the installed file(s), one per line (exit 1 when not installed).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "weights",
        help="list, download or import the EfficientSAM weights",
        description="Manage the EfficientSAM weights in the per-user store (relocate it with EFSAM_HOME).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="show the published weights, their size and whether they are installed")
    download = actions.add_parser("download", help="download published weights (resumes, verifies)")
    download.add_argument("name", metavar="NAME", help="vit_t, vit_s, vit_t_onnx or vit_s_onnx")
    download.add_argument("--force", action="store_true", help="download again even if installed")
    download.add_argument(
        "--base-url", help="fetch <BASE_URL>/<file name> from a mirror (default: $EFSAM_WEIGHTS_URL)"
    )
    importer = actions.add_parser("import", help="install a checkpoint file you already have")
    importer.add_argument("path", metavar="PATH", help="a .pt checkpoint (or the published .pt.zip)")
    importer.add_argument("--name", choices=["vit_t", "vit_s"], help="the model it holds (default: detect)")
    where = actions.add_parser("path", help="print where the installed weights are")
    where.add_argument("name", metavar="NAME", help="vit_t, vit_s, vit_t_onnx or vit_s_onnx")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return {"list": _list, "download": _download, "import": _import, "path": _path}[args.action](args)


def _installed_files(name: str) -> list:
    from efficientsam_studio.engine import weights

    entry = weights.get_entry(name)
    if entry.format == "onnx":
        pair = weights.installed_onnx(name)
        return list(pair) if pair else []
    path = weights.installed_path(name)
    return [path] if path else []


def _size_text(entry) -> str:
    size = entry.display_bytes
    if size is None:
        return "?"
    approx = "~" if any(f.size is None for f in entry.files) else ""
    return f"{approx}{size / 1e6:.1f} MB"


def _list(args: argparse.Namespace) -> int:
    from efficientsam_studio.engine import weights
    from efficientsam_studio.paths import weights_dir

    rows = [("NAME", "SIZE", "INSTALLED", "WHERE")]
    for name, entry in weights.catalogue().items():
        files = _installed_files(name)
        damaged = [path for path, _, _ in weights.damaged_files(name)] if not files else []
        state = "yes" if files else "damaged" if damaged else "no"
        where = ", ".join(str(p) for p in files or damaged) or "-"
        rows.append((name, _size_text(entry), state, where))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3]
        )
    print(f"\nstore: {weights_dir()}  (set EFSAM_HOME to move it)")
    return 0


def _download(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from efficientsam_studio.engine import weights

    entry = weights.get_entry(args.name)
    existing = _installed_files(args.name)
    if existing and not args.force:
        print(f"{args.name} is already installed:")
        for path in existing:
            print(path)
        return 0
    try:
        with tqdm(
            desc=args.name, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, dynamic_ncols=True
        ) as bar:

            def progress(done: int, total: int | None) -> None:
                if total is not None and bar.total != total:
                    bar.total = total
                    bar.refresh()
                bar.update(done - bar.n)

            def retrying(attempt: int, attempts: int, delay: float, reason: str) -> None:
                wait = f"in {delay:.0f} s" if delay >= 1 else "now"
                bar.write(
                    f"connection failed ({reason}); trying again {wait} (attempt {attempt} of {attempts})",
                    file=sys.stderr,
                )

            weights.download(
                args.name, progress=progress, base_url=args.base_url, force=args.force, on_retry=retrying
            )
    except KeyboardInterrupt:
        _report_kept_parts(entry)
        raise
    print(f"installed {entry.description}:")
    for path in _installed_files(args.name):
        print(path)
    return 0


def _report_kept_parts(entry) -> None:
    """After Ctrl+C: say which partial downloads are kept, so that the next run resumes them."""
    from efficientsam_studio.paths import weights_dir

    for remote in entry.files:
        part = weights_dir() / f"{remote.filename}.part"
        size = part.stat().st_size if part.is_file() else 0
        if size:
            print(
                f"the {size:,} bytes downloaded so far are kept in {part}; "
                f"efsam-studio weights download {entry.name} resumes from there",
                file=sys.stderr,
            )


def _import(args: argparse.Namespace) -> int:
    from efficientsam_studio.engine import weights
    from efficientsam_studio.errors import CheckpointError

    if Path(args.path).suffix.lower() == ".onnx":
        raise CheckpointError(
            f"{args.path} is an ONNX model, not a torch checkpoint; weights import installs torch "
            f"checkpoints only. Use it where it is: --backend onnx --checkpoint {args.path} (label, segment, "
            "precompute or gui), with its decoder (the same name with _decoder for _encoder) in the same "
            "folder; or install the published ONNX files: efsam-studio weights download vit_t_onnx (or "
            "vit_s_onnx)"
        )
    try:
        target = weights.import_weights(args.path, name=args.name)
    except CheckpointError as exc:  # the checkpoint reader speaks of --model; this command's flag is --name
        raise CheckpointError(re.sub(r"\(e\.g\. --model (\w+)\)", r"(e.g. --name \1)", str(exc))) from exc
    name = args.name or next(
        n for n, e in weights.catalogue().items() if target.name == e.files[0].installed_name
    )
    note = " (byte for byte the published file)" if weights.matches_published(target, name) else ""
    print(f"imported {args.path} as {name}{note}:")
    print(target)
    return 0


def _path(args: argparse.Namespace) -> int:
    from efficientsam_studio.engine import weights

    files = _installed_files(args.name)
    if not files:
        print(weights.missing_weights_message(args.name), file=sys.stderr)
        return 1
    for path in files:
        print(path)
    return 0
