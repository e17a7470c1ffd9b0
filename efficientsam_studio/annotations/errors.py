"""User-facing errors of the annotation package (all subclasses of :class:`StudioError`)."""

from __future__ import annotations

from pathlib import Path

from efficientsam_studio.errors import StudioError


class AnnotationError(StudioError):
    """Base class of errors raised by :mod:`efficientsam_studio.annotations`."""


class EmptyMaskError(AnnotationError):
    """An operation would create an instance with no foreground pixel (documents never hold empty masks)."""


class DocumentError(AnnotationError):
    """An operation names an image, category or instance that the document does not hold."""


class ProjectError(AnnotationError):
    """Base class of project-file errors."""


class ProjectLockedError(ProjectError):
    """Another live process (or another open project object) holds the project's lock file."""

    def __init__(self, message: str, lock_path: Path, holder: dict | None = None) -> None:
        super().__init__(message)
        self.lock_path = lock_path
        self.holder = holder or {}


class LockUnwritableError(ProjectError):
    """The project's lock file cannot be created or written: the folder is read-only, or the user may not
    write there (the project itself may still be readable)."""


class SchemaVersionError(ProjectError):
    """The project file was written by a newer version of the application (newer schema)."""

    def __init__(self, message: str, found: int, supported: int) -> None:
        super().__init__(message)
        self.found = found
        self.supported = supported


class CorruptProjectError(ProjectError):
    """The project file is not valid JSON or misses/mistypes a field.

    ``backup_path`` is the previous good version (``<file>.bak``) when one exists: open it with
    ``Project.open(path, recover=True)`` or :func:`recover_from_backup`. ``damaged_backup`` is the backup
    when it exists but is damaged too (``backup_path`` is then None). ``reason`` is the message without
    the advice on what to do.
    """

    def __init__(
        self, message: str, path: Path, backup_path: Path | None = None, *, damaged_backup: Path | None = None
    ) -> None:
        self.reason = message
        if backup_path is not None:
            message += (
                f"\nThe last good version is kept in {backup_path}: the app offers to continue from it "
                "when you open the project, keeping the damaged file aside; on the command line, label and "
                "import continue from it with --recover, and export --recover exports it."
            )
        elif damaged_backup is not None:
            message += (
                f"\nNeither {path} nor its backup {damaged_backup} can be opened; both were left as they "
                "are. To go on, correct the field named above in one of them with a text editor, or move "
                "both aside and import your latest export into a new project "
                f"(efsam-studio import {path.parent} --format coco --from EXPORT.json)."
            )
        else:
            message += "\nNo backup (.bak) exists for this project."
        super().__init__(message)
        self.path = path
        self.backup_path = backup_path
        self.damaged_backup = damaged_backup


class SaveError(ProjectError):
    """Writing the project file failed; the previous file is intact and the document stays dirty."""


class FormatError(AnnotationError):
    """An import file (COCO, labelme) is malformed; the message names the file, field and annotation id."""
