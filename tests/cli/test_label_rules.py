"""``efsam-studio label``: --replace-manual goes with --overwrite, reviewed images are kept, -r on an
existing project, skip reasons in the summary, and the ids of COCO box files in --coco."""

from __future__ import annotations

import json
import shutil

from efficientsam_studio.annotations.commands import SetImageStatus
from efficientsam_studio.annotations.document import ImageStatus
from efficientsam_studio.annotations.project import Project
from efficientsam_studio.cli.main import main


def _label(folder, boxes, *extra: str) -> int:
    return main(["label", str(folder), "--out", "labels", "--boxes", str(boxes), *extra])


def test_replace_manual_without_overwrite_is_refused(folder, boxes_csv, fake_model, capsys):
    assert _label(folder, boxes_csv, "--replace-manual") == 2
    err = capsys.readouterr().err
    assert "--replace-manual" in err and "give it with --overwrite" in err
    assert not (folder / "labels.efsam.json").exists()


def test_overwrite_keeps_images_marked_done_and_says_why(folder, boxes_csv, fake_model, capsys):
    assert _label(folder, boxes_csv) == 0
    with Project.open(folder / "labels.efsam.json") as project:
        doc = project.document
        SetImageStatus(doc, doc.image_by_path("img2.png").id, ImageStatus.DONE).do()
        project.save()
    capsys.readouterr()
    assert _label(folder, boxes_csv, "--overwrite") == 0
    out = capsys.readouterr().out
    assert "2 labelled, 1 skipped" in out
    assert "skipped 1: img2.png: marked done (reviewed)" in out
    assert _label(folder, boxes_csv, "--overwrite", "--replace-manual") == 0
    out = capsys.readouterr().out
    assert "3 labelled" in out and "reviewed: 1 images marked done were labelled again" in out


def test_recursive_on_an_existing_project_includes_subfolders_from_now_on(
    folder, tmp_path, fake_model, capsys
):
    boxes = tmp_path / "sub.csv"
    boxes.write_text("image,x0,y0,x1,y1,label\nsub/s1.png,10,10,60,50,cat\n")
    assert _label(folder, boxes) == 0  # a project without subfolders
    (folder / "sub").mkdir()
    shutil.copy(folder / "img1.png", folder / "sub" / "s1.png")
    assert _label(folder, boxes) == 0
    out = capsys.readouterr().out
    assert "prompts for images not in the project: sub/s1.png" in out and "add -r" in out
    assert _label(folder, boxes, "-r") == 0
    captured = capsys.readouterr()
    assert "did not include subfolders; it does from now on" in captured.err
    assert "1 labelled" in captured.out
    with Project.open(folder / "labels.efsam.json") as project:
        assert project.settings["recursive"] is True
        assert project.document.image_by_path("sub/s1.png").status == ImageStatus.NEEDS_REVIEW


def test_coco_output_keeps_the_ids_of_the_detections(folder, tmp_path, fake_model, capsys):
    images = tmp_path / "images.json"
    images.write_text(
        json.dumps(
            {
                "images": [{"id": 500 + i, "file_name": f"img{i}.png"} for i in (1, 2, 3)],
                "categories": [{"id": 40, "name": "cat"}, {"id": 41, "name": "dog"}],
            }
        )
    )
    dets = tmp_path / "dets.json"
    dets.write_text(
        json.dumps(
            [
                {"image_id": 503, "category_id": 41, "bbox": [100, 10, 50, 50], "score": 0.7},
                {"image_id": 502, "category_id": 40, "bbox": [20, 60, 70, 50], "score": 0.8},
            ]
        )
    )
    out = tmp_path / "out.json"
    assert _label(folder, dets, "--images-json", str(images), "--coco", str(out)) == 0
    data = json.loads(out.read_text())
    assert sorted((i["id"], i["file_name"]) for i in data["images"]) == [(502, "img2.png"), (503, "img3.png")]
    assert {c["name"]: c["id"] for c in data["categories"]} == {"dog": 41, "cat": 40}
    assert sorted((a["image_id"], a["category_id"], a["score"]) for a in data["annotations"]) == [
        (502, 40, 0.8),
        (503, 41, 0.7),
    ]
