"""Lock files that are not locks, a backup damaged too, and a damaged mask on the command line."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from efficientsam_studio.annotations import storage
from efficientsam_studio.annotations.errors import CorruptProjectError, ProjectLockedError
from efficientsam_studio.annotations.project import Project, load_document
from efficientsam_studio.cli.main import main

from .test_project import make_folder
from .test_store_fixes import make_labelled


@pytest.fixture
def labelled(tmp_path):
    return make_labelled(tmp_path)


@pytest.fixture
def closed(tmp_path):
    with Project.create(make_folder(tmp_path, 1), "labels") as project:
        pass
    return project.path


def write_lock(path, content, age: float) -> None:
    lock = storage.lock_path(path)
    lock.write_text(content if isinstance(content, str) else json.dumps(content))
    then = time.time() - age
    os.utime(lock, (then, then))


MALFORMED = [
    {"pid": "abc", "hostname": socket.gethostname()},
    {"pid": None, "hostname": socket.gethostname()},
    {"pid": 12.5, "hostname": socket.gethostname()},
    {"pid": True, "hostname": socket.gethostname()},
    {"pid": 10**30, "hostname": socket.gethostname()},
    {"pid": os.getppid(), "hostname": None},
    {"hostname": socket.gethostname()},
    [1, 2],
    "",
]


@pytest.mark.parametrize("content", MALFORMED)
def test_an_old_lock_file_that_is_not_a_lock_is_taken_over(closed, content):
    write_lock(closed, content, age=60)
    with Project.open(closed):
        assert json.loads(storage.lock_path(closed).read_text())["pid"] == os.getpid()
    assert not storage.lock_path(closed).exists()


@pytest.mark.parametrize("content", MALFORMED)
def test_a_fresh_lock_file_that_is_not_a_lock_is_respected(closed, content):
    write_lock(closed, content, age=0)
    with pytest.raises(ProjectLockedError, match="open in another process"):
        Project.open(closed)
    assert storage.lock_path(closed).exists()


def test_an_old_lock_of_a_live_process_is_never_broken(closed):
    live = {"pid": os.getppid(), "hostname": socket.gethostname(), "since": "2020-01-01T00:00:00+00:00"}
    write_lock(closed, live, age=10**6)
    with pytest.raises(ProjectLockedError, match=f"process {os.getppid()} on "):
        Project.open(closed)
    assert json.loads(storage.lock_path(closed).read_text()) == live


def damage_both(path) -> None:
    for file in (path, storage.backup_path(path)):
        data = json.loads(file.read_text())
        data["instances"][0]["segmentation"]["counts"] = "zz"
        file.write_text(json.dumps(data))


def test_recover_with_a_damaged_backup_says_so(labelled):
    damage_both(labelled)
    earlier = labelled.with_name(labelled.name + ".corrupt-20260101T000000")
    earlier.write_text("{")
    before = {p.name: p.read_bytes() for p in labelled.parent.iterdir()}
    with pytest.raises(CorruptProjectError) as caught:
        Project.open(labelled, recover=True)
    error = caught.value
    message = str(error)
    assert error.backup_path is None and error.damaged_backup == storage.backup_path(labelled)
    assert "No backup" not in message and ".bak.bak" not in message
    assert f"project file {labelled}: field instances[0]" in message
    assert (
        f"Its backup is damaged too: project file {storage.backup_path(labelled)}: field instances[0]"
        in message
    )
    assert earlier.name in message and "import" in message and "--format coco" in message
    assert {p.name: p.read_bytes() for p in labelled.parent.iterdir()} == before


def test_export_of_a_damaged_mask_fails_cleanly_and_recover_exports_the_backup(labelled, tmp_path, capsys):
    good = load_document(labelled)
    data = json.loads(labelled.read_text())
    data["instances"][0]["segmentation"]["counts"] = "zz"
    labelled.write_text(json.dumps(data))
    out = tmp_path / "coco.json"
    assert main(["export", str(labelled), "--format", "coco", "--out", str(out)]) == 2
    assert "instance id 1" in capsys.readouterr().err and not out.exists()
    recover = [
        "export",
        str(labelled),
        "--format",
        "coco",
        "--out",
        str(out),
        "--recover",
        "--polygons",
        "never",
    ]
    assert main(recover) == 0
    exported = json.loads(out.read_text())["annotations"]
    assert [a["area"] for a in exported] == [i.area for i in good.iter_instances()]


def test_cli_recover_with_both_files_damaged(labelled, tmp_path, capsys):
    damage_both(labelled)
    out = tmp_path / "coco.json"
    assert main(["export", str(labelled), "--format", "coco", "--out", str(out), "--recover"]) == 2
    err = capsys.readouterr().err
    assert "damaged too" in err and "No backup" not in err and not out.exists()
