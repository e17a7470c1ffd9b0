"""Entry point of ``efsam-studio``: dispatches to the subcommand modules of this package.

``efsam-studio [PATH]`` with no subcommand opens the desktop app (on a folder, an image or a project).
A :class:`~efficientsam_studio.errors.StudioError` or an ``OSError`` (a file that could not be read or
written) ends a command with a one-line message on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from efficientsam_studio import __version__
from efficientsam_studio.errors import StudioError, describe_os_error

_NOT_COMMANDS = {"main", "common"}


class CommandError(StudioError):
    """An error the user can act on; printed without a traceback, exit status 2."""


def _command_modules():
    package = importlib.import_module("efficientsam_studio.cli")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name in _NOT_COMMANDS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"efficientsam_studio.cli.{info.name}")
        if hasattr(module, "register"):
            yield module


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="efsam-studio",
        description="Label images for segmentation with EfficientSAM. "
        "Without a command, opens the desktop app on PATH (a folder, an image or a project).",
    )
    parser.add_argument("--version", action="version", version=f"efsam-studio {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = set(parser._subparsers._group_actions[0].choices) if parser._subparsers else set()
    if "gui" in commands and (not argv or (argv[0] not in commands and not argv[0].startswith("-"))):
        argv = ["gui", *argv]
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except StudioError as exc:
        print(f"efsam-studio {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file that could not be read or written: its path and the cause
        print(f"efsam-studio {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"efsam-studio {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
