"""What ``efsam-studio PATH`` opens: a folder, an image in a folder, or a project file.

A folder (or an image's folder) without a project file gets a new ``<folder>.efsam.json`` project;
one with a project file opens it (or views it, ``read_only``, where its folder cannot be written).
Errors are the annotation core's: ``ProjectLockedError`` when
another instance holds the project, ``CorruptProjectError`` with the backup to recover from, etc.
"""

from __future__ import annotations

from pathlib import Path

from efficientsam_studio.annotations.images import IMAGE_EXTENSIONS
from efficientsam_studio.annotations.project import PROJECT_SUFFIX, Project, find_project_file
from efficientsam_studio.errors import StudioError


class OpenError(StudioError):
    """The path given to the app is neither a folder, an image nor a project file."""


def target_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be opened at all (missing, or not a folder, an image or a project file);
    None when :func:`open_target` can try it."""
    path = Path(path).expanduser()
    if path.is_dir() or (
        path.is_file() and (path.name.endswith(PROJECT_SUFFIX) or path.suffix.lower() in IMAGE_EXTENSIONS)
    ):
        return None
    if not path.exists():
        return f"{path} does not exist; give a folder of images, an image or a *{PROJECT_SUFFIX} file"
    return f"{path} is not a folder, an image or a *{PROJECT_SUFFIX} project file"


def open_target(
    path: str | Path, recover: bool = False, read_only: bool = False
) -> tuple[Project, str | None]:
    """Open or create the project for ``path``; returns it and the project-relative path of the image
    to show first (None: the first image). ``read_only`` opens an existing project without its lock
    (it cannot be saved); a folder without a project is then refused."""
    path = Path(path).expanduser()
    problem = target_problem(path)
    if problem:
        raise OpenError(problem)
    if path.is_file() and path.name.endswith(PROJECT_SUFFIX):
        return Project.open(path, recover=recover, read_only=read_only), None
    folder, image = (path.parent, path.name) if path.is_file() else (path, None)
    existing = find_project_file(folder)
    if existing is None and read_only:
        raise OpenError(f"{folder} holds no project file (*{PROJECT_SUFFIX}) to open read-only")
    if existing is not None:
        return Project.open(existing, recover=recover, read_only=read_only), image
    return Project.create(folder), image


def project_file_for(path: str | Path) -> Path | None:
    """The project file that :func:`open_target` would open for ``path`` (None: it would create one,
    or ``path`` is not something it opens)."""
    path = Path(path).expanduser()
    if path.is_file() and path.name.endswith(PROJECT_SUFFIX):
        return path
    folder = path.parent if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS else path
    try:
        return find_project_file(folder) if folder.is_dir() else None
    except StudioError:
        return None
