"""``efsam-studio import PROJECT --format coco|labelme --from PATH``: add labels from another tool.

PROJECT is a project file or a folder of images (a project is created there if it has none). Categories
are matched by name; images by their path relative to the project folder. The project is locked while
importing and saved atomically at the end; a malformed file changes nothing. With ``--recover`` a
damaged project file is kept aside and the import continues from its last good version (``.bak``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from efficientsam_studio.annotations.project import Project


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``import`` subcommand."""
    p = subparsers.add_parser(
        "import",
        help="import COCO or labelme annotations into a project",
        description=__doc__.split("\n\n", 1)[0].replace("``", ""),
    )
    p.add_argument("project", type=Path, metavar="PROJECT", help="project file, or a folder of images")
    p.add_argument("--format", required=True, choices=("coco", "labelme"))
    p.add_argument("--from", dest="source", required=True, type=Path, metavar="PATH",
                   help="COCO: the .json file; labelme: a .json file or a folder of them")
    p.add_argument("--recover", action="store_true",
                   help="if the project file is damaged, continue from its last good version (.bak)")
    p.set_defaults(func=run)


def recovery_note(project: Project) -> str | None:
    """What ``--recover`` did to an open project (None when its file was sound)."""
    if project.recovered_from is None:
        return None
    kept = f"; the damaged file is kept as {project.damaged_copy}" if project.damaged_copy else ""
    return f"{project.path} was damaged: continuing from its last good version {project.recovered_from}{kept}"


def run(args: argparse.Namespace) -> int:
    """Import into the project and save it; returns the exit status."""
    from efficientsam_studio.annotations.project import Project, find_project_file

    if args.project.is_dir() and find_project_file(args.project) is None:
        project = Project.create(args.project)
        print(f"created project {project.path} with {len(project.document.images)} images")
    else:
        project = Project.open(args.project, recover=args.recover)
    note = recovery_note(project)
    if note:
        print(note)
    with project:
        if args.format == "coco":
            from efficientsam_studio.annotations.formats.coco import import_coco

            report = import_coco(project.document, args.source, image_root=project.folder)
        else:
            from efficientsam_studio.annotations.formats.labelme import import_labelme

            report = import_labelme(project.document, args.source, image_root=project.folder)
        project.save()
    print(f"imported into {project.path}: {report.summary()}")
    return 0
