"""``efsam-studio export PROJECT --format coco|labelme|yolo|masks --out PATH``: write a project's labels.

PROJECT is a project file (``*.efsam.json``) or the folder holding one; it is read without taking the
lock, so a project open in the app can be exported (its last saved version). By default the labelled
images are exported (with instances, or marked done).
"""

from __future__ import annotations

import argparse
from pathlib import Path

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
    p.add_argument("--out", required=True, type=Path, metavar="PATH",
                   help="output file (COCO: a .json file; otherwise a folder)")
    p.add_argument("--polygons", choices=("auto", "always", "never"), default="auto",
                   help="coco/labelme: polygons (auto: only for one-part masks without holes) or masks")
    p.add_argument("--tolerance", type=float, default=1.0, metavar="PX",
                   help="polygon simplification tolerance in pixels (default 1.0; 0 keeps every corner)")
    p.add_argument("--images", choices=("link", "copy", "none"), default="link",
                   help="yolo: put the images next to the labels as hard links (default) or copies")
    p.add_argument("--all-images", action="store_true",
                   help="export every image of the project, labelled or not")
    p.add_argument("--recover", action="store_true",
                   help="if the project file is damaged, export its last good version (.bak)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export the project; returns the exit status."""
    from tqdm import tqdm

    from efficientsam_studio.annotations.project import Project
    from efficientsam_studio.cli.main import CommandError

    if args.tolerance < 0:
        raise CommandError(f"--tolerance must be 0 or more pixels; got {args.tolerance}")
    project = Project.open(args.project, read_only=True, scan=False, recover=args.recover)
    document = project.document
    image_ids = [image.id for image in document.images] if args.all_images else None
    bar = tqdm(desc=f"export {args.format}", unit="image", disable=None)  # hidden when not a terminal

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    if args.format == "coco":
        from efficientsam_studio.annotations.formats.coco import export_coco

        out = args.out if args.out.suffix.lower() == ".json" else args.out / "annotations.json"
        report = export_coco(document, out, polygons=args.polygons, tolerance=args.tolerance,
                             image_ids=image_ids, progress=progress)
    elif args.format == "labelme":
        from efficientsam_studio.annotations.formats.labelme import export_labelme

        report = export_labelme(document, args.out, image_root=project.folder, polygons=args.polygons,
                                tolerance=args.tolerance, image_ids=image_ids, progress=progress)
    elif args.format == "yolo":
        from efficientsam_studio.annotations.formats.yolo import export_yolo

        report = export_yolo(document, args.out, image_root=project.folder, tolerance=args.tolerance,
                             images=args.images, image_ids=image_ids, progress=progress)
    else:
        from efficientsam_studio.annotations.formats.png_masks import export_png_masks

        report = export_png_masks(document, args.out, image_ids=image_ids, progress=progress)
    bar.close()
    print(f"exported to {args.out}: {report.summary()}")
    if report.holes_lost and args.format in ("coco", "labelme") and args.polygons == "always":
        print("hint: --polygons auto writes the masks that have holes as masks, so the holes are kept")
    return 0
