"""``efsam-studio gui [PATH]``: the desktop app (also what ``efsam-studio [PATH]`` runs)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from efficientsam_studio.engine.loader import BACKEND_CHOICES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "gui",
        help="open the desktop app",
        description="Open the desktop app on PATH: a folder of images, an image, or a *.efsam.json project. "
        "A folder without a project gets one. Options override the saved settings for this run.",
    )
    p.add_argument("path", nargs="?", metavar="PATH", help="folder, image or project file to open")
    p.add_argument("--model", choices=("vit_t", "vit_s", "tiny"), help="model to load")
    p.add_argument(
        "--checkpoint", metavar="FILE", help="weights file (.pt, or an ONNX encoder with --backend onnx)"
    )
    p.add_argument("--backend", choices=BACKEND_CHOICES, help="inference backend")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="inference device")
    p.add_argument(
        "--smoke-test",
        action="store_true",
        help="check the installation: open PATH, load the model, encode the first image, print a JSON "
        "report and quit (exit status 1 on failure); works offscreen (QT_QPA_PLATFORM=offscreen)",
    )
    p.set_defaults(func=run)


def display_problem(environ: Mapping[str, str] | None = None, platform: str | None = None) -> str | None:
    """Why Qt could not open a window here, or None: on Linux without an X11 or Wayland display and no
    other Qt platform chosen, Qt would abort the process instead of raising an error."""
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return None
    chosen = environ.get("QT_QPA_PLATFORM", "").split(":")[0]
    if chosen and chosen not in ("xcb", "wayland"):
        return None  # offscreen, vnc, eglfs, ...: no display needed
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return None
    return (
        "no display to open the app on (neither DISPLAY nor WAYLAND_DISPLAY is set); run it in a desktop "
        "session, or on a headless machine under a virtual display: xvfb-run efsam-studio ..."
    )


def run(args: argparse.Namespace) -> int:
    from efficientsam_studio.errors import StudioError

    missing = args.path is not None and not Path(args.path).expanduser().exists()
    if missing and not args.smoke_test:  # the smoke test reports the app's own refusal
        raise StudioError(f"{args.path} does not exist: give a folder of images, an image or a project file")
    problem = display_problem()
    if problem is not None:
        raise StudioError(problem)
    from efficientsam_studio.gui.app import LaunchOptions, run_app

    options = LaunchOptions(
        path=args.path,
        model=args.model,
        checkpoint=args.checkpoint,
        backend=args.backend,
        device=args.device,
    )
    if args.smoke_test:
        from efficientsam_studio.cli._gui_smoke import run_smoke_test

        return run_smoke_test(options)
    return run_app(options)
