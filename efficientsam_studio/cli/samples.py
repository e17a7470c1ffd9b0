"""``efsam-studio samples [--copy DIR]``: the sample photographs shipped with the app.

Without options it prints the folder that holds them (inside the installed package or the desktop
bundle). ``--copy DIR`` copies them into DIR (created if needed; files already there are kept), which
is the folder to open and label: the installed copy may be read-only, and opening a folder writes its
project file there.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from efficientsam_studio.errors import StudioError


class SamplesError(StudioError):
    """The samples cannot be copied to the folder given."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "samples",
        help="show where the sample images are, or copy them into a folder to try the app",
        description=__doc__.split("\n\n", 1)[1].replace("``", ""),
    )
    p.add_argument("--copy", type=Path, metavar="DIR", help="copy the sample images into DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from efficientsam_studio.annotations.images import IMAGE_EXTENSIONS
    from efficientsam_studio.resources import resource_path

    folder = resource_path("samples")
    if args.copy is None:
        print(folder)
        return 0
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    target: Path = args.copy.expanduser()
    try:
        target.mkdir(parents=True, exist_ok=True)
        copied = 0
        for image in images:
            if not (target / image.name).exists():
                shutil.copyfile(image, target / image.name)
                copied += 1
    except OSError as exc:
        raise SamplesError(f"cannot copy the samples into {target}: {exc.strerror or exc}") from None
    print(
        f"{copied} sample images copied to {target} ({len(images) - copied} already there); "
        f"open them with: efsam-studio {target}"
    )
    return 0
