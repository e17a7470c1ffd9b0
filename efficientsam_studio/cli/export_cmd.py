"""``efsam-studio export PROJECT --format coco|labelme|yolo|masks --out PATH``: write a project's labels.

PROJECT is a project file (``*.efsam.json``) or the folder holding one; it is read without taking the
lock, so a project open in the app can be exported (its last saved version). By default the labelled
images are exported (with instances, or marked done). An output that would replace the project file, its
backup, its lock file or one of its images, or that cannot be written, is refused before anything is
written, and so is an option that the chosen format does not use.

``--out``: COCO writes one file, a path ending in ``.json``, or ``annotations.json`` in ``--out`` when that
is a folder or a new path without a suffix; the other formats write into the folder ``--out``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from efficientsam_studio.annotations.document import Document

FORMATS = ("coco", "labelme", "yolo", "masks")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` subcommand."""
    p = subparsers.add_parser(
        "export",
        help="export a project's labels as COCO, labelme, YOLO segmentation or PNG masks",
        description=__doc__.split("\n\n", 1)[0].replace("``", ""),
    )
    p.add_argument("project", type=Path, metavar="PROJECT", help="project file or folder")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="PATH",
        help="COCO: a .json file, or a folder to hold annotations.json; otherwise a folder",
    )
    p.add_argument(
        "--polygons",
        choices=("auto", "always", "never"),
        help="coco/labelme: polygons (auto, the default: only for one-part masks without holes) or masks",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        metavar="PX",
        help="coco/labelme/yolo: polygon simplification tolerance in pixels (default 1.0; 0 keeps "
        "every corner)",
    )
    p.add_argument(
        "--images",
        choices=("link", "copy", "none"),
        help="yolo: put the images next to the labels as hard links (link, the default) or "
        "copies, or not at all (none: copy the project's images into OUT/images before training)",
    )
    p.add_argument(
        "--all-images", action="store_true", help="export every image of the project, labelled or not"
    )
    p.add_argument(
        "--recover",
        action="store_true",
        help="if the project file is damaged, export its last good version (.bak)",
    )
    p.set_defaults(func=run)


def planned_files(
    document: Document, fmt: str, out: Path, image_ids: list[int] | None, images: str = "link"
) -> list[Path]:
    """Every file an export in ``fmt`` to ``out`` writes (COCO: ``out`` is the file; otherwise a folder),
    named as the exporters name them (:func:`~efficientsam_studio.annotations.formats.common.output_names`).

    ``images``: the YOLO image mode (``none`` places no image beside the labels).
    """
    from efficientsam_studio.annotations.formats.common import ExportReport, images_to_export, output_names

    if fmt == "coco":
        return [out]
    chosen = images_to_export(document, image_ids)
    names = output_names(chosen, ExportReport())
    if fmt == "labelme":
        return [out / f"{names[image.id]}.json" for image in chosen]
    if fmt == "yolo":
        files = [out / "labels" / f"{names[image.id]}.txt" for image in chosen]
        if images != "none":
            files += [out / "images" / f"{names[image.id]}{Path(image.path).suffix}" for image in chosen]
        return [*files, out / "images.txt", out / "data.yaml"]
    files = [
        out / sub / f"{names[image.id]}.png"
        for image in chosen
        for sub in ("semantic", "semantic_colour", "instances")
    ]
    return [*files, out / "categories.json", out / "instances.json"]


def check_output(
    option: str, out: Path, *, folder: bool, targets: Iterable[Path], protected: dict[Path, str]
) -> None:
    """Refuse an output before anything is written: raise CommandError naming ``option`` and ``out`` when
    one of ``targets`` would replace a file of ``protected`` (resolved path -> what it is, see
    :func:`~efficientsam_studio.annotations.project.protected_files`), or when ``out`` cannot be written
    as a file (or, with ``folder``, as a folder; see
    :func:`~efficientsam_studio.annotations.storage.output_problem`)."""
    from efficientsam_studio.annotations.storage import output_problem
    from efficientsam_studio.cli.main import CommandError

    if protected:
        for target in targets:
            what = protected.get(target.resolve())
            if what is not None:
                replaced = "" if target == out else f" (as {target})"
                raise CommandError(f"{option} {out} would replace {what}{replaced}; choose another output")
    problem = output_problem(out, folder=folder)
    if problem is not None:
        about_out = problem.startswith(f"{out} ")  # "--out a.txt is a file", not "--out a.txt: a.txt is ..."
        raise CommandError(f"{option} {problem}" if about_out else f"{option} {out}: {problem}")


OPTION_FORMATS = {
    "--polygons": ("polygons", ("coco", "labelme")),
    "--tolerance": ("tolerance", ("coco", "labelme", "yolo")),
    "--images": ("images", ("yolo",)),
}
"""Options that only some formats use: option -> (argument name, formats)."""

DEFAULTS = {"polygons": "auto", "tolerance": 1.0, "images": "link"}


def _check_options(args: argparse.Namespace) -> None:
    """Refuse an option the format does not use (it would be silently ignored); fill in the defaults."""
    from efficientsam_studio.cli.main import CommandError

    for option, (name, formats) in OPTION_FORMATS.items():
        if getattr(args, name) is None:
            setattr(args, name, DEFAULTS[name])
        elif args.format not in formats:
            listed = " and ".join([", ".join(formats[:-1]), formats[-1]] if len(formats) > 1 else formats)
            raise CommandError(f"{option} applies to --format {listed}, not {args.format}; leave it out")
    if args.tolerance < 0:
        raise CommandError(f"--tolerance must be 0 or more pixels; got {args.tolerance}")


def coco_file(out: Path) -> Path:
    """The file a COCO export to ``--out`` writes: ``out`` itself when it ends in ``.json``;
    ``out/annotations.json`` when ``out`` is a folder or a new path without a suffix; CommandError
    otherwise (an existing file or a new name with another suffix)."""
    from efficientsam_studio.cli.main import CommandError

    if out.suffix.lower() == ".json":
        return out
    if out.is_dir() or (not out.exists() and not out.suffix):
        return out / "annotations.json"
    raise CommandError(
        f"--out {out}: COCO is written as one .json file; give a path ending in .json, or a folder "
        "(annotations.json is written in it)"
    )


def run(args: argparse.Namespace) -> int:
    """Export the project; returns the exit status."""
    from tqdm import tqdm

    from efficientsam_studio.annotations.project import Project, protected_files
    from efficientsam_studio.cli.import_cmd import check_project_argument

    _check_options(args)
    check_project_argument(args.project)
    out = coco_file(args.out) if args.format == "coco" else args.out
    folder = out != args.out or args.format != "coco"
    project = Project.open(args.project, read_only=True, scan=False, recover=args.recover)
    document = project.document
    image_ids = [image.id for image in document.images] if args.all_images else None
    targets = planned_files(document, args.format, out, image_ids, args.images)
    protected = protected_files(project.path, (project.image_path(image) for image in document.images))
    check_output("--out", args.out, folder=folder, targets=[args.out, *targets], protected=protected)
    if out != args.out:
        check_output("--out", out, folder=False, targets=(), protected={})
    bar = tqdm(desc=f"export {args.format}", unit="image", disable=None)  # hidden when not a terminal

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    if args.format == "coco":
        from efficientsam_studio.annotations.formats.coco import export_coco

        report = export_coco(
            document,
            out,
            polygons=args.polygons,
            tolerance=args.tolerance,
            image_ids=image_ids,
            progress=progress,
        )
    elif args.format == "labelme":
        from efficientsam_studio.annotations.formats.labelme import export_labelme

        report = export_labelme(
            document,
            args.out,
            image_root=project.folder,
            polygons=args.polygons,
            tolerance=args.tolerance,
            image_ids=image_ids,
            progress=progress,
        )
    elif args.format == "yolo":
        from efficientsam_studio.annotations.formats.yolo import export_yolo

        report = export_yolo(
            document,
            args.out,
            image_root=project.folder,
            tolerance=args.tolerance,
            images=args.images,
            image_ids=image_ids,
            progress=progress,
        )
    else:
        from efficientsam_studio.annotations.formats.png_masks import export_png_masks

        report = export_png_masks(document, args.out, image_ids=image_ids, progress=progress)
    bar.close()
    print(f"exported to {out}: {report.summary()}")
    if report.holes_lost and args.format in ("coco", "labelme") and args.polygons == "always":
        print("hint: --polygons auto writes the masks that have holes as masks, so the holes are kept")
    return 0
