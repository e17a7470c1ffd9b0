"""The weights manager: a catalogue of the published EfficientSAM files and the per-user store holding them.

The store is :func:`efficientsam_studio.paths.weights_dir` (``$EFSAM_HOME/weights`` when ``EFSAM_HOME`` is
set, else the platformdirs data folder). Files keep their published names:

============== =================================================== =================================
name           installed files                                     integrity
============== =================================================== =================================
``vit_t``      ``efficient_sam_vitt.pt`` (40,999,911 bytes)        git blob id (SHA-1)
``vit_s``      ``efficient_sam_vits.pt`` (from the ``.pt.zip``)     none published: zip CRC + loading
``vit_t_onnx`` ``efficient_sam_vitt_{encoder,decoder}.onnx``        sha256 each
``vit_s_onnx`` ``efficient_sam_vits_{encoder,decoder}.onnx``        sha256 each
============== =================================================== =================================

A file counts as installed when it is there and, where the catalogue knows its exact size, has that
size or is another complete checkpoint (a zip archive with its end record, as ``torch.save`` writes: an
imported one). Any other file is damaged (:func:`damaged_files`, a cut-off download most often): it is not
used, and :func:`download` replaces it.

:func:`download` fetches an entry (resume, retries, checksum, atomic rename, one download of a file at a
time: see :mod:`efficientsam_studio.engine.download`). The published vit_s comes as
``efficient_sam_vits.pt.zip``; it is unpacked to ``efficient_sam_vits.pt`` (the zip's CRC-32 checked on
the way) and, since no checksum was published for it, the result is accepted only if it loads as a vit_s
checkpoint. New files are checked before they take the place of installed ones, so a bad download never
costs the weights already there. The zip is deleted once unpacked; a complete zip kept by a failed
unpack (a full disk) is unpacked by the next run without downloading it again. All files are fetched from
``<base>/<published file name>`` instead of their published URLs when a base URL is given, as the
``base_url`` argument or the environment variable ``EFSAM_WEIGHTS_URL`` (a mirror, or a local server in
tests).

:func:`import_weights` installs a checkpoint the user already has, after loading it to check that it is
an EfficientSAM vit_t or vit_s checkpoint. Checkpoints of the small ``tiny`` model (``train --preset
tiny``) are not installed: they are used where they are, with ``--model tiny --checkpoint PATH``.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from efficientsam_studio.engine.download import (
    Checksum,
    DownloadCancelled,
    DownloadError,
    DownloadInProgress,
    DownloadLock,
    ProgressCallback,
    RetryCallback,
    fetch_file,
    file_checksum,
    verify_file,
)
from efficientsam_studio.engine.weights_catalogue import CATALOGUE, RemoteFile, WeightsEntry
from efficientsam_studio.errors import CheckpointError, StudioError, os_error_reason
from efficientsam_studio.paths import weights_dir

__all__ = [
    "BASE_URL_ENV",
    "Checksum",
    "DownloadCancelled",
    "DownloadError",
    "DownloadInProgress",
    "RemoteFile",
    "WeightsEntry",
    "UnknownWeightsError",
    "WeightsError",
    "catalogue",
    "damaged_files",
    "download",
    "get_entry",
    "import_weights",
    "installed_onnx",
    "installed_path",
    "matches_published",
    "missing_weights_message",
]

BASE_URL_ENV = "EFSAM_WEIGHTS_URL"

#: Retries after a failed attempt and the first backoff delay in seconds (doubled per retry), used when
#: :func:`download` is not given them.
DOWNLOAD_RETRIES = 4
DOWNLOAD_BACKOFF_S = 1.0


class WeightsError(StudioError):
    """An unknown catalogue name, or weights that cannot be installed."""


class UnknownWeightsError(WeightsError, ValueError):
    """No catalogue entry has the name asked for (also a ``ValueError``: a bad argument value)."""


def catalogue() -> dict[str, WeightsEntry]:
    """The published weights by name (``vit_t``, ``vit_s``, ``vit_t_onnx``, ``vit_s_onnx``), in order."""
    return dict(CATALOGUE)


def get_entry(name: str) -> WeightsEntry:
    """The catalogue entry ``name``; raises :class:`WeightsError` listing the names for an unknown one."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise UnknownWeightsError(
            f"no published weights are called {name!r}; choose one of: {', '.join(CATALOGUE)}"
        ) from None


def _size_of(path: Path) -> int | None:
    """The size of the file ``path``, or ``None`` when there is no such file."""
    try:
        return path.stat().st_size if path.is_file() else None
    except OSError:
        return None


def _intact(remote: RemoteFile, path: Path) -> bool:
    """Whether ``path`` holds ``remote`` or a checkpoint in its place, as far as a cheap look tells: a
    non-empty file of the exact published size where one is known, or else a complete zip archive."""
    size = _size_of(path)
    if not size:
        return False
    if remote.unpack is not None or remote.size is None or size == remote.size:
        return True
    try:
        return zipfile.is_zipfile(path)  # reads the end record only
    except OSError:
        return False


def _installed(entry: WeightsEntry) -> list[Path] | None:
    store = weights_dir()
    paths = [store / f.installed_name for f in entry.files]
    return paths if all(_intact(f, p) for f, p in zip(entry.files, paths, strict=True)) else None


def damaged_files(name: str) -> list[tuple[Path, int, int | None]]:
    """The files of ``name`` in the store that are empty or whose size is not the published one, as
    ``(path, size, published size or None where the installed file's size is not published)``; such a
    file is not counted as installed and :func:`download` replaces it."""
    found = []
    for remote in get_entry(name).files:
        path = weights_dir() / remote.installed_name
        size = _size_of(path)
        if size is not None and not _intact(remote, path):
            published = remote.size if remote.unpack is None else None  # an archive's size is not the file's
            found.append((path, size, published))
    return found


def _describe_damage(path: Path, size: int, published: int | None) -> str:
    if size == 0 or published is None:
        return f"{path.name} is empty" if size == 0 else f"{path.name} is damaged"
    return f"{path.name} has {size:,} bytes instead of {published:,}"


def installed_path(name: str) -> Path | None:
    """The installed torch checkpoint of ``"vit_t"`` or ``"vit_s"``, or ``None`` when not installed.

    The file loads with ``load_predictor(model=name, checkpoint=path)``.
    """
    entry = get_entry(name)
    if entry.format != "torch":
        raise WeightsError(f"{name!r} names ONNX files; use installed_onnx({entry.model!r}) for them")
    found = _installed(entry)
    return found[0] if found else None


def installed_onnx(name: str) -> tuple[Path, Path] | None:
    """``(encoder, decoder)`` of the installed published ONNX pair of ``name`` (``"vit_t"``/``"vit_s"``
    or ``"vit_t_onnx"``/``"vit_s_onnx"``), or ``None`` when either file is missing."""
    entry = get_entry(name if name.endswith("_onnx") else f"{name}_onnx")
    found = _installed(entry)
    return (found[0], found[1]) if found else None


def _base_url(base_url: str | None) -> str | None:
    base = base_url if base_url is not None else os.environ.get(BASE_URL_ENV, "").strip()
    return base.rstrip("/") if base else None


def download(
    name: str,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | Callable[[], bool] | None = None,
    *,
    base_url: str | None = None,
    force: bool = False,
    retries: int | None = None,
    backoff: float | None = None,
    timeout: float = 30.0,
    on_retry: RetryCallback | None = None,
) -> Path:
    """Download and install the catalogue entry ``name``; returns the installed file.

    For torch entries that is the checkpoint (the same as :func:`installed_path` afterwards), for ONNX
    pairs the encoder (:func:`installed_onnx` gives both). Weights already installed are kept and
    returned as they are unless ``force``.

    Args:
        progress: ``progress(bytes_done, bytes_total_or_None)`` over the whole entry, after every chunk.
        cancel: a :class:`threading.Event` or a callable returning ``True`` to stop; checked between
            chunks. Raises :class:`DownloadCancelled`; the partial file is kept and resumed next time.
        base_url: fetch ``<base_url>/<file name>`` instead of the published URLs (default: the
            environment variable ``EFSAM_WEIGHTS_URL`` when set).
        retries, backoff: see :func:`~efficientsam_studio.engine.download.fetch_file`; default
            :data:`DOWNLOAD_RETRIES` and :data:`DOWNLOAD_BACKOFF_S`.
        on_retry: told before each retry after a failed attempt (see
            :data:`~efficientsam_studio.engine.download.RetryCallback`).

    Raises:
        DownloadError: network or server failure, checksum mismatch (nothing is installed), an archive
            or checkpoint that does not hold what it should.
        WeightsError: unknown ``name``.
    """
    entry = get_entry(name)
    if not force and (found := _installed(entry)) is not None:
        return found[0]
    store = weights_dir()
    base = _base_url(base_url)
    known = [f.size for f in entry.files]
    entry_total = sum(known) if all(s is not None for s in known) else None  # type: ignore[arg-type]
    offset = 0
    for remote in entry.files:
        target = store / remote.installed_name
        if not force and _intact(remote, target):
            offset += target.stat().st_size
            continue
        url = f"{base}/{remote.filename}" if base else remote.url
        start = offset

        def report(done: int, total: int | None, start: int = start) -> None:
            if progress is not None:
                progress(start + done, entry_total if entry_total is not None else _plus(start, total))

        try:
            store.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DownloadError(f"cannot create the folder {store}: {os_error_reason(exc)}") from None
        fetch_options = {
            "cancel": cancel,
            "retries": DOWNLOAD_RETRIES if retries is None else retries,
            "backoff": DOWNLOAD_BACKOFF_S if backoff is None else backoff,
            "timeout": timeout,
            "on_retry": on_retry,
        }
        with DownloadLock(store / remote.filename):
            offset += _install_file(entry, remote, url, report, force, fetch_options)
    return store / entry.files[0].installed_name


def _install_file(
    entry: WeightsEntry, remote: RemoteFile, url: str, report: ProgressCallback, force: bool, options: dict
) -> int:
    """Download (or reuse a kept archive of) one file of ``entry`` and install it; returns the bytes
    of the download. Runs with the download lock of the file held; ``options`` go to ``fetch_file``."""
    store = weights_dir()
    downloaded = store / remote.filename
    check = None
    if remote.checksum is None and entry.format == "torch" and not remote.unpack:
        check = lambda path: _validate(path, entry, url)  # noqa: E731 (a one-line check)
    if remote.unpack and not force and _complete_archive(remote, downloaded):
        report(downloaded.stat().st_size, downloaded.stat().st_size)
    else:
        options = {**options, "size": remote.size, "checksum": remote.checksum, "check": check, "lock": False}
        fetch_file(url, downloaded, progress=report, **options)
    size = downloaded.stat().st_size
    if remote.unpack:
        _unpack(downloaded, store / remote.installed_name, url, entry)
    return size


def _complete_archive(remote: RemoteFile, path: Path) -> bool:
    """Whether ``path`` is a complete download of ``remote`` kept by an earlier run (a file under the
    final name was verified before its rename); one that fails the published size or checksum is
    removed."""
    if not _size_of(path):
        return False
    if verify_file(path, remote.size, remote.checksum) is None:
        return True
    path.unlink(missing_ok=True)
    return False


def _plus(start: int, total: int | None) -> int | None:
    return None if total is None else start + total


def _zip_member(archive: zipfile.ZipFile, wanted: str) -> str:
    """The member of ``archive`` to extract: ``wanted`` (in any folder), else its only ``.pt`` file."""
    names = [n for n in archive.namelist() if not n.startswith("__MACOSX/") and not n.endswith("/")]
    exact = [n for n in names if n.rsplit("/", 1)[-1] == wanted]
    candidates = exact or [n for n in names if n.endswith((".pt", ".pth"))]
    if len(candidates) != 1:
        listed = ", ".join(names[:5]) or "nothing"
        raise DownloadError(f"expected one {wanted} inside the zip archive, found: {listed}")
    return candidates[0]


def _copy_member(archive: zipfile.ZipFile, member: str, part: Path) -> None:
    """Extract ``member`` of ``archive`` to ``part`` and flush it to disk (zipfile checks the CRC-32)."""
    with archive.open(member) as source, open(part, "wb") as sink:
        shutil.copyfileobj(source, sink, 1 << 20)
        sink.flush()
        os.fsync(sink.fileno())


def _unpack(archive_path: Path, target: Path, url: str, entry: WeightsEntry) -> None:
    """Extract the checkpoint from ``archive_path`` and check it, then move it over ``target`` and
    delete the archive.

    A damaged archive, or one whose checkpoint is not one of ``entry.model``, is removed and nothing is
    replaced. When the checkpoint cannot be written (a full disk), the archive is kept for the next run.
    """
    part = target.with_name(target.name + ".part")
    unpacked_bytes = None
    try:
        with zipfile.ZipFile(archive_path) as archive:
            member = _zip_member(archive, target.name)
            unpacked_bytes = archive.getinfo(member).file_size
            _copy_member(archive, member, part)
    except (zipfile.BadZipFile, zlib.error, EOFError, DownloadError) as exc:
        part.unlink(missing_ok=True)
        archive_path.unlink(missing_ok=True)
        raise DownloadError(
            f"{url}: the downloaded archive is damaged or unexpected ({exc}); it was removed, run the "
            "command again"
        ) from None
    except OSError as exc:
        part.unlink(missing_ok=True)
        needs = f" (unpacking needs {_human_bytes(unpacked_bytes)} free)" if unpacked_bytes else ""
        raise DownloadError(
            f"cannot unpack {archive_path} to {target}: {os_error_reason(exc)}. The downloaded archive "
            f"{archive_path} ({_human_bytes(archive_path.stat().st_size)}) is kept; run the command again "
            f"to unpack it without downloading it again{needs}"
        ) from None
    if entry.format == "torch":
        try:
            _validate(part, entry, url)
        except DownloadError:
            part.unlink(missing_ok=True)
            archive_path.unlink(missing_ok=True)
            raise
    try:
        os.replace(part, target)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"cannot move the unpacked checkpoint to {target}: {os_error_reason(exc)}"
        ) from None
    archive_path.unlink(missing_ok=True)


def _validate(path: Path, entry: WeightsEntry, url: str) -> None:
    """Raise :class:`DownloadError` when the new file ``path`` does not load as a checkpoint of
    ``entry.model``; the caller removes it, and the installed weights stay as they are."""
    from efficientsam_studio.engine.checkpoints import load_state_dict_file

    try:
        load_state_dict_file(path, entry.model)
    except CheckpointError as exc:
        reason = re.sub(r"; download (or copy )?it again.*$", "", str(exc).removeprefix(f"{path}: "))
        installed = weights_dir() / entry.files[0].installed_name
        kept = f"; the installed {installed} was left as it was" if installed.exists() else ""
        raise DownloadError(
            f"{url}: the downloaded file is not a usable {entry.model} checkpoint ({reason}); it was "
            f"removed{kept}"
        ) from None


def matches_published(path: Path, name: str) -> bool:
    """Whether ``path`` is byte for byte the published file of ``name`` (only where a checksum exists)."""
    remote = get_entry(name).files[0]
    if remote.checksum is None or remote.unpack:
        return False
    if remote.size is not None and Path(path).stat().st_size != remote.size:
        return False
    return file_checksum(Path(path), remote.checksum.kind) == remote.checksum.value


def import_weights(path: str | os.PathLike[str], name: str | None = None) -> Path:
    """Install a checkpoint the user already has; returns the installed path.

    The file (a ``{"model": state_dict}`` or bare state_dict ``.pt``, or a zip holding one, like the
    published ``efficient_sam_vits.pt.zip``) is loaded and checked against the layout of ``name``, or of
    the architecture it is recognised as when ``name`` is ``None``. It is then copied into the store
    under the published file name atomically, replacing an installed file of that model.

    Raises:
        CheckpointError: missing, truncated, corrupt, or not an EfficientSAM vit_t/vit_s checkpoint (for
            example a SAM checkpoint); the message names the file and the problem.
        WeightsError: ``name`` is not ``"vit_t"`` or ``"vit_s"``, or the store cannot be written.
    """
    from efficientsam_studio.engine.checkpoints import (
        extract_state_dict,
        identify_architecture,
        read_checkpoint,
        validate_state_dict,
    )
    from efficientsam_studio.model import MODEL_CONFIGS

    source = Path(path)
    torch_names = [n for n, e in CATALOGUE.items() if e.format == "torch"]
    if name is not None and name not in torch_names:
        raise WeightsError(
            f"weights import takes torch checkpoints of {' or '.join(torch_names)}, not {name!r}"
        )
    state_dict = extract_state_dict(read_checkpoint(source), source)
    architecture = identify_architecture(state_dict)
    if architecture in MODEL_CONFIGS and architecture not in torch_names:
        raise CheckpointError(
            f"{source}: is not a checkpoint of the published EfficientSAM models "
            f"({' or '.join(torch_names)}; it looks like: {architecture}). Only those are installed into "
            f"the weights store; use this file where it is: --model {architecture} --checkpoint {source} "
            "(segment, label, gui)"
        )
    if name is None:
        name = architecture
        if name.startswith("sam_"):
            validate_state_dict(state_dict, "vit_t", source)  # raises: "looks like a SAM ... checkpoint"
        if name not in torch_names:
            raise CheckpointError(
                f"{source}: is not a checkpoint of the published EfficientSAM models "
                f"({' or '.join(torch_names)}; it looks like: {name}); pass --name if it should be one"
            )
    validate_state_dict(state_dict, name, source)
    target = weights_dir() / get_entry(name).files[0].installed_name
    if target.exists() and target.resolve() == source.resolve():
        return target
    _copy_into_store(source, target)
    return target


def _copy_into_store(source: Path, target: Path) -> None:
    part = target.with_name(target.name + ".import.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(part, "wb") as sink:
            if zipfile.is_zipfile(source) and not _is_torch_archive(source):
                with (
                    zipfile.ZipFile(source) as archive,
                    archive.open(_zip_member(archive, target.name)) as src,
                ):
                    shutil.copyfileobj(src, sink, 1 << 20)
            else:
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, sink, 1 << 20)
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(part, target)
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError, DownloadError) as exc:
        part.unlink(missing_ok=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise WeightsError(f"cannot install {source} as {target}: {reason}") from None


def _is_torch_archive(path: Path) -> bool:
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("/data.pkl") or n == "data.pkl" for n in archive.namelist())


def _human_bytes(count: int | None) -> str:
    if count is None:
        return "size unknown"
    return f"{count / 1e6:.1f} MB"


def missing_weights_message(name: str) -> str:
    """What to tell a user who has no weights for ``name`` installed: the ways to get them."""
    entry = get_entry(name)
    remote = entry.files[0]
    size = _human_bytes(entry.display_bytes)
    approx = "about " if remote.size is None and remote.approx_bytes else ""
    wanted = ", ".join(f.installed_name for f in entry.files)
    damaged = damaged_files(name)
    if damaged:
        found = "; ".join(_describe_damage(*item) for item in damaged)
        what = f"the installed {name} weights in {weights_dir()} are damaged ({found})"
    else:
        what = f"no {name} weights are installed (looked for {wanted} in {weights_dir()})"
    message = (
        f"{what}. Download them: efsam-studio weights download {name}  ({approx}{size} from {remote.url})"
    )
    if entry.format == "torch":
        message += (
            "; or install a copy you already have: efsam-studio weights import PATH"
            "; or pass the file directly: --checkpoint PATH"
        )
    return message
