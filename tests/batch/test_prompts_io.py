"""Readers of box and point prompt files, and matching their image keys to the project's images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from efficientsam_studio.annotations.document import ImageRecord
from efficientsam_studio.batch import PromptFileError, read_box_prompts, read_point_prompts
from efficientsam_studio.errors import StudioError

RECORDS = [
    ImageRecord(1, "img1.png", 160, 120),
    ImageRecord(2, "sub/000000000042.jpg", 160, 120),
    ImageRecord(3, "other/img3.png", 160, 120),
]


def _write(path: Path, content) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def test_coco_detections_map_image_ids_through_the_images_file(tmp_path):
    dets = _write(
        tmp_path / "dets.json",
        [
            {"image_id": 7, "category_id": 3, "bbox": [10, 20, 30, 40], "score": 0.9},
            {"image_id": 8, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.2},
        ],
    )
    images = _write(
        tmp_path / "images.json",
        {
            "images": [{"id": 7, "file_name": "img1.png"}, {"id": 8, "file_name": "other/img3.png"}],
            "categories": [{"id": 1, "name": "cat"}, {"id": 3, "name": "dog"}],
        },
    )
    prompts = read_box_prompts(dets, images_json=images)
    matched, unmatched = prompts.match(RECORDS)
    assert not unmatched
    (box,) = matched[1]
    assert box.box == (10, 20, 40, 60) and box.category == "dog" and box.score == pytest.approx(0.9)
    assert matched[3][0].category == "cat"
    filtered = read_box_prompts(dets, images_json=images, min_score=0.5)
    assert 3 not in filtered.match(RECORDS)[0]  # listed in the file, but no confident box
    assert filtered.images_below_min_score(RECORDS) == {3: 1}


def test_coco_detections_without_an_images_file_match_numeric_file_stems(tmp_path):
    dets = _write(
        tmp_path / "dets.json",
        [
            {"image_id": 42, "category_id": 5, "bbox": [1, 2, 3, 4], "score": 0.5},
            {"image_id": 99, "category_id": 5, "bbox": [1, 2, 3, 4], "score": 0.5},
        ],
    )
    prompts = read_box_prompts(dets)
    matched, unmatched = prompts.match(RECORDS)
    assert list(matched) == [2] and matched[2][0].category == "category_5"
    assert unmatched == ["99"]


def test_coco_annotations_give_one_box_per_annotation(tmp_path):
    coco = _write(
        tmp_path / "instances.json",
        {
            "images": [{"id": 1, "file_name": "img1.png", "width": 160, "height": 120}],
            "annotations": [
                {"id": 11, "image_id": 1, "category_id": 2, "bbox": [5, 5, 10, 10]},
                {"id": 12, "image_id": 1, "category_id": 2, "bbox": [50, 50, 20, 10], "iscrowd": 1},
            ],
            "categories": [{"id": 2, "name": "cup"}],
        },
    )
    matched, _ = read_box_prompts(coco).match(RECORDS)
    assert [p.box for p in matched[1]] == [(5, 5, 15, 15), (50, 50, 70, 60)]
    assert all(p.category == "cup" and p.score is None for p in matched[1])


def test_yolo_folder_uses_data_yaml_names_and_normalised_boxes(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    _write(tmp_path / "data.yaml", "path: .\nnames:\n  0: person\n  1: bicycle\nnc: 2\n")
    _write(labels / "img1.txt", "1 0.5 0.5 0.25 0.5\n0 0.25 0.25 0.1 0.1 0.77\n\n")
    _write(labels / "img3.txt", "0 0.1 0.1 0.3 0.1 0.3 0.3\n")  # a segmentation polygon
    _write(labels / "missing.txt", "")
    prompts = read_box_prompts(labels)
    matched, unmatched = prompts.match(RECORDS)
    assert unmatched == ["missing"]
    first, second = matched[1]
    assert first.category == "bicycle" and first.score is None
    assert first.in_pixels(160, 120) == pytest.approx((60, 30, 100, 90))
    assert second.category == "person" and second.score == pytest.approx(0.77)
    assert matched[3][0].in_pixels(160, 120) == pytest.approx((16, 12, 48, 36))


@pytest.mark.parametrize(
    ("name", "text"),
    [("data.yaml", "names: ['a', 'b']\n"), ("data.yaml", "names:\n- a\n- b\n"), ("classes.txt", "a\nb\n")],
)
def test_yolo_class_names_in_each_supported_form(tmp_path, name, text):
    _write(tmp_path / name, text)
    _write(tmp_path / "img1.txt", "1 0.5 0.5 0.2 0.2\n")
    assert read_box_prompts(tmp_path).by_key["img1"][0].category == "b"


def test_yolo_without_names_and_bad_lines(tmp_path):
    _write(tmp_path / "img1.txt", "3 0.5 0.5 0.2 0.2\n")
    assert read_box_prompts(tmp_path).by_key["img1"][0].category == "class_3"
    _write(tmp_path / "img1.txt", "0 0.5 0.5\n")
    with pytest.raises(PromptFileError, match=r"img1.txt:1"):
        read_box_prompts(tmp_path)


def test_csv_boxes_with_optional_score(tmp_path):
    csv_file = _write(
        tmp_path / "boxes.csv",
        "image,x0,y0,x1,y1,label,score\nimg1.png,1,2,30,40,cat,0.5\nother/img3.png,5,5,9,9,dog,\n",
    )
    matched, _ = read_box_prompts(csv_file).match(RECORDS)
    assert matched[1][0].box == (1, 2, 30, 40) and matched[1][0].score == 0.5
    assert matched[3][0].category == "dog" and matched[3][0].score is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("image,x0,y0,x1,y1\nimg1.png,1,2,3,4\n", "header lacks label"),
        ("image,x0,y0,x1,y1,label\nimg1.png,1,2,x,4,cat\n", r"boxes.csv:2: field 'x1' must be a number"),
    ],
)
def test_csv_errors_name_the_line_and_field(tmp_path, content, message):
    with pytest.raises(PromptFileError, match=message) as info:
        read_box_prompts(_write(tmp_path / "boxes.csv", content))
    assert isinstance(info.value, StudioError)


def test_reversed_corners_are_swapped_and_boxes_without_area_are_left_to_the_run(tmp_path):
    csv_file = _write(
        tmp_path / "boxes.csv", "image,x0,y0,x1,y1,label\nimg1.png,50,40,10,5,cat\nimg1.png,5,5,5,9,dog\n"
    )
    reversed_box, flat = read_box_prompts(csv_file).by_key["img1.png"]
    assert reversed_box.box == (10, 5, 50, 40) and flat.box == (5, 5, 5, 9)
    coco = _write(
        tmp_path / "dets.json",
        [
            {"image_id": 1, "category_id": 1, "bbox": [50, 40, -40, -35]},
            {"image_id": 1, "category_id": 1, "bbox": [5, 5, 0, 4]},
        ],
    )
    assert [p.box for p in read_box_prompts(coco).by_key["1"]] == [(10, 5, 50, 40), (5, 5, 5, 9)]
    (tmp_path / "yolo").mkdir()
    _write(tmp_path / "yolo" / "img1.txt", "0 0.5 0.5 0 0.2\n")
    assert read_box_prompts(tmp_path / "yolo").by_key["img1"][0].box == pytest.approx((0.5, 0.4, 0.5, 0.6))


def test_malformed_json_files_are_reported_with_their_position(tmp_path):
    with pytest.raises(PromptFileError, match=r"not valid JSON \(line 1"):
        read_box_prompts(_write(tmp_path / "dets.json", "[{"))
    with pytest.raises(PromptFileError, match=r"dets.json\[0\]: field 'bbox' is missing"):
        read_box_prompts(_write(tmp_path / "dets.json", [{"image_id": 1, "category_id": 1}]))
    with pytest.raises(PromptFileError, match="not a box file"):
        read_box_prompts(_write(tmp_path / "dets.json", {"foo": 1}))
    with pytest.raises(PromptFileError, match="does not exist"):
        read_box_prompts(tmp_path / "absent.json")


def test_an_ambiguous_file_name_is_an_error(tmp_path):
    records = [ImageRecord(1, "a/x.png", 10, 10), ImageRecord(2, "b/x.png", 10, 10)]
    prompts = read_box_prompts(_write(tmp_path / "b.csv", "image,x0,y0,x1,y1,label\nx.png,1,1,5,5,c\n"))
    with pytest.raises(PromptFileError, match="fits several images"):
        prompts.match(records)
    exact = read_box_prompts(_write(tmp_path / "b.csv", "image,x0,y0,x1,y1,label\nb/x.png,1,1,5,5,c\n"))
    assert list(exact.match(records)[0]) == [2]


def test_points_csv_groups_rows_by_object(tmp_path):
    points = _write(
        tmp_path / "points.csv",
        "image,x,y,label,object,category\n"
        "img1.png,10,10,1,a,cat\nimg1.png,20,20,1,a,\nimg1.png,50,50,0,a,\nimg1.png,90,90,1,b,dog\n",
    )
    matched, _ = read_point_prompts(points).match(RECORDS)
    first, second = matched[1]
    assert first.points == ((10, 10), (20, 20), (50, 50)) and first.labels == (1, 1, 0)
    assert first.category == "cat" and second.category == "dog" and second.object_id == "b"


def test_points_json_in_both_layouts_and_rows_without_object_are_separate(tmp_path):
    listed = _write(
        tmp_path / "p1.json",
        [
            {"image": "img1.png", "x": 1, "y": 2, "label": 1},
            {"image": "img1.png", "x": 3, "y": 4, "label": 1},
        ],
    )
    assert len(read_point_prompts(listed).by_key["img1.png"]) == 2
    mapped = _write(
        tmp_path / "p2.json",
        {"img1.png": [{"x": 1, "y": 2, "label": 1, "object": 7}, {"x": 3, "y": 4, "label": 0, "object": 7}]},
    )
    (prompt,) = read_point_prompts(mapped).by_key["img1.png"]
    assert prompt.labels == (1, 0) and prompt.category == "object"


def test_an_object_of_negative_points_only_is_a_prompt(tmp_path):
    points = _write(tmp_path / "p.csv", "image,x,y,label,object\nimg1.png,1,1,0,a\nimg1.png,5,5,0,a\n")
    (prompt,) = read_point_prompts(points).by_key["img1.png"]
    assert prompt.labels == (0, 0) and prompt.points == ((1, 1), (5, 5))


def test_points_errors(tmp_path):
    with pytest.raises(PromptFileError, match=r"p.csv:2: field 'label' must be 1"):
        read_point_prompts(_write(tmp_path / "p.csv", "image,x,y,label\nimg1.png,1,1,yes\n"))


def test_a_short_csv_row_says_it_lacks_fields(tmp_path):
    path = _write(tmp_path / "b.csv", "image,x0,y0,x1,y1,label\nimg1.png,1,2,3\n")
    with pytest.raises(
        PromptFileError, match=r"b\.csv:2: the row has fewer fields than the header: no y1, label"
    ):
        read_box_prompts(path)


def test_an_empty_csv_says_it_is_empty(tmp_path):
    path = _write(tmp_path / "p.csv", "")
    with pytest.raises(PromptFileError, match=r"p\.csv is empty: the first line must name the columns"):
        read_point_prompts(path)


def test_prompts_that_name_no_category_get_the_default_given(tmp_path):
    points = _write(tmp_path / "p.csv", "image,x,y,label,category\nimg1.png,5,5,1,\nimg1.png,9,9,1,dog\n")
    objects = read_point_prompts(points, default_category="fish").by_key["img1.png"]
    assert [p.category for p in objects] == ["fish", "dog"]
    boxes = _write(tmp_path / "b.csv", "image,x0,y0,x1,y1,label\nimg1.png,1,1,9,9,\nimg1.png,1,1,9,9,cat\n")
    labelled = read_box_prompts(boxes, default_category="fish").by_key["img1.png"]
    assert [b.category for b in labelled] == ["fish", "cat"]
    assert read_point_prompts(points).by_key["img1.png"][0].category == "object"


def test_keys_naming_finds_the_keys_of_files_outside_the_project(tmp_path):
    path = _write(
        tmp_path / "b.csv",
        "image,x0,y0,x1,y1,label\nbad.png,1,1,9,9,a\nsub/x.png,1,1,9,9,a\nz.png,1,1,9,9,a\n",
    )
    prompts = read_box_prompts(path)
    named = prompts.keys_naming(["bad.png", "sub/x.png", "z.png"], ["bad.png", "other/x.png", "sub/x.png"])
    assert named == ["bad.png", "sub/x.png"]
