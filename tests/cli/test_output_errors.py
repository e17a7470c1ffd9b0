"""Output problems of `export`, `import`, `export-onnx` and `precompute`: a one-line error, exit status 2.

The project file, its backup and its lock file are never replaced by an output, and an unwritable or
misnamed output is reported before anything is written. Tests run as root in CI, where permission bits
do not stop a write: they deny access through ``os.access`` or ``os.open`` instead.
"""

from __future__ import annotations

import errno
import os
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from efficientsam_studio.annotations import commands as C
from efficientsam_studio.annotations import storage
from efficientsam_studio.annotations.errors import SaveError
from efficientsam_studio.annotations.project import Project, load_document
from efficientsam_studio.cli.main import main
from efficientsam_studio.engine.torch_backend import TorchPredictor


def _make_project(folder: Path, names: tuple[str, ...] = ("one.png", "two.png")) -> Path:
    folder.mkdir()
    for name in names:
        cv2.imwrite(str(folder / name), np.full((40, 50, 3), 30, np.uint8))
    with Project.create(folder) as project:
        stack = C.UndoStack()
        add = C.AddCategory(project.document, "cell")
        stack.push(add)
        for image in project.document.images:
            mask = np.zeros((40, 50), bool)
            mask[5:20, 5:30] = True
            stack.push(C.AddInstance.from_mask(project.document, image.id, add.category.id, mask))
        project.save()
        project.save()  # the .bak now holds a labelled version too
        return project.path


@pytest.fixture
def project_path(tmp_path: Path) -> Path:
    return _make_project(tmp_path / "photos")


def _deny_access(monkeypatch: pytest.MonkeyPatch, *denied: Path) -> None:
    """Make ``os.access`` report ``denied`` folders as not writable (as for a user without permission)."""
    real_access = os.access
    denied_real = {p.resolve() for p in denied}

    def access(path, mode, **kwargs):
        if mode & os.W_OK and Path(path).resolve() in denied_real:
            return False
        return real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)


def _assert_one_line_error(err: str, *words: str) -> None:
    assert "Traceback" not in err
    for word in words:
        assert word in err, err


# ------------------------------------------------------------------------------------ the project's files
@pytest.mark.parametrize("suffix", ["", ".bak", ".lock"])
def test_coco_export_never_replaces_the_project_its_backup_or_lock(project_path, capsys, suffix):
    target = project_path.with_name(project_path.name + suffix)
    if suffix == ".lock":
        target.write_text("{}")
    before = {p.name: p.read_bytes() for p in project_path.parent.iterdir() if p.is_file()}
    assert main(["export", str(project_path), "--format", "coco", "--out", str(target)]) == 2
    captured = capsys.readouterr()
    _assert_one_line_error(captured.err, str(target))
    assert "exported" not in captured.out
    assert {p.name: p.read_bytes() for p in project_path.parent.iterdir() if p.is_file()} == before
    assert load_document(project_path).instance_count == 2


def test_the_project_file_is_recognised_by_another_spelling_of_its_path(project_path, capsys, monkeypatch):
    monkeypatch.chdir(project_path.parent)
    other = Path("..") / project_path.parent.name / project_path.name
    assert main(["export", str(project_path), "--format", "coco", "--out", str(other)]) == 2
    assert "project file" in capsys.readouterr().err
    assert load_document(project_path).instance_count == 2


def test_a_folder_export_that_would_write_over_the_project_file_is_refused(tmp_path, capsys):
    project_path = _make_project(tmp_path / "photos", ("one.png", "photos.efsam.png"))
    before = project_path.read_bytes()
    rc = main(["export", str(project_path), "--format", "labelme", "--out", str(project_path.parent)])
    assert rc == 2
    _assert_one_line_error(capsys.readouterr().err, "project file", str(project_path.name))
    assert project_path.read_bytes() == before
    assert not (project_path.parent / "one.json").exists()  # refused before writing anything


def test_a_yolo_export_never_places_an_image_over_itself(tmp_path, capsys):
    project_path = _make_project(tmp_path / "images")
    image = project_path.parent / "one.png"
    before = image.read_bytes()
    assert main(["export", str(project_path), "--format", "yolo", "--out", str(tmp_path)]) == 2
    _assert_one_line_error(capsys.readouterr().err, "one.png")
    assert image.read_bytes() == before


# ------------------------------------------------------------------------------------ unusable outputs
@pytest.mark.parametrize("fmt", ["labelme", "yolo", "masks", "coco"])
def test_an_existing_file_where_a_folder_is_needed_is_a_clear_error(project_path, tmp_path, capsys, fmt):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    assert main(["export", str(project_path), "--format", fmt, "--out", str(notes)]) == 2
    expected = "give a path ending in .json, or a folder" if fmt == "coco" else "not a folder"
    _assert_one_line_error(capsys.readouterr().err, str(notes), expected)
    assert notes.read_text() == "my notes"


def test_an_output_inside_a_file_is_a_clear_error(project_path, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    out = notes / "labels"
    assert main(["export", str(project_path), "--format", "masks", "--out", str(out)]) == 2
    _assert_one_line_error(capsys.readouterr().err, str(notes), "not a folder")


def test_a_coco_file_named_like_a_folder_is_a_clear_error(project_path, tmp_path, capsys):
    folder = tmp_path / "labels.json"
    folder.mkdir()
    assert main(["export", str(project_path), "--format", "coco", "--out", str(folder)]) == 2
    _assert_one_line_error(capsys.readouterr().err, str(folder), "is a folder")


@pytest.mark.parametrize("fmt", ["labelme", "yolo", "masks", "coco"])
def test_export_into_an_unwritable_folder_is_refused_before_writing(
    project_path, tmp_path, capsys, monkeypatch, fmt
):
    locked = tmp_path / "locked"
    locked.mkdir()
    _deny_access(monkeypatch, locked)
    assert main(["export", str(project_path), "--format", fmt, "--out", str(locked / "out")]) == 2
    _assert_one_line_error(capsys.readouterr().err, str(locked))
    assert list(locked.iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="permissions do not stop root")
def test_export_into_a_read_only_folder_with_real_permissions(project_path, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(["export", str(project_path), "--format", "labelme", "--out", str(locked)]) == 2
    finally:
        locked.chmod(0o755)
    _assert_one_line_error(capsys.readouterr().err, str(locked))


def test_an_os_error_during_the_export_is_one_line_with_path_and_reason(
    project_path, tmp_path, capsys, monkeypatch
):
    from efficientsam_studio.annotations.formats import png_masks

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "out" / "semantic"))

    monkeypatch.setattr(png_masks, "export_png_masks", refuse)
    assert main(["export", str(project_path), "--format", "masks", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    _assert_one_line_error(
        err, "efsam-studio export: error:", str(tmp_path / "out" / "semantic"), "Permission denied"
    )
    assert len(err.strip().splitlines()) == 1


def test_a_failed_file_write_names_the_cause_not_only_space(project_path, tmp_path, capsys, monkeypatch):
    real_open = os.open

    def refuse(path, *args, **kwargs):
        if "annotations.json" in os.fspath(path):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    out = tmp_path / "coco" / "annotations.json"
    assert main(["export", str(project_path), "--format", "coco", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    _assert_one_line_error(err, str(out), "Permission denied")
    assert "free some space" not in err and "still open" not in err


# ------------------------------------------------------------------------------------ saving
def test_a_save_refused_for_permission_says_so(project_path, monkeypatch):
    real_open = os.open

    def refuse(path, *args, **kwargs):
        if os.fspath(path).endswith(".tmp"):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_open(path, *args, **kwargs)

    with Project.open(project_path) as project:
        C.UndoStack().push(C.AddCategory(project.document, "dog"))
        monkeypatch.setattr(os, "open", refuse)
        with pytest.raises(SaveError) as caught:
            project.save()
        monkeypatch.undo()
    message = str(caught.value)
    assert "Permission denied" in message and "previous version of the file is unchanged" in message
    assert "free some space" not in message and "still open" not in message


def test_a_full_disk_still_says_so(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(SaveError, match="disk is full.*free some space"):
        storage.atomic_write(tmp_path / "new.json", b"{}")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------ import and the lock
def _refuse_lock_files(monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def refuse(path, *args, **kwargs):
        if os.fspath(path).endswith(".lock"):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)


def test_import_into_a_read_only_project_folder_is_a_clear_error(project_path, tmp_path, capsys, monkeypatch):
    coco = tmp_path / "labels.json"
    assert main(["export", str(project_path), "--format", "coco", "--out", str(coco)]) == 0
    before = project_path.read_bytes()
    _refuse_lock_files(monkeypatch)
    assert main(["import", str(project_path), "--format", "coco", "--from", str(coco)]) == 2
    err = capsys.readouterr().err
    _assert_one_line_error(err, str(project_path) + ".lock", "Permission denied")
    assert project_path.read_bytes() == before


def test_import_reports_a_recovered_project(project_path, tmp_path, capsys):
    coco = tmp_path / "labels.json"
    assert main(["export", str(project_path), "--format", "coco", "--out", str(coco)]) == 0
    project_path.write_text("{ damaged")
    assert main(["import", str(project_path), "--format", "coco", "--from", str(coco), "--recover"]) == 0
    out = capsys.readouterr().out
    assert "last good version" in out and ".corrupt-" in out


# ------------------------------------------------------------------------------------ export-onnx
def test_export_onnx_to_an_existing_file_is_refused_before_loading(tiny_checkpoint, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    command = ["export-onnx", "--model", "tiny", "--checkpoint", str(tiny_checkpoint), "--out", str(notes)]
    assert main(command) == 2
    _assert_one_line_error(capsys.readouterr().err, str(notes), "not a folder")
    assert notes.read_text() == "my notes"


def test_export_onnx_to_an_unwritable_folder_is_refused(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    _deny_access(monkeypatch, locked)
    command = ["export-onnx", "--model", "tiny", "--checkpoint", str(tiny_checkpoint), "--out", str(locked)]
    assert main(command) == 2
    _assert_one_line_error(capsys.readouterr().err, str(locked))
    assert list(locked.iterdir()) == []


# ------------------------------------------------------------------------------------ precompute
def _precompute_command(folder: Path, checkpoint: Path, cache: Path) -> list[str]:
    return [
        "precompute", str(folder), "--model", "tiny", "--checkpoint", str(checkpoint),
        "--backend", "torch", "--device", "cpu", "--cache-dir", str(cache),
    ]  # fmt: skip


def test_precompute_checks_the_cache_folder_before_encoding(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((20, 30, 3), np.uint8))
    cache = tmp_path / "cache"
    cache.mkdir()
    _deny_access(monkeypatch, cache)
    encodes = []
    monkeypatch.setattr(TorchPredictor, "_encode", lambda self, image: encodes.append(1))
    command = _precompute_command(folder, tiny_checkpoint, cache)
    assert main(command) == 2
    err = capsys.readouterr().err
    _assert_one_line_error(err, str(cache))
    assert "free space" not in err
    assert encodes == []


def test_precompute_names_the_reason_an_embedding_was_not_stored(
    tmp_path, tiny_checkpoint, capsys, monkeypatch
):
    from efficientsam_studio.engine import cache_disk

    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((20, 30, 3), np.uint8))

    def refuse(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(cache_disk, "tempfile", types.SimpleNamespace(mkstemp=refuse))
    command = _precompute_command(folder, tiny_checkpoint, tmp_path / "cache")
    assert main(command) == 1
    out = capsys.readouterr().out
    assert "1 not stored" in out and "Input/output error" in out
