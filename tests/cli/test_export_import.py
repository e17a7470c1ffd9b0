"""`efsam-studio export` and `efsam-studio import` end to end on a tiny project."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from efficientsam_studio.annotations import commands as C
from efficientsam_studio.annotations.project import Project, load_document
from efficientsam_studio.cli.main import main


def circle(shape, centre, radius):
    mask = np.zeros(shape, np.uint8)
    cv2.circle(mask, centre, radius, 1, -1)
    return mask.astype(bool)


@pytest.fixture
def project_path(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("one.png", "two.png"):
        cv2.imwrite(str(folder / name), np.zeros((40, 50, 3), np.uint8))
    with Project.create(folder) as project:
        stack = C.UndoStack()
        add = C.AddCategory(project.document, "cell")
        stack.push(add)
        ring = circle((40, 50), (25, 20), 12) & ~circle((40, 50), (25, 20), 4)
        cell = add.category.id
        stack.push(C.AddInstance.from_mask(project.document, 1, cell, ring, score=0.9, source="ai"))
        stack.push(C.AddInstance.from_mask(project.document, 2, cell, circle((40, 50), (10, 10), 6)))
        project.save()
        return project.path


@pytest.mark.parametrize("fmt, expected", [("coco", "annotations.json"), ("labelme", "one.json"),
                                           ("yolo", "data.yaml"), ("masks", "categories.json")])
def test_export_each_format(project_path, tmp_path, capsys, fmt, expected):
    out = tmp_path / "out"
    assert main(["export", str(project_path.parent), "--format", fmt, "--out", str(out)]) == 0
    assert (out / expected).is_file()
    assert f"exported to {out}: 2 instances on 2 images" in capsys.readouterr().out


def test_coco_export_then_import_into_a_new_folder_keeps_masks(project_path, tmp_path, capsys):
    coco = tmp_path / "labels.json"
    command = ["export", str(project_path), "--format", "coco", "--out", str(coco), "--polygons", "never"]
    assert main(command) == 0
    other = tmp_path / "copy"
    other.mkdir()
    for name in ("one.png", "two.png"):
        (other / name).write_bytes((project_path.parent / name).read_bytes())
    assert main(["import", str(other), "--format", "coco", "--from", str(coco)]) == 0
    output = capsys.readouterr().out
    assert "created project" in output and "2 instances added" in output
    original, imported = load_document(project_path), load_document(other)
    for a, b in zip(original.iter_instances(), imported.iter_instances(), strict=True):
        assert np.array_equal(a.mask(), b.mask()) and a.score == b.score


def test_labelme_round_trip_through_the_cli(project_path, tmp_path):
    out = tmp_path / "lm"
    assert main(["export", str(project_path), "--format", "labelme", "--out", str(out)]) == 0
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for name in ("one.png", "two.png"):
        (fresh / name).write_bytes((project_path.parent / name).read_bytes())
    for file in out.glob("*.json"):
        data = json.loads(file.read_text())
        data["imagePath"] = str(fresh / data["imagePath"].split("/")[-1])
        file.write_text(json.dumps(data))
    assert main(["import", str(fresh), "--format", "labelme", "--from", str(out)]) == 0
    assert load_document(fresh).instance_count == 2


def test_import_of_a_malformed_file_exits_2_and_changes_nothing(project_path, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [], "categories": [], "annotations": [{"id": 5}]}))
    before = project_path.read_bytes()
    assert main(["import", str(project_path), "--format", "coco", "--from", str(bad)]) == 2
    error = capsys.readouterr().err
    assert "annotations[0]" in error and "'image_id' is missing" in error
    assert project_path.read_bytes() == before
    assert not project_path.with_name(project_path.name + ".lock").exists()


def test_import_into_a_locked_project_is_refused(project_path, tmp_path, capsys):
    coco = tmp_path / "labels.json"
    main(["export", str(project_path), "--format", "coco", "--out", str(coco)])
    with Project.open(project_path):
        assert main(["import", str(project_path), "--format", "coco", "--from", str(coco)]) == 2
    assert "already open in this program" in capsys.readouterr().err


def test_damaged_project_is_reported_and_recover_uses_the_backup(project_path, tmp_path, capsys):
    with Project.open(project_path) as project:
        project.save()  # the .bak now holds the labelled version
    project_path.write_text("{ damaged")
    out = tmp_path / "coco.json"
    assert main(["export", str(project_path), "--format", "coco", "--out", str(out)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    recover = ["export", str(project_path), "--format", "coco", "--out", str(out), "--recover"]
    assert main([*recover, "--polygons", "never"]) == 0
    assert len(json.loads(out.read_text())["annotations"]) == 2
    assert main(["import", str(project_path), "--format", "coco", "--from", str(out), "--recover"]) == 0
    assert "2 identical instances already present" in capsys.readouterr().out
    assert load_document(project_path).instance_count == 2  # the import saved the recovered project
    assert list(project_path.parent.glob("*.corrupt-*"))
