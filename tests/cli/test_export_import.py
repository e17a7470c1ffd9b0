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


@pytest.mark.parametrize(
    "fmt, expected",
    [
        ("coco", "annotations.json"),
        ("labelme", "one.json"),
        ("yolo", "data.yaml"),
        ("masks", "categories.json"),
    ],
)
def test_export_each_format(project_path, tmp_path, capsys, fmt, expected):
    out = tmp_path / "out"
    assert main(["export", str(project_path.parent), "--format", fmt, "--out", str(out)]) == 0
    assert (out / expected).is_file()
    written = out / expected if fmt == "coco" else out  # COCO names the one file it wrote
    assert f"exported to {written}: 2 instances on 2 images" in capsys.readouterr().out


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


def _one_line_error(err: str, *words: str) -> None:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, err


def _fresh_folder(project_path, tmp_path):
    folder = tmp_path / "fresh"
    folder.mkdir()
    for name in ("one.png", "two.png"):
        (folder / name).write_bytes((project_path.parent / name).read_bytes())
    return folder


@pytest.mark.parametrize("fmt", ["coco", "labelme"])
def test_import_of_a_missing_file_creates_no_project(project_path, tmp_path, capsys, fmt):
    folder = _fresh_folder(project_path, tmp_path)
    missing = tmp_path / "nosuch.json"
    assert main(["import", str(folder), "--format", fmt, "--from", str(missing)]) == 2
    captured = capsys.readouterr()
    _one_line_error(captured.err, f"--from {missing} does not exist")
    assert "created project" not in captured.out
    assert sorted(p.name for p in folder.iterdir()) == ["one.png", "two.png"]


@pytest.mark.parametrize(
    "content",
    ["{ not json", json.dumps({"images": [], "categories": [], "annotations": [{"id": 5}]})],
)
def test_a_failed_import_into_a_folder_leaves_no_project_behind(project_path, tmp_path, capsys, content):
    folder = _fresh_folder(project_path, tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["import", str(folder), "--format", "coco", "--from", str(bad)]) == 2
    captured = capsys.readouterr()
    assert "COCO file" in captured.err and "created project" not in captured.out
    assert sorted(p.name for p in folder.iterdir()) == ["one.png", "two.png"]


@pytest.mark.parametrize("command", ["export", "import"])
def test_an_image_given_as_project_is_one_clear_line(project_path, tmp_path, capsys, command):
    image = project_path.parent / "one.png"
    before = sorted(p.name for p in project_path.parent.iterdir())
    coco = tmp_path / "o.json"
    option = ["--out", str(coco)] if command == "export" else ["--from", str(coco)]
    coco.write_text("{}")
    assert main([command, str(image), "--format", "coco", *option]) == 2
    _one_line_error(capsys.readouterr().err, f"PROJECT {image} is not a project file (*.efsam.json)")
    assert sorted(p.name for p in project_path.parent.iterdir()) == before


@pytest.mark.parametrize(
    "fmt, option",
    [
        ("coco", ["--images", "copy"]),
        ("labelme", ["--images", "none"]),
        ("masks", ["--polygons", "always"]),
        ("yolo", ["--polygons", "never"]),
        ("masks", ["--tolerance", "0"]),
    ],
)
def test_an_option_the_format_does_not_use_is_refused(project_path, tmp_path, capsys, fmt, option):
    out = tmp_path / ("out.json" if fmt == "coco" else "out")
    assert main(["export", str(project_path), "--format", fmt, "--out", str(out), *option]) == 2
    _one_line_error(capsys.readouterr().err, f"{option[0]} applies to --format", f"not {fmt}")
    assert not out.exists()


def test_coco_to_a_new_path_without_suffix_writes_annotations_json_and_says_so(
    project_path, tmp_path, capsys
):
    out = tmp_path / "new_folder"
    assert main(["export", str(project_path), "--format", "coco", "--out", str(out)]) == 0
    assert f"exported to {out / 'annotations.json'}: 2 instances" in capsys.readouterr().out
    assert (out / "annotations.json").is_file()
    other = tmp_path / "coco.txt"
    assert main(["export", str(project_path), "--format", "coco", "--out", str(other)]) == 2
    _one_line_error(capsys.readouterr().err, "COCO is written as one .json file")
    assert not other.exists()


def test_a_failed_import_removes_its_project_while_still_holding_the_lock(
    project_path, tmp_path, capsys, monkeypatch
):
    from efficientsam_studio.annotations.storage import lock_path
    from efficientsam_studio.cli import import_cmd

    folder = _fresh_folder(project_path, tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    locked_at_removal = []
    remove = import_cmd._remove_new_project

    def watched(project):
        locked_at_removal.append(lock_path(project.path).exists())
        remove(project)

    monkeypatch.setattr(import_cmd, "_remove_new_project", watched)
    assert main(["import", str(folder), "--format", "coco", "--from", str(bad)]) == 2
    assert locked_at_removal == [True]
    assert sorted(p.name for p in folder.iterdir()) == ["one.png", "two.png"]
