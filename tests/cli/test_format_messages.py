"""What `efsam-studio import` and `export` tell the user: objects recognised as already present, category
ids a COCO export writes differently after an import, a YOLO dataset still without images, an empty
labelme export."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from efficientsam_studio.annotations import commands as C
from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.project import Project, load_document
from efficientsam_studio.cli.main import main


@pytest.fixture
def project_path(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "one.png"), np.zeros((40, 50, 3), np.uint8))
    with Project.create(folder) as project:
        stack = C.UndoStack()
        add = C.AddCategory(project.document, "cell")
        stack.push(add)
        for centre, axes in (((12, 12), (6, 4)), ((34, 24), (8, 5)), ((20, 32), (5, 7))):
            mask = np.zeros((40, 50), np.uint8)
            cv2.ellipse(mask, centre, axes, 30, 0, 360, 1, -1)
            instance = C.AddInstance.from_mask(
                project.document, 1, add.category.id, mask.astype(bool), score=0.9, source="ai"
            )
            stack.push(instance)
        project.save()
        return project.path


def test_importing_the_default_export_back_adds_nothing_and_says_so(project_path, tmp_path, capsys):
    coco = tmp_path / "labels.json"
    assert main(["export", str(project_path), "--format", "coco", "--out", str(coco)]) == 0
    assert main(["import", str(project_path), "--format", "coco", "--from", str(coco)]) == 0
    out = capsys.readouterr().out
    assert "0 instances added" in out and "recognised as objects already present" in out
    assert len(load_document(project_path).instances_of(1)) == 3


def test_a_category_id_0_is_kept_for_exports_without_a_word(tmp_path, capsys):
    folder = tmp_path / "cvat"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((20, 30, 3), np.uint8))
    mask = np.zeros((20, 30), bool)
    mask[2:8, 3:9] = True
    data = {
        "images": [{"id": 0, "file_name": "a.png", "width": 30, "height": 20}],
        "categories": [{"id": 0, "name": "background"}, {"id": 1, "name": "cell"}],
        "annotations": [{"id": 1, "image_id": 0, "category_id": 0, "segmentation": masks.encode(mask)}],
    }
    (tmp_path / "cvat.json").write_text(json.dumps(data))
    assert main(["import", str(folder), "--format", "coco", "--from", str(tmp_path / "cvat.json")]) == 0
    assert "category ids" not in capsys.readouterr().out.lower()
    out = tmp_path / "out.json"
    assert main(["export", str(folder), "--format", "coco", "--out", str(out)]) == 0
    exported = json.loads(out.read_text())
    assert [(c["id"], c["name"]) for c in exported["categories"]] == [(0, "background"), (1, "cell")]
    assert [(a["image_id"], a["category_id"]) for a in exported["annotations"]] == [(0, 0)]


def test_category_ids_an_export_cannot_keep_are_listed(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((20, 30, 3), np.uint8))
    with Project.create(folder) as project:
        C.AddCategory(project.document, "cell").do()
        project.save()
    mask = np.zeros((20, 30), bool)
    mask[2:8, 3:9] = True
    for n, name in enumerate(("nucleus", "cell")):  # "nucleus" 1, then "cell" 2 (not 1) in the other file
        data = {
            "images": [{"id": 0, "file_name": "a.png", "width": 30, "height": 20}],
            "categories": [{"id": 1 + n, "name": name}],
            "annotations": [],
        }
        (tmp_path / f"{n}.json").write_text(json.dumps(data))
    assert main(["import", str(folder), "--format", "coco", "--from", str(tmp_path / "0.json")]) == 0
    out = capsys.readouterr().out
    assert (
        "COCO export ids of categories already in the project changed (before -> now): 'cell' 1 -> 3" in out
    )
    assert main(["import", str(folder), "--format", "coco", "--from", str(tmp_path / "1.json")]) == 0
    out = capsys.readouterr().out
    assert (
        "COCO export ids of categories already in the project changed (before -> now): 'cell' 3 -> 2" in out
    )
    assert main(["export", str(folder), "--format", "coco", "--out", str(tmp_path / "out.json")]) == 0
    assert "note: category ids" not in capsys.readouterr().out
    exported = json.loads((tmp_path / "out.json").read_text())
    assert {c["name"]: c["id"] for c in exported["categories"]} == {"cell": 2, "nucleus": 1}


def test_yolo_without_images_tells_where_to_put_them(project_path, tmp_path, capsys):
    out = tmp_path / "yolo"
    assert main(["export", str(project_path), "--format", "yolo", "--out", str(out), "--images", "none"]) == 0
    assert (
        f"note: no images were placed: copy the project's images into {out / 'images'}"
        in capsys.readouterr().out
    )


def test_an_empty_labelme_export_can_be_imported(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    Project.create(empty).close()
    out = tmp_path / "labelme"
    assert main(["export", str(empty), "--format", "labelme", "--out", str(out)]) == 0
    assert out.is_dir()
    target = tmp_path / "target"
    target.mkdir()
    assert main(["import", str(target), "--format", "labelme", "--from", str(out)]) == 0
    assert "0 instances added" in capsys.readouterr().out
