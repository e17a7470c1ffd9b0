"""The project side of ``efsam-studio label``: where the project file goes, what the run may write,
opening or creating the project, and the images its scan could not read."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from efficientsam_studio.errors import StudioError

PROJECT_SUFFIX = ".efsam.json"


class LabelError(StudioError):
    """Bad arguments of ``efsam-studio label``."""


def resolve_project_path(folder: Path, out: Path) -> Path:
    """The project file for ``--out``: a bare name or a ``*.efsam.json`` in FOLDER, or FOLDER itself."""
    from efficientsam_studio.annotations.project import find_project_file

    folder_real = folder.resolve()
    if out.is_dir():
        if out.resolve() != folder_real:
            raise LabelError(
                f"--out {out}: a project lives in its image folder; give a name or {folder}/NAME"
            )
        return find_project_file(folder) or folder / f"{folder_real.name}{PROJECT_SUFFIX}"
    name = out.name
    if not name.endswith(PROJECT_SUFFIX):
        name = f"{name.removesuffix('.json')}{PROJECT_SUFFIX}"
    if len(out.parts) > 1 and out.parent.resolve() != folder_real:
        raise LabelError(
            f"--out {out}: the project file must be in the image folder {folder} (image paths are stored "
            f"relative to it); use --out {name.removesuffix(PROJECT_SUFFIX)} or --out {folder / name}"
        )
    return folder / name


def check_outputs(args: argparse.Namespace, folder: Path, path: Path, prompts: Any) -> None:
    """Refuse, before the model loads, what would fail later or destroy work: an image folder in which the
    project cannot be written, a ``--coco`` file that would replace the project's files or an image, or
    detection results whose image ids name none of the images (they need ``--images-json``)."""
    from efficientsam_studio.annotations.images import list_images
    from efficientsam_studio.annotations.project import protected_files
    from efficientsam_studio.annotations.storage import output_problem
    from efficientsam_studio.cli.export_cmd import check_output

    problem = output_problem(folder, folder=True)
    if problem is not None:
        raise LabelError(f"the project cannot be written in the image folder: {problem}")
    by_id = prompts is not None and prompts.key_kind == "id"
    images = list_images(folder, recursive=True) if args.coco is not None or by_id else []
    if args.coco is not None:
        check_output(
            "--coco", args.coco, folder=False, targets=[args.coco], protected=protected_files(path, images)
        )
    if by_id:
        keys = [*prompts.by_key, *prompts.below_min_score]
        numbers = {int(image.stem) for image in images if image.stem.isdigit()}
        if keys and not any(key.isdigit() and int(key) in numbers for key in keys):
            listed = ", ".join(keys[:10]) + (f" (+{len(keys) - 10} more)" if len(keys) > 10 else "")
            raise LabelError(
                f"--boxes {args.boxes} names images by COCO image id only ({listed}), and no image in "
                f"{folder} is named by those numbers: give --images-json FILE, the COCO file the detections "
                "were made for (its 'images' list gives each id's file_name)"
            )


def open_project(folder: Path, path: Path, recursive: bool, recover: bool = False) -> tuple[Any, Any]:
    """Open or create the project and add the images new in its folder; ``recursive`` turns on
    subfolders in an existing project that had them off (said on stderr, and saved)."""
    from efficientsam_studio.annotations.project import Project

    widened = False
    if path.exists():
        project = Project.open(path, scan=False, recover=recover)
        if recursive and not project.settings.get("recursive", False):
            project.settings["recursive"] = widened = True
    else:
        name = path.name.removesuffix(PROJECT_SUFFIX)
        project = Project.create(folder, name, recursive=recursive, scan=False)
    try:
        report = project.scan()
        if widened:
            project.save()
            print(
                f"-r: {path.name} did not include subfolders; it does from now on (saved with the project)",
                file=sys.stderr,
            )
    except BaseException:
        project.close()
        raise
    return project, report


def add_unreadable(summary: Any, unreadable: list[tuple[str, str]], prompts: Any) -> None:
    """Count the images the project scan could not read as failed (first in the list), and leave the
    prompt-file keys that name them out of the prompts "for images not in the project"."""
    from efficientsam_studio.batch import ImageFailure

    summary.failed[:0] = [ImageFailure(rel, reason) for rel, reason in unreadable]
    summary.images += len(unreadable)
    if prompts is not None and unreadable and summary.unmatched_prompts:
        named = set(prompts.keys_naming(summary.unmatched_prompts, [rel for rel, _ in unreadable]))
        summary.unmatched_prompts = [key for key in summary.unmatched_prompts if key not in named]
