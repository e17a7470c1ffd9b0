"""``efsam-studio label``: modes, project resolution, COCO output, resume, failures and Ctrl+C."""

from __future__ import annotations

import json

import numpy as np
from pycocotools.coco import COCO

from efficientsam_studio.annotations.commands import AddCategory
from efficientsam_studio.annotations.document import ImageStatus
from efficientsam_studio.annotations.project import Project
from efficientsam_studio.cli import label as label_cli
from efficientsam_studio.cli.main import main
from tests.batch.conftest import SCENES, SIZE, box_mask
from tests.batch.fake_predictor import ShapesPredictor


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / np.logical_or(a, b).sum())


def test_boxes_mode_writes_the_project_and_a_coco_file(folder, boxes_csv, tmp_path, fake_model, capsys):
    coco_path = tmp_path / "out" / "coco.json"
    args = ["label", str(folder), "--out", "labels", "--boxes", str(boxes_csv), "--coco", str(coco_path)]
    rc = main(args)
    out = capsys.readouterr().out
    assert rc == 0
    assert "images: 3 considered, 3 labelled, 0 skipped, 0 failed" in out
    assert "instances: 5 added" in out
    coco = COCO(str(coco_path))
    assert len(coco.getAnnIds()) == 5
    names = {c["name"] for c in coco.loadCats(coco.getCatIds())}
    assert names == {"cat", "dog"}
    for ann in coco.loadAnns(coco.getAnnIds()):
        image = coco.loadImgs(ann["image_id"])[0]
        label = coco.loadCats(ann["category_id"])[0]["name"]
        boxes = [box for name, _, box in SCENES[image["file_name"]] if name == label]
        mask = coco.annToMask(ann).astype(bool)
        assert max(_iou(mask, box_mask(b)) for b in boxes) > 0.9
    with Project.open(folder / "labels.efsam.json") as project:
        assert project.document.instance_count == 5


def test_coco_boxes_keep_their_category_ids_in_coco_for_categories_the_project_has(
    folder, tmp_path, fake_model, capsys
):
    with Project.create(folder, "labels") as project:
        for name in ("dog", "cat"):
            AddCategory(project.document, name).do()
        project.save()
    height, width = SIZE
    names = list(SCENES)
    ids = {"cat": 0, "dog": 7}  # neither is the project's id; 0 cannot be one
    boxes = [(names.index(name), label, box) for name, objects in SCENES.items() for label, _, box in objects]
    gt = {
        "images": [
            {"id": n, "file_name": name, "width": width, "height": height} for n, name in enumerate(names)
        ],
        "categories": [{"id": i, "name": name} for name, i in ids.items()],
        "annotations": [
            {"id": n + 1, "image_id": image, "category_id": ids[label], "bbox": [x0, y0, x1 - x0, y1 - y0]}
            for n, (image, label, (x0, y0, x1, y1)) in enumerate(boxes)
        ],
    }
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    coco_path = tmp_path / "out.json"
    args = [
        "label",
        str(folder),
        "--out",
        "labels",
        "--boxes",
        str(tmp_path / "gt.json"),
        "--coco",
        str(coco_path),
    ]
    assert main(args) == 0
    capsys.readouterr()
    data = json.loads(coco_path.read_text())
    assert {c["name"]: c["id"] for c in data["categories"]} == ids
    files = {image["id"]: image["file_name"] for image in data["images"]}
    assert files == dict(enumerate(names))
    names_by_id = {i: name for name, i in ids.items()}
    written = sorted((files[a["image_id"]], names_by_id[a["category_id"]]) for a in data["annotations"])
    assert written == sorted((names[image], label) for image, label, _ in boxes)
    with Project.open(folder / "labels.efsam.json") as project:
        assert [(c.id, c.name, c.coco_id) for c in project.document.categories] == [
            (1, "dog", 7),
            (2, "cat", 0),
        ]


def test_a_second_run_resumes_and_skips_labelled_images(folder, boxes_csv, fake_model, capsys):
    assert main(["label", str(folder), "--out", "labels", "--boxes", str(boxes_csv)]) == 0
    capsys.readouterr()
    project_file = str(folder / "labels.efsam.json")
    assert main(["label", str(folder), "--out", project_file, "--boxes", str(boxes_csv)]) == 0
    assert "3 considered, 0 labelled, 3 skipped" in capsys.readouterr().out
    assert main(["label", str(folder), "--out", "labels", "--boxes", str(boxes_csv), "--overwrite"]) == 0
    assert "instances: 5 added, 5 replaced" in capsys.readouterr().out


def test_unreadable_images_are_listed_and_the_exit_status_is_one(folder, boxes_csv, fake_model, capsys):
    (folder / "broken.png").write_bytes(b"not an image at all")
    rc = main(["label", str(folder), "--out", "labels", "--boxes", str(boxes_csv)])
    out = capsys.readouterr().out
    assert rc == 1
    assert "3 labelled" in out and "1 failed" in out and "failed: broken.png" in out


def test_ctrl_c_exits_130_with_the_finished_images_saved(folder, boxes_csv, monkeypatch, capsys):
    class Interrupting(ShapesPredictor):
        def set_image(self, image):
            super().set_image(image)
            if self.encodes == 3:
                raise KeyboardInterrupt

    monkeypatch.setattr(label_cli, "_load_predictor", lambda args: Interrupting())
    rc = main(["label", str(folder), "--out", "labels", "--boxes", str(boxes_csv), "--save-every", "50"])
    assert rc == 130
    assert "interrupted" in capsys.readouterr().out
    with Project.open(folder / "labels.efsam.json") as project:
        doc = project.document
        statuses = [doc.image_by_path(name).status for name in SCENES]
        assert statuses == [ImageStatus.NEEDS_REVIEW, ImageStatus.NEEDS_REVIEW, ImageStatus.UNLABELLED]


def test_a_project_outside_the_image_folder_is_refused(folder, boxes_csv, tmp_path, fake_model, capsys):
    elsewhere = str(tmp_path / "elsewhere.efsam.json")
    rc = main(["label", str(folder), "--out", elsewhere, "--boxes", str(boxes_csv)])
    assert rc == 2
    assert "must be in the image folder" in capsys.readouterr().err


def test_bad_prompt_files_and_parameters_are_usage_errors(folder, tmp_path, fake_model, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("image,x0,y0\n")
    assert main(["label", str(folder), "--out", "labels", "--boxes", str(bad)]) == 2
    assert "header lacks" in capsys.readouterr().err
    assert main(["label", str(folder), "--out", "labels", "--everything", "--nms-thresh", "0"]) == 2
    assert "--nms-thresh 0.0 is out of range" in capsys.readouterr().err


def test_everything_and_points_with_the_tiny_model(folder, tmp_path, tiny_checkpoint, capsys):
    """The real engine end to end (random weights: how many masks survive is not meaningful)."""
    common = ["--model", "tiny", "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--no-cache"]
    rc = main(["label", str(folder), "--out", "auto", "--everything", "--points-per-side", "2", *common])
    assert rc == 0, capsys.readouterr()
    with Project.open(folder / "auto.efsam.json") as project:
        doc = project.document
        assert all(img.status == ImageStatus.NEEDS_REVIEW for img in doc.images)
        assert all(inst.source == "ai" and inst.score is not None for inst in doc.iter_instances())
    points = tmp_path / "points.json"
    clicks = [{"x": 30, "y": 30, "label": 1}, {"x": 100, "y": 60, "label": 1}]
    points.write_text(json.dumps({"img1.png": clicks}))
    rc = main(["label", str(folder), "--out", "pts", "--points", str(points), *common])
    out = capsys.readouterr().out
    assert rc == 0 and "1 labelled, 2 skipped" in out


def test_small_boxes_decoded_again_in_their_cut_with_the_tiny_model(
    folder, tmp_path, tiny_checkpoint, capsys
):
    """The real engine's embedding path: small boxes are decoded in their cut, and the image's own
    embedding is put back for the boxes decoded after them (the 17th box is in the next chunk)."""
    boxes = tmp_path / "small.csv"
    rows = ["image,x0,y0,x1,y1,label"] + ["img1.png,30,40,50,56,cat"] * 16 + ["img1.png,5,5,150,110,dog"]
    boxes.write_text("\n".join(rows) + "\n")
    common = ["--model", "tiny", "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--no-cache"]
    runs = {}
    for name, extra in (("whole", []), ("cuts", ["--refine-small-boxes"])):
        assert main(["label", str(folder), "--out", name, "--boxes", str(boxes), *common, *extra]) == 0
        with Project.open(folder / f"{name}.efsam.json") as project:
            doc = project.document
            runs[name] = [(doc.category(i.category_id).name, i.attributes.get("cut"), i.rle)
                          for i in doc.iter_instances()]  # fmt: skip
    capsys.readouterr()
    cats = [rle for category, cut, rle in runs["cuts"] if category == "cat"]
    assert all(cut == [22, 32, 59, 65] for category, cut, _ in runs["cuts"] if category == "cat")
    assert len(set(map(str, cats))) <= 1  # the 16 equal boxes gave one mask
    dogs = {name: [rle for category, _, rle in run if category == "dog"] for name, run in runs.items()}
    assert dogs["cuts"] == dogs["whole"]  # decoded on the image's own embedding, put back after the cuts
