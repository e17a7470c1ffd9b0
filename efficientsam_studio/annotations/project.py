"""A project: a folder of images plus one project file ``<folder>/<name>.efsam.json``.

The file holds the :class:`~efficientsam_studio.annotations.document.Document` in the JSON schema of
:mod:`.schema` (documented in ``SCHEMA.md``). Image paths in it are relative to the folder that holds
the project file, so the folder can be moved or shared as a whole.

Safety: saves are atomic with the previous version kept as ``<file>.bak`` (:mod:`.storage`); a lock file
stops a second process from writing the same project; a file of a newer schema version is refused; a
damaged file is reported with the field or line at fault, and ``Project.open(path, recover=True)``
continues from the backup (the damaged file is kept as ``<file>.corrupt-<time>``).
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from efficientsam_studio.annotations import images as image_io
from efficientsam_studio.annotations.document import Document, ImageRecord, Instance
from efficientsam_studio.annotations.errors import (
    CorruptProjectError,
    ProjectError,
    SchemaVersionError,
)
from efficientsam_studio.annotations.schema import (
    FORMAT_NAME,
    SCHEMA_VERSION,
    SchemaFieldError,
    document_from_dict,
    document_to_dict,
)
from efficientsam_studio.annotations.storage import ProjectLock, atomic_write, backup_path, lock_path
from efficientsam_studio.errors import ImageLoadError, os_error_reason

PROJECT_SUFFIX = ".efsam.json"


@dataclass
class ScanReport:
    """What a folder scan found: new images added, images of the project that are missing on disk, and
    files that look like images but could not be read (``(relative path, reason)``)."""

    added: list[ImageRecord] = field(default_factory=list)
    missing: list[ImageRecord] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class PendingSave:
    """A serialised document waiting to be written: the file's bytes and the revision they hold."""

    data: bytes
    revision: int


class DocumentSnapshot:
    """The content of a document at one revision, frozen for encoding in another thread.

    Records are immutable, so copying the lists of records is enough (cheap: no record is copied).
    It offers what :func:`encode_project` reads from a document."""

    def __init__(self, document: Document) -> None:
        self.revision = document.revision
        self.next_ids = document.next_ids
        self.categories = document.categories
        self.images = document.images
        self._instances = list(document.iter_instances())

    def iter_instances(self) -> Iterator[Instance]:
        return iter(self._instances)


@dataclass(frozen=True)
class SaveSnapshot:
    """What a save writes, taken on the editing thread; :meth:`encode` may run in any thread."""

    document: DocumentSnapshot
    settings: dict[str, Any]

    @property
    def revision(self) -> int:
        return self.document.revision

    def encode(self) -> PendingSave:
        return PendingSave(encode_project(self.document, self.settings), self.document.revision)  # type: ignore[arg-type]


def find_project_file(folder: Path) -> Path | None:
    """The single ``*.efsam.json`` in ``folder`` (None if there is none; ProjectError if several)."""
    found = sorted(Path(folder).glob(f"*{PROJECT_SUFFIX}"))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ProjectError(f"{folder} holds several projects ({names}); open one of the files directly")
    return found[0] if found else None


def protected_files(path: str | Path, images: Iterable[str | Path] = ()) -> dict[Path, str]:
    """The files no output may replace, by resolved path, each with what it is: the project file
    ``path``, its backup and its lock file, and the given image files."""
    path = Path(path)
    files = {Path(image).resolve(): f"the image {image} of the project" for image in images}
    files[path.resolve()] = f"the project file {path}"
    files[backup_path(path).resolve()] = f"the backup {backup_path(path)} of the project"
    files[lock_path(path).resolve()] = f"the lock file {lock_path(path)} of the project"
    return files


def encode_project(document: Document, settings: dict[str, Any] | None = None) -> bytes:
    """The project file's bytes: UTF-8 JSON with one category, image or instance per line."""
    data = document_to_dict(document, settings)
    records = {key: data.pop(key) for key in ("categories", "images", "instances")}
    head = json.dumps(data, ensure_ascii=False, separators=(",", ": "))[:-1]
    parts = [head]
    for key, items in records.items():
        body = ",\n".join(json.dumps(item, ensure_ascii=False, separators=(",", ":")) for item in items)
        parts.append(f',\n"{key}": [\n{body}\n]' if items else f',\n"{key}": []')
    parts.append("\n}\n")
    return "".join(parts).encode("utf-8")


def decode_project(path: Path, raw: bytes, *, offer_backup: bool = True) -> tuple[Document, dict[str, Any]]:
    """Parse and validate a project file's bytes; raises CorruptProjectError / SchemaVersionError.

    The error offers ``<path>.bak`` when it exists, unless ``offer_backup`` is False (``path`` is a backup).
    """
    backup = backup_path(path)
    offer = backup if offer_backup and backup.exists() and backup != path else None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CorruptProjectError(
            f"project file {path} is not UTF-8 text (bad byte at offset {exc.start})", path, offer
        ) from None
    except json.JSONDecodeError as exc:
        raise CorruptProjectError(
            f"project file {path} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            path,
            offer,
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        message = f"{path} is not an EfficientSAM Studio project file (field 'format' is not {FORMAT_NAME!r})"
        if offer is None:  # some other JSON file, not a damaged project: nothing to recover
            raise ProjectError(message)
        raise CorruptProjectError(message, path, offer)
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CorruptProjectError(
            f"project file {path}: field schema_version is missing or not an integer", path, offer
        )
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"project file {path} uses schema version {version}, written by a newer EfficientSAM Studio "
            f"(app {data.get('app_version', '?')}); this version reads schema {SCHEMA_VERSION} and older. "
            "Update EfficientSAM Studio to open it; the file was not changed.",
            version,
            SCHEMA_VERSION,
        )
    try:
        return document_from_dict(data)
    except SchemaFieldError as exc:
        raise CorruptProjectError(f"project file {path}: {exc}", path, offer) from None


def load_document(path: Path) -> Document:
    """Read a project file without locking it (for readers such as the trainer)."""
    path = Path(path)
    if path.is_dir():
        found = find_project_file(path)
        if found is None:
            raise ProjectError(f"no project file (*{PROJECT_SUFFIX}) in {path}")
        path = found
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProjectError(f"cannot read project file {path}: {exc.strerror or exc}") from None
    return decode_project(path, raw)[0]


class Project:
    """An open project: its file, its image folder, its document and its lock.

    Use as a context manager (``with Project.open(path) as project:``) or call :meth:`close`, which
    releases the lock (it does not save). ``settings`` is a free JSON dict saved with the project (the
    app keeps e.g. ``recursive`` scanning there). ``missing_images`` lists the images of the document whose
    files are absent from the folder (found by :meth:`scan`); they stay in the document. ``last_scan``
    is the report of the last :meth:`scan` (None before one), so callers of :meth:`create` and
    :meth:`open` can tell the user which files could not be read and were left out. After an open
    with ``recover``, ``recovered_from`` is the backup the document was read from and ``damaged_copy``
    where the damaged file was kept (None when the project was opened read-only).
    """

    def __init__(self, path: Path, document: Document, settings: dict[str, Any], lock: ProjectLock | None):
        self.path = Path(path)
        self.document = document
        self.settings = settings
        self._lock = lock
        self.missing_images: list[ImageRecord] = []
        self.last_scan: ScanReport | None = None
        self.recovered_from: Path | None = None
        self.damaged_copy: Path | None = None
        self._keep_backup = True

    # ----------------------------------------------------------------- opening
    @classmethod
    def create(
        cls, folder: str | Path, name: str | None = None, *, recursive: bool = False, scan: bool = True
    ) -> Project:
        """Create ``<folder>/<name>.efsam.json`` (name defaults to the folder's name), lock it, add the
        images found in the folder (``recursive``: also in subfolders) and save it."""
        folder = Path(folder)
        if not folder.is_dir():
            raise ProjectError(f"cannot create a project in {folder}: it is not a folder")
        path = folder / f"{name or folder.resolve().name or 'project'}{PROJECT_SUFFIX}"
        if path.exists():
            raise ProjectError(f"{path} already exists; open it instead of creating a new project")
        lock = ProjectLock(path)
        lock.acquire()
        project = cls(path, Document(), {"recursive": bool(recursive)}, lock)
        try:
            if scan:
                project.scan()
            project.save()
        except BaseException:
            lock.release()
            raise
        return project

    @classmethod
    def open(
        cls, path: str | Path, *, recover: bool = False, read_only: bool = False, scan: bool = True
    ) -> Project:
        """Open a project file (or the folder holding one).

        ``recover``: if the file is damaged, continue from ``<file>.bak`` (the damaged file is kept as
        ``<file>.corrupt-<time>``). ``read_only``: take no lock; :meth:`save` is refused. ``scan``: add new
        images of the folder and list missing ones. Raises ProjectLockedError, SchemaVersionError,
        CorruptProjectError (with ``backup_path``) or ProjectError.
        """
        path = Path(path)
        if path.is_dir():
            found = find_project_file(path)
            if found is None:
                raise ProjectError(f"no project file (*{PROJECT_SUFFIX}) in {path}; create one first")
            path = found
        if not path.is_file():
            raise ProjectError(f"project file {path} does not exist")
        lock = None if read_only else ProjectLock(path)
        if lock is not None:
            lock.acquire()
        try:
            project = cls._load(path, lock, recover)
            if scan:
                project.scan()
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return project

    @classmethod
    def _load(cls, path: Path, lock: ProjectLock | None, recover: bool) -> Project:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ProjectError(f"cannot read project file {path}: {exc.strerror or exc}") from None
        try:
            document, settings = decode_project(path, raw)
            return cls(path, document, settings, lock)
        except CorruptProjectError as exc:
            if not recover or exc.backup_path is None:
                raise
            backup, damage = exc.backup_path, exc
        try:
            raw = backup.read_bytes()
        except OSError as exc:
            raise ProjectError(f"cannot read the backup {backup}: {os_error_reason(exc)}") from None
        try:
            document, settings = decode_project(backup, raw, offer_backup=False)
        except CorruptProjectError as exc:
            raise _both_damaged(path, backup, damage, exc) from None
        project = cls(path, document, settings, lock)
        project.recovered_from = backup
        if lock is not None:
            stamp = _dt.datetime.now().strftime("%Y%m%dT%H%M%S")
            damaged = path.with_name(f"{path.name}.corrupt-{stamp}")
            try:
                shutil.copy2(path, damaged)
            except OSError as exc:
                raise ProjectError(
                    f"cannot keep the damaged project file aside as {damaged}: {os_error_reason(exc)}; "
                    "nothing was changed"
                ) from None
            project.damaged_copy = damaged
            project._keep_backup = False  # the .bak is the good version: do not replace it with the damage
            document.revision += 1  # the file on disk is not this document: the next autosave writes it
        return project

    # ----------------------------------------------------------------- folder
    @property
    def folder(self) -> Path:
        """The folder holding the project file; image paths are relative to it."""
        return self.path.parent

    @property
    def read_only(self) -> bool:
        """True when this object holds no lock (opened read-only, or closed): saving is refused."""
        return self._lock is None or not self._lock.held

    def image_path(self, image: ImageRecord | int) -> Path:
        """Absolute path of an image of the project."""
        record = self.document.image(image) if isinstance(image, int) else image
        return self.folder / record.path

    def scan(self) -> ScanReport:
        """Add images of the folder that the document lacks; list the document's missing images."""
        report = ScanReport()
        recursive = bool(self.settings.get("recursive", False))
        try:
            found = image_io.list_images(self.folder, recursive=recursive)
        except ImageLoadError as exc:
            raise ProjectError(str(exc)) from None
        on_disk = set()
        for file in found:
            relative = file.relative_to(self.folder).as_posix()
            on_disk.add(relative)
            if self.document.image_by_path(relative) is not None:
                continue
            try:
                width, height = image_io.read_image_size(file)
            except ImageLoadError as exc:
                report.unreadable.append((relative, str(exc)))
                continue
            record = ImageRecord(self.document.allocate_id("image"), relative, int(width), int(height))
            self.document.add_image(record)
            report.added.append(record)
        report.missing = [
            image
            for image in self.document.images
            if image.path not in on_disk and not (self.folder / image.path).is_file()
        ]
        self.missing_images = report.missing
        self.last_scan = report
        return report

    # ----------------------------------------------------------------- saving
    def save(self) -> None:
        """Write the document atomically (previous version kept as ``.bak``) and mark it clean.

        On failure raises SaveError; the previous file is intact and the document stays dirty.
        """
        pending = self.prepare_save()
        self.write_save(pending)
        self.document.mark_saved(pending.revision)

    def prepare_save(self) -> PendingSave:
        """Serialise the document now (reads the document: call it where the document is edited).

        With :meth:`write_save` this splits :meth:`save` so that the slow part, the disk write, can run
        in a worker thread; afterwards call ``document.mark_saved(pending.revision)`` on the editing
        thread (the document stays dirty if it changed meanwhile).
        """
        return self.snapshot().encode()

    def snapshot(self) -> SaveSnapshot:
        """Freeze what a save would write, cheaply (call it where the document is edited).

        ``snapshot().encode()`` (any thread) gives what :meth:`prepare_save` gives, so that both the
        serialisation and the disk write can leave the editing thread; pass the result to
        :meth:`write_save` and then ``document.mark_saved(pending.revision)`` on the editing thread.
        """
        if self.read_only:
            raise ProjectError(f"project {self.path} is open read-only (or closed); it cannot be saved")
        return SaveSnapshot(DocumentSnapshot(self.document), copy.deepcopy(self.settings))

    def write_save(self, pending: PendingSave) -> None:
        """Write serialised bytes atomically (does not touch the document). Raises SaveError."""
        if self.read_only:
            raise ProjectError(f"project {self.path} is open read-only (or closed); it cannot be saved")
        atomic_write(self.path, pending.data, keep_backup=self._keep_backup)
        self._keep_backup = True

    def close(self) -> None:
        """Release the lock (unsaved changes are not written: call :meth:`save` first)."""
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _both_damaged(
    path: Path, backup: Path, damage: CorruptProjectError, backup_damage: CorruptProjectError
) -> CorruptProjectError:
    """The error for a damaged project file whose backup is damaged too (names both and any copies of
    damaged versions set aside by earlier recoveries)."""
    message = f"{damage.reason}\nIts backup is damaged too: {backup_damage.reason}"
    earlier = sorted(path.parent.glob(f"{path.name}.corrupt-*"))
    if earlier:
        message += (
            "\nDamaged versions set aside by earlier recoveries (they may hold labels to copy by hand): "
            + ", ".join(p.name for p in earlier)
        )
    return CorruptProjectError(message, path, damaged_backup=backup)


def recover_from_backup(path: str | Path, *, read_only: bool = False) -> Project:
    """Open a project whose file is damaged from its last good version (``<file>.bak``)."""
    return Project.open(path, recover=True, read_only=read_only)
