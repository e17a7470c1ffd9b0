"""Boxes from COCO files keep their image and category ids through a run and a COCO export; masks made
from scored boxes are ranked by the detector's score."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from efficientsam_studio.annotations import masks as mask_codec
from efficientsam_studio.annotations.commands import AddCategory
from efficientsam_studio.annotations.formats.coco import coco_dict
from efficientsam_studio.batch import read_box_prompts, run_batch
from efficientsam_studio.batch.apply import ApplyResult
from efficientsam_studio.batch.coco_ids import CategoryIds
from efficientsam_studio.batch.results import ImageResult, NewMask
from tests.batch.conftest import SCENES, SIZE, box_mask
from tests.batch.fake_predictor import ShapesPredictor

CATEGORY_IDS = {"cat": 17, "dog": 18}


def _coco_files(folder: Path) -> tuple[Path, Path, Path]:
    """Detections, their image list, and the same boxes as COCO annotations; image ids 100, 101, 102."""
    height, width = SIZE
    images = [
        {"id": 100 + i, "file_name": name, "width": width, "height": height} for i, name in enumerate(SCENES)
    ]
    categories = [{"id": v, "name": k} for k, v in CATEGORY_IDS.items()]
    dets, anns = [], []
    for i, objects in enumerate(SCENES.values()):
        for j, (label, _, (x0, y0, x1, y1)) in enumerate(objects):
            box = [x0, y0, x1 - x0, y1 - y0]
            score = round(0.5 + 0.1 * j + 0.01 * i, 3)
            dets.append(
                {"image_id": 100 + i, "category_id": CATEGORY_IDS[label], "bbox": box, "score": score}
            )
            anns.append(
                {"id": len(anns) + 1, "image_id": 100 + i, "category_id": CATEGORY_IDS[label], "bbox": box}
            )
    paths = (folder / "dets.json", folder / "images.json", folder / "gt.json")
    paths[0].write_text(json.dumps(dets))
    paths[1].write_text(json.dumps({"images": images, "categories": categories}))
    paths[2].write_text(json.dumps({"images": images, "categories": categories, "annotations": anns}))
    return paths


def test_the_readers_keep_the_coco_ids(tmp_path):
    dets, images, gt = _coco_files(tmp_path)
    for prompts in (read_box_prompts(dets, images_json=images), read_box_prompts(gt)):
        assert prompts.category_ids == CATEGORY_IDS
        assert [p.image_id for p in prompts.by_key["img3.png"]] == [102, 102]
    numbered = tmp_path / "numbered.json"
    numbered.write_text(json.dumps([{"image_id": 42, "category_id": 5, "bbox": [1, 2, 3, 4]}]))
    prompts = read_box_prompts(numbered)
    assert prompts.by_key["42"][0].image_id == 42 and prompts.category_ids == {"category_5": 5}


@pytest.mark.parametrize("source", ["detections", "annotations"])
def test_the_export_of_a_run_uses_the_ids_of_the_coco_file(project, tmp_path, source):
    dets, images, gt = _coco_files(tmp_path)
    prompts = read_box_prompts(dets, images_json=images) if source == "detections" else read_box_prompts(gt)
    summary = run_batch(project, mode="boxes", predictor=ShapesPredictor(), prompts=prompts)
    assert summary.labelled == 3
    data, _ = coco_dict(project.document)
    assert sorted((i["id"], i["file_name"]) for i in data["images"]) == [
        (100, "img1.png"),
        (101, "img2.png"),
        (102, "img3.png"),
    ]
    assert {c["name"]: c["id"] for c in data["categories"]} == CATEGORY_IDS
    names = {c["id"]: c["name"] for c in data["categories"]}
    files = {i["id"]: i["file_name"] for i in data["images"]}
    found = sorted((files[a["image_id"]], names[a["category_id"]]) for a in data["annotations"])
    assert found == sorted((name, label) for name, objects in SCENES.items() for label, _, _ in objects)


def test_a_category_id_already_handed_out_is_not_reused(project, tmp_path):
    dets, images, _ = _coco_files(tmp_path)
    doc = project.document
    AddCategory(doc, "Dog").do()  # matched by name: keeps its own id
    doc.restore_next_ids({"category": 18})  # ids below 18 were handed out: 17 may have been a category once
    run_batch(
        project, mode="boxes", predictor=ShapesPredictor(), prompts=read_box_prompts(dets, images_json=images)
    )
    ids = {c.name: c.id for c in doc.categories}
    assert ids["Dog"] == 1 and ids["cat"] >= 18 and ids["cat"] != 17


def test_categories_that_exist_already_are_exported_with_the_ids_of_the_coco_file(project, tmp_path):
    _, _, gt = _coco_files(tmp_path)
    doc = project.document
    AddCategory(doc, "cat").do()
    AddCategory(doc, "Dog").do()  # "dog" of the file, matched whatever its case
    run_batch(project, mode="boxes", predictor=ShapesPredictor(), prompts=read_box_prompts(gt))
    assert [(c.id, c.name, c.coco_id) for c in doc.categories] == [(1, "cat", 17), (2, "Dog", 18)]
    data, report = coco_dict(doc)
    assert {c["name"]: c["id"] for c in data["categories"]} == {"cat": 17, "Dog": 18}
    names = {c["id"]: c["name"] for c in data["categories"]}
    assert sorted(names[a["category_id"]] for a in data["annotations"]) == ["Dog", "Dog", "cat", "cat", "cat"]
    assert report.notes == []


def test_a_category_created_with_an_id_the_project_cannot_use_keeps_it_for_the_export(project, tmp_path):
    dets, images, _ = _coco_files(tmp_path)
    doc = project.document
    AddCategory(doc, "Dog").do()
    doc.restore_next_ids({"category": 18})  # 17 cannot be "cat"'s project id
    run_batch(
        project, mode="boxes", predictor=ShapesPredictor(), prompts=read_box_prompts(dets, images_json=images)
    )
    cat = doc.category_by_name("cat")
    assert cat.id != 17 and cat.coco_id == 17
    data, _ = coco_dict(doc)
    assert {c["name"]: c["id"] for c in data["categories"]} == {"Dog": 18, "cat": 17}


def test_undo_takes_back_the_coco_id_a_result_gave_a_category(project):
    doc = project.document
    AddCategory(doc, "cat").do()
    image = doc.images[0]
    result = ImageResult(image.id, image.path)
    for n in range(2):
        result.masks.append(NewMask("cat", mask_codec.encode(box_mask((20 * n, 10, 20 * n + 8, 30))), 0.9))
    command = ApplyResult(doc, result, category_ids=CategoryIds({"cat": 0}))
    command.do()
    assert doc.category_by_name("cat").coco_id == 0
    command.undo()
    assert doc.category_by_name("cat").coco_id is None
    command.do()
    assert doc.category_by_name("cat").coco_id == 0


def test_masks_from_scored_boxes_are_ranked_by_the_detector_score(project, tmp_path):
    dets, images, gt = _coco_files(tmp_path)
    run_batch(
        project, mode="boxes", predictor=ShapesPredictor(), prompts=read_box_prompts(dets, images_json=images)
    )
    doc = project.document
    scores = {json.dumps(i.attributes["box"]): i for i in doc.iter_instances()}
    assert len(scores) == 5
    for detection in json.loads(dets.read_text()):
        x, y, w, h = detection["bbox"]
        instance = scores[json.dumps([float(x), float(y), float(x + w), float(y + h)])]
        assert instance.score == pytest.approx(detection["score"])
        assert instance.attributes["predicted_iou"] == pytest.approx(0.95)  # the decoder's own estimate
    data, _ = coco_dict(doc)
    assert sorted(a["score"] for a in data["annotations"]) == sorted(
        d["score"] for d in json.loads(dets.read_text())
    )


def test_without_a_detector_score_the_predicted_iou_ranks_the_mask(project, tmp_path):
    _, _, gt = _coco_files(tmp_path)
    run_batch(project, mode="boxes", predictor=ShapesPredictor(), prompts=read_box_prompts(gt))
    assert all(i.score == pytest.approx(0.95) for i in project.document.iter_instances())
