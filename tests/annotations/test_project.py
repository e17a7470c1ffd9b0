"""Projects: create/open/save round trip, atomic saves, backups, locks, schema versions, damaged files."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from efficientsam_studio.annotations import commands as C
from efficientsam_studio.annotations import storage
from efficientsam_studio.annotations.document import ImageStatus
from efficientsam_studio.annotations.errors import (
    CorruptProjectError,
    ProjectError,
    ProjectLockedError,
    SaveError,
    SchemaVersionError,
)
from efficientsam_studio.annotations.project import Project, load_document, recover_from_backup
from efficientsam_studio.annotations.schema import SCHEMA_VERSION

from .conftest import disk, ring, snapshot


def make_folder(tmp_path, count=3, size=(48, 64)):
    folder = tmp_path / "shots"
    folder.mkdir()
    for n in range(count):
        image = np.full((*size, 3), 40 * n, np.uint8)
        cv2.imwrite(str(folder / f"img{n}.png"), image)
    return folder


@pytest.fixture
def project(tmp_path):
    with Project.create(make_folder(tmp_path), "labels") as opened:
        yield opened


def label_something(project: Project) -> None:
    stack = C.UndoStack()
    add = C.AddCategory(project.document, "cell")
    stack.push(add)
    stack.push(
        C.AddInstance.from_mask(project.document, 1, add.category.id, disk(20, 20, 8), score=0.8, source="ai")
    )
    stack.push(C.AddInstance.from_mask(project.document, 1, add.category.id, ring(40, 24, 12, 5)))
    stack.push(C.SetImageStatus(project.document, 1, ImageStatus.DONE))


def test_create_scans_images_and_save_open_round_trip(project):
    assert [i.path for i in project.document.images] == ["img0.png", "img1.png", "img2.png"]
    assert (project.document.images[0].width, project.document.images[0].height) == (64, 48)
    assert project.path.name == "labels.efsam.json" and not project.document.dirty
    label_something(project)
    assert project.document.dirty
    project.save()
    assert not project.document.dirty
    expected = snapshot(project.document)
    project.close()
    with Project.open(project.folder) as again:
        assert snapshot(again.document) == expected and not again.document.dirty
    assert snapshot(load_document(project.path)) == expected


def test_file_is_versioned_json_with_one_record_per_line(project):
    label_something(project)
    project.save()
    text = project.path.read_text()
    data = json.loads(text)
    assert data["schema_version"] == SCHEMA_VERSION and data["format"] == "efficientsam-studio-project"
    assert isinstance(data["instances"][0]["segmentation"]["counts"], str)
    assert len(text.splitlines()) > len(data["instances"]) + len(data["images"])


def test_save_keeps_previous_version_as_bak(project):
    first = project.path.read_bytes()
    label_something(project)
    project.save()
    assert storage.backup_path(project.path).read_bytes() == first


def test_new_images_are_added_and_missing_ones_reported_not_fatal(project):
    label_something(project)
    project.save()
    project.close()
    (project.folder / "img2.png").unlink()
    cv2.imwrite(str(project.folder / "img9.png"), np.zeros((10, 20, 3), np.uint8))
    (project.folder / "broken.png").write_bytes(b"not an image")
    with Project.open(project.path) as again:
        assert [i.path for i in again.missing_images] == ["img2.png"]
        assert again.document.image_by_path("img2.png") is not None
        added = again.document.image_by_path("img9.png")
        assert (added.width, added.height) == (20, 10)
        report = again.scan()
        assert report.added == [] and report.unreadable[0][0] == "broken.png"


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_failed_save_leaves_previous_file_intact_and_document_dirty(project, monkeypatch, failing):
    label_something(project)
    project.save()
    before = project.path.read_bytes()
    C.UndoStack().push(C.AddCategory(project.document, "dog"))

    def boom(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, failing, boom)
    with pytest.raises(SaveError, match="disk is full.*previous version of the file is unchanged"):
        project.save()
    monkeypatch.undo()
    assert project.path.read_bytes() == before
    assert project.document.dirty
    assert not [p for p in project.folder.iterdir() if p.name.endswith(".tmp")]
    project.save()
    assert not project.document.dirty and load_document(project.path).category_by_name("dog")


def test_second_open_is_refused_while_locked(project):
    with pytest.raises(ProjectLockedError, match="already open in this program") as refused:
        Project.open(project.path)
    assert "delete the lock file" not in str(refused.value)  # it is in use, right here
    with Project.open(project.path, read_only=True) as reader:
        with pytest.raises(ProjectError, match="read-only"):
            reader.save()
    project.close()
    with Project.open(project.path):
        pass


def test_two_processes_on_one_project(project):
    script = textwrap.dedent(f"""
        import sys
        from efficientsam_studio.annotations.errors import ProjectLockedError
        from efficientsam_studio.annotations.project import Project
        try:
            Project.open({str(project.path)!r})
        except ProjectLockedError as exc:
            print("LOCKED", exc)
            sys.exit(3)
        print("OPENED")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    assert f"process {os.getpid()}" in result.stdout or "already open" in result.stdout
    project.close()
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "OPENED" in result.stdout, result.stderr


def test_stale_lock_of_a_dead_process_is_recovered(project):
    project.close()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = storage.lock_path(project.path)
    lock.write_text(
        json.dumps(
            {
                "pid": dead.pid,
                "hostname": __import__("socket").gethostname(),
                "since": "2026-01-01T00:00:00+00:00",
            }
        )
    )
    with Project.open(project.path) as again:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        assert again.document.images
    assert not lock.exists()


def test_lock_of_another_host_is_not_taken_over(project):
    project.close()
    storage.lock_path(project.path).write_text(
        json.dumps({"pid": 1, "hostname": "elsewhere.example", "since": "2026-01-01T00:00:00+00:00"})
    )
    with pytest.raises(ProjectLockedError, match="process 1 on elsewhere.example since 2026-01-01"):
        Project.open(project.path)


def test_newer_schema_is_refused_and_file_untouched(project):
    project.close()
    data = json.loads(project.path.read_text())
    data["schema_version"] = SCHEMA_VERSION + 1
    project.path.write_text(json.dumps(data))
    before = project.path.read_bytes()
    with pytest.raises(SchemaVersionError, match=f"schema version {SCHEMA_VERSION + 1}.*newer"):
        Project.open(project.path)
    assert project.path.read_bytes() == before and not storage.lock_path(project.path).exists()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda text: text[: len(text) // 2], "not valid JSON: .* \\(line \\d+, column \\d+\\)"),
        (
            lambda text: text.replace('"counts":', '"kounts":', 1),
            r"instances\[0\] \(instance id 1\)"
            r"\.segmentation\.counts: is missing",
        ),
        (lambda text: text.replace('"status":"done"', '"status":"finished"', 1), r"images\[0\]\.status"),
        (
            lambda text: text.replace('"format": "efficientsam-studio-project"', '"format": "x"'),
            "not an EfficientSAM Studio project",
        ),
    ],
)
def test_damaged_file_is_reported_and_backup_offered(project, damage, message):
    label_something(project)
    project.save()
    project.save()  # the .bak now holds the labelled version too
    good = snapshot(project.document)
    project.close()
    project.path.write_text(damage(project.path.read_text()))
    with pytest.raises(CorruptProjectError, match=message) as caught:
        Project.open(project.path)
    assert caught.value.backup_path == storage.backup_path(project.path)
    assert "recover" in str(caught.value)
    damaged = project.path.read_bytes()
    with recover_from_backup(project.path) as recovered:
        assert snapshot(recovered.document) == good and recovered.document.dirty
        recovered.save()
    corrupt_copies = list(project.folder.glob("*.corrupt-*"))
    assert len(corrupt_copies) == 1 and corrupt_copies[0].read_bytes() == damaged
    assert snapshot(load_document(storage.backup_path(project.path))) == good
    with Project.open(project.path) as reopened:
        assert snapshot(reopened.document) == good


def test_damaged_file_without_backup(tmp_path):
    folder = make_folder(tmp_path, 1)
    with Project.create(folder) as project:
        pass
    project.path.write_text("{")
    with pytest.raises(CorruptProjectError, match="No backup") as caught:
        Project.open(project.path, recover=True)
    assert caught.value.backup_path is None


def test_create_refuses_existing_project_and_open_needs_one(tmp_path, project):
    with pytest.raises(ProjectError, match="already exists"):
        Project.create(project.folder, "labels")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ProjectError, match="no project file"):
        Project.open(empty)


def test_split_save_keeps_changes_made_during_the_write_dirty(project):
    label_something(project)
    pending = project.prepare_save()
    C.UndoStack().push(C.AddCategory(project.document, "late"))
    project.write_save(pending)
    project.document.mark_saved(pending.revision)
    assert project.document.dirty
    assert load_document(project.path).category_by_name("late") is None
    project.save()
    assert not project.document.dirty and load_document(project.path).category_by_name("late")


def test_crash_at_the_final_rename_keeps_the_previous_file(project, monkeypatch):
    label_something(project)
    project.save()
    before = project.path.read_bytes()
    C.UndoStack().push(C.AddCategory(project.document, "dog"))
    real_replace = os.replace

    def crash_on_final_rename(source, target):
        if os.fspath(target) == os.fspath(project.path):
            raise OSError(errno.EIO, "Input/output error")
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", crash_on_final_rename)
    with pytest.raises(SaveError, match="Input/output error"):
        project.save()
    monkeypatch.undo()
    assert project.path.read_bytes() == before and project.document.dirty
    assert storage.backup_path(project.path).read_bytes() == before


def test_another_json_file_is_named_in_one_line_not_offered_recovery(tmp_path):
    other = tmp_path / "instances.efsam.json"
    other.write_text(json.dumps({"images": [], "annotations": []}))  # a COCO file, say
    with pytest.raises(ProjectError) as caught:
        Project.open(other)
    assert not isinstance(caught.value, CorruptProjectError)
    assert str(caught.value) == (
        f"{other} is not an EfficientSAM Studio project file "
        "(field 'format' is not 'efficientsam-studio-project')"
    )
    assert not storage.lock_path(other).exists()
