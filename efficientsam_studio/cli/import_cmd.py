"""``efsam-studio import PROJECT --format coco|labelme --from PATH``: add labels from another tool.

PROJECT is a project file or a folder of images (a project is created there if it has none). Categories
are matched by name; images by their path relative to the project folder. The project is locked while
importing and saved atomically at the end; a malformed file changes nothing (a project created for the
import is removed again). With ``--recover`` a damaged project file is kept aside and the import
continues from its last good version (``.bak``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    p.add_argument(
        "--from",
        dest="source",
        required=True,
        type=Path,
        metavar="PATH",
        help="COCO: the .json file; labelme: a .json file or a folder of them",
    )
    p.add_argument(
        "--recover",
        action="store_true",
        help="if the project file is damaged, continue from its last good version (.bak)",
    )
    p.set_defaults(func=run)


def recovery_note(project: Project) -> str | None:
    """What ``--recover`` did to an open project (None when its file was sound)."""
    if project.recovered_from is None:
        return None
    kept = f"; the damaged file is kept as {project.damaged_copy}" if project.damaged_copy else ""
    return f"{project.path} was damaged: continuing from its last good version {project.recovered_from}{kept}"


def check_project_argument(path: Path) -> None:
    """Refuse, in one line, a PROJECT argument that is a file but not a project file (an image, say)."""
    from efficientsam_studio.annotations.project import PROJECT_SUFFIX
    from efficientsam_studio.cli.main import CommandError

    if path.is_file() and not path.name.lower().endswith(".json"):
        raise CommandError(
            f"PROJECT {path} is not a project file (*{PROJECT_SUFFIX}): give the project file or the folder "
            "that holds it"
        )


def _check_source(args: argparse.Namespace) -> None:
    """Refuse, before anything is written, a ``--from`` that does not exist or that the format cannot read."""
    from efficientsam_studio.cli.main import CommandError

    source: Path = args.source
    if not source.exists():
        raise CommandError(f"--from {source} does not exist")
    if args.format == "coco" and not source.is_file():
        raise CommandError(f"--from {source} is a folder: COCO is read from its .json file")


def _import(project: Project, args: argparse.Namespace) -> Any:
    if args.format == "coco":
        from efficientsam_studio.annotations.formats.coco import import_coco

        return import_coco(project.document, args.source, image_root=project.folder)
    from efficientsam_studio.annotations.formats.labelme import import_labelme

    return import_labelme(project.document, args.source, image_root=project.folder)


def _remove_new_project(project: Project) -> None:
    """Delete a project this command created, with its backup, while its lock is still held (no other
    process can have opened it meanwhile)."""
    from efficientsam_studio.annotations.storage import backup_path

    for file in (project.path, backup_path(project.path)):
        file.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    """Import into the project and save it; returns the exit status.

    A project created here (PROJECT a folder without one) is removed again when the import fails, so a
    failed import leaves the folder as it was.
    """
    from efficientsam_studio.annotations.project import Project, find_project_file

    check_project_argument(args.project)
    _check_source(args)
    created = args.project.is_dir() and find_project_file(args.project) is None
    if created:
        project = Project.create(args.project)
        found = len(project.document.images)
    else:
        project = Project.open(args.project, recover=args.recover)
    note = recovery_note(project)
    if note:
        print(note)
    with project:
        try:
            report = _import(project, args)
            project.save()
        except BaseException:  # Ctrl+C included; once saved, the import is complete and stays
            if created:
                _remove_new_project(project)
            raise
    if created:
        print(f"created project {project.path} with {found} images")
    print(f"imported into {project.path}: {report.summary()}")
    return 0
