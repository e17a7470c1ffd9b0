"""COCO export/import: pycocotools loads the export, COCOeval against itself gives AP 1.0, round trips
keep every RLE pixel and stay within the tolerance for polygons, bad files name the field and id."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from efficientsam_studio.annotations import commands as C
from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.document import Document, ImageRecord, Instance
from efficientsam_studio.annotations.errors import FormatError
from efficientsam_studio.annotations.formats.coco import coco_dict, export_coco, import_coco
from efficientsam_studio.annotations.formats.labelme import export_labelme
from efficientsam_studio.annotations.formats.png_masks import export_png_masks
from efficientsam_studio.annotations.formats.yolo import export_yolo

from .conftest import H, W, disk


def fresh_target(doc: Document) -> Document:
    """An empty document holding the same images (as a project on the same folder would)."""
    target = Document()
    for image in doc.images:
        target.add_image(ImageRecord(image.id, image.path, image.width, image.height))
    return target


def masks_by_image(doc: Document) -> dict[str, list[np.ndarray]]:
    return {img.path: [inst.mask() for inst in doc.instances_of(img.id)] for img in doc.images}


def test_export_loads_in_pycocotools_and_self_eval_gives_ap_1(doc, tmp_path):
    out = tmp_path / "coco.json"
    report = export_coco(doc, out)
    assert report.instances == 4 and report.files == [out]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(out))
        results = [dict(a, score=1.0) for a in gt.dataset["annotations"]]
        dt = gt.loadRes(copy.deepcopy(results))
        evaluation = COCOeval(gt, dt, "segm")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)
    for annotation in gt.dataset["annotations"]:
        assert gt.annToMask(annotation).sum() > 0


def test_ids_are_the_documents_and_stable_across_exports(doc):
    first, _ = coco_dict(doc)
    C.UndoStack().push(C.RemoveInstance(doc, 2))
    second, _ = coco_dict(doc)
    assert [a["id"] for a in first["annotations"]] == [1, 2, 3, 4]
    assert [a["id"] for a in second["annotations"]] == [1, 3, 4]
    assert [i["id"] for i in second["images"]] == [1, 2] and [c["id"] for c in second["categories"]] == [1, 2]
    assert first["annotations"][0]["score"] == pytest.approx(0.91)


def test_auto_policy_keeps_holes_and_parts_as_rle(doc):
    data, report = coco_dict(doc, polygons="auto")
    kinds = [type(a["segmentation"]).__name__ for a in data["annotations"]]
    assert kinds == ["list", "dict", "dict", "list"]  # disk, ring (hole), two parts, disk
    assert report.polygons == 2 and report.rle == 2 and report.holes_lost == []
    assert isinstance(data["annotations"][1]["segmentation"]["counts"], str)


def test_always_polygons_reports_lost_holes_and_splits_parts(doc):
    data, report = coco_dict(doc, polygons="always")
    assert all(isinstance(a["segmentation"], list) for a in data["annotations"])
    assert report.holes_lost == [2] and report.parts_split == [3]
    assert len(data["annotations"][2]["segmentation"]) == 2


def test_rle_round_trip_preserves_every_pixel(doc, tmp_path):
    out = tmp_path / "coco.json"
    export_coco(doc, out, polygons="never")
    target = fresh_target(doc)
    report = import_coco(target, out)
    assert report.instances_added == 4 and report.categories_added == ["cell", "dog"]
    for path, originals in masks_by_image(doc).items():
        for original, imported in zip(originals, masks_by_image(target)[path], strict=True):
            assert np.array_equal(original, imported)
    assert [i.score for i in target.iter_instances()] == [i.score for i in doc.iter_instances()]


@pytest.mark.parametrize("tolerance", [0.0, 1.0, 2.5])
def test_polygon_round_trip_stays_within_tolerance(doc, tmp_path, tolerance):
    out = tmp_path / "coco.json"
    export_coco(doc, out, polygons="always", tolerance=tolerance)
    target = fresh_target(doc)
    import_coco(target, out)
    for path, originals in masks_by_image(doc).items():
        for original, imported in zip(originals, masks_by_image(target)[path], strict=True):
            # holes are not part of a polygon export: compare with the mask whose holes are filled
            filled = masks.polygons_to_mask(masks.mask_to_polygons(original, "all", 0), H, W) | original
            # exact without simplification; otherwise within the tolerance (+ 1 for pixel quantisation)
            if tolerance == 0:
                assert np.array_equal(filled, imported)
            assert masks.boundary_distance(filled, imported) <= tolerance + 1.0


def test_import_maps_categories_by_name_and_skips_duplicates(doc, tmp_path):
    out = tmp_path / "coco.json"
    export_coco(doc, out, polygons="never")
    data = json.loads(out.read_text())
    for category in data["categories"]:
        category["id"] += 100
    for annotation in data["annotations"]:
        annotation["category_id"] += 100
    report = import_coco(doc, data)
    assert report.instances_added == 0 and report.duplicates == 4 and report.categories_added == []
    data["categories"].append({"id": 7, "name": "car", "supercategory": "vehicle"})
    data["annotations"].append({"id": 99, "image_id": 1, "category_id": 7, "iscrowd": 1,
                                "segmentation": masks.encode(disk(5, 5, 3)), "bbox": [0, 0, 1, 1], "area": 1})
    report = import_coco(doc, data)
    assert report.instances_added == 1 and report.categories_added == ["car"]
    added = doc.instances_of(1)[-1]
    assert added.iscrowd and doc.category(added.category_id).supercategory == "vehicle"


def test_import_uncompressed_rle_and_bbox_only(tmp_path):
    mask = disk(30, 20, 9)
    flat = mask.astype(np.uint8).flatten(order="F")
    runs, current, count = [], 0, 0
    for value in flat:
        if value != current:
            runs.append(count)
            current, count = value, 0
        count += 1
    runs.append(count)
    data = {
        "images": [{"id": 5, "file_name": "x/y.png", "width": W, "height": H}],
        "categories": [{"id": 1, "name": "cell"}],
        "annotations": [
            {"id": 10, "image_id": 5, "category_id": 1, "iscrowd": 1,
             "segmentation": {"size": [H, W], "counts": runs}},
            {"id": 11, "image_id": 5, "category_id": 1, "bbox": [1, 2, 3, 4]},
            {"id": 12, "image_id": 5, "category_id": 1, "segmentation": []},
        ],
    }
    document = Document()
    report = import_coco(document, data, image_root=tmp_path)
    assert report.instances_added == 1 and np.array_equal(next(document.iter_instances()).mask(), mask)
    assert [what for what, _ in report.skipped] == ["annotation 11", "annotation 12"]
    assert "box only" in report.skipped[0][1]
    assert report.missing_images == ["x/y.png"] and document.image_by_path("x/y.png") is not None
    assert "not in the project folder" in report.summary()


def small_rle() -> dict:
    """A valid compressed RLE of a 10 x 10 mask (not the size of the images in these files)."""
    return masks.encode(disk(5, 5, 3, shape=(10, 10)))


def good_file() -> dict:
    return {
        "images": [{"id": 1, "file_name": "a.png", "width": W, "height": H}],
        "categories": [{"id": 1, "name": "cell"}],
        "annotations": [{"id": 42, "image_id": 1, "category_id": 1,
                         "segmentation": [[1, 1, 20, 1, 20, 20]], "iscrowd": 0}],
    }


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda d: d.pop("annotations"), "field 'annotations' is missing"),
        (lambda d: d["images"][0].pop("width"), r"images\[0\]: field 'width' is missing"),
        (lambda d: d["annotations"][0].update(segmentation=[[1, 2, 3, 4, 5]]),
         r"annotation id 42 .*segmentation\[0\].*at least 6 numbers"),
        (lambda d: d["annotations"][0].update(segmentation={"size": [H, W], "counts": 7}),
         "annotation id 42 .*segmentation.counts.*must be a string"),
        (lambda d: d["annotations"][0].update(segmentation={"size": [10, 10], "counts": "abc"}),
         "annotation id 42 .*segmentation.size.*differs"),
        (lambda d: d["annotations"][0].update(segmentation={"size": [H, W], "counts": [5, 3]}),
         "annotation id 42 .*cover 8 pixels"),
        (lambda d: d["annotations"][0].update(segmentation={"size": [H, W], "counts": "zzzz!!"}),
         r"annotation id 42 .*segmentation.counts.*not a valid RLE.*'z' at position 0"),
        (lambda d: d["annotations"][0].update(segmentation={"size": [H, W], "counts": "0:P"}),
         "annotation id 42 .*segmentation.counts.*not a valid RLE.*ends inside a run"),
        (lambda d: d["annotations"][0].update(segmentation={"size": [H, W], "counts": ""}),
         "annotation id 42 .*segmentation.counts.*cover 0 pixels"),
        (lambda d: d["annotations"][0].update(segmentation={"size": [H, W], "counts": small_rle()["counts"]}),
         f"annotation id 42 .*segmentation.counts.*the runs cover 100 pixels, not height x width = {H * W}"),
        (lambda d: d["annotations"][0].update(segmentation=small_rle()),
         r"annotation id 42 .*segmentation.size.*\[10, 10\] differs from the image's"),
        (lambda d: d["annotations"][0].update(segmentation=[[1, 1, float("nan"), 1, 20, 20]]),
         r"annotation id 42 .*segmentation\[0\].*finite"),
        (lambda d: d["annotations"][0].update(segmentation=[[1, 1, 1e12, 1, 20, 20]]),
         r"annotation id 42 .*segmentation\[0\].*far outside the 64x48 image"),
        (lambda d: d["annotations"][0].update(image_id=9), "annotation id 42 .*image 9 is not in 'images'"),
        (lambda d: d["annotations"][0].update(category_id=9), "annotation id 42 .*category 9"),
        (lambda d: d["annotations"][0].pop("image_id"), "annotation id 42 .*'image_id' is missing"),
    ],
)
def test_malformed_file_names_field_and_annotation_id_and_adds_nothing(doc, breakage, message):
    data = good_file()
    breakage(data)
    before = (doc.images, doc.categories, list(doc.iter_instances()))
    with pytest.raises(FormatError, match=message):
        import_coco(doc, data)
    assert (doc.images, doc.categories, list(doc.iter_instances())) == before


def test_bad_json_names_the_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"images": [\n  1,,\n]}')
    with pytest.raises(FormatError, match="bad.json is not valid JSON .*line 2"):
        import_coco(Document(), path)


def test_size_mismatch_with_the_project_is_skipped_not_imported(doc):
    data = good_file()
    data["images"][0]["width"] = W + 1
    report = import_coco(doc, data)
    assert report.instances_added == 0 and "annotations skipped" in report.skipped[0][1]


def test_empty_masks_in_a_hand_edited_document_are_skipped_and_reported(doc, tmp_path):
    empty = masks.encode(np.zeros((H, W), bool))
    doc.add_instance(Instance(99, 1, 1, empty, (0.0, 0.0, 0.0, 0.0), 0))
    data, report = coco_dict(doc)
    assert 99 not in [a["id"] for a in data["annotations"]]
    assert report.skipped == [(99, "empty mask; not exported")]
    for export in (lambda: export_labelme(doc, tmp_path / "lm", image_root=tmp_path),
                   lambda: export_yolo(doc, tmp_path / "yolo", image_root=tmp_path, images="none"),
                   lambda: export_png_masks(doc, tmp_path / "png")):
        assert (99, "empty mask; not exported") in export().skipped


def test_removed_category_disappears_from_the_export_and_comes_back_on_undo(doc):
    stack = C.UndoStack()
    stack.push(C.RemoveCategory(doc, 2))
    data, _ = coco_dict(doc)
    assert [c["name"] for c in data["categories"]] == ["cell"]
    assert {a["category_id"] for a in data["annotations"]} == {1} and len(data["annotations"]) == 2
    stack.push(C.AddCategory(doc, "car"))
    data, _ = coco_dict(doc)
    assert [(c["id"], c["name"]) for c in data["categories"]] == [(1, "cell"), (3, "car")]
    stack.undo()
    stack.undo()
    data, _ = coco_dict(doc)
    assert [c["name"] for c in data["categories"]] == ["cell", "dog"] and len(data["annotations"]) == 4


def test_compressed_runs_are_read_as_pycocotools_reads_them():
    rng = np.random.default_rng(0)
    for shape in ((1, 1), (7, 3), (48, 64), (300, 451)):
        for density in (0.0, 0.02, 0.5, 1.0):
            mask = rng.random(shape) < density
            flat = mask.flatten(order="F")
            changes = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
            bounds = np.concatenate([[0], changes, [flat.size]])
            expected = ([0] if flat[0] else []) + np.diff(bounds).tolist()
            assert masks.run_lengths(masks.encode(mask)) == expected
    assert masks.run_lengths({"size": [2, 2], "counts": [1, 2, 1]}) == [1, 2, 1]


@pytest.mark.parametrize("counts", ["zzzz!!", "0:P", "", "04", [5, 3], [2, -1, 3]])
def test_check_rle_refuses_runs_that_do_not_describe_the_image(counts):
    with pytest.raises(ValueError):
        masks.check_rle({"size": [H, W], "counts": counts}, H, W)


def test_check_rle_accepts_what_encode_writes_and_refuses_another_size():
    rle = masks.encode(disk(20, 20, 8))
    masks.check_rle(rle, H, W)
    with pytest.raises(ValueError, match=r"size \[48, 64\] differs from \[64, 48\]"):
        masks.check_rle(rle, W, H)


def test_a_refused_rle_leaves_the_project_exportable(doc, tmp_path):
    data = good_file()
    data["annotations"][0]["segmentation"] = {"size": [H, W], "counts": "zzzz!!"}
    with pytest.raises(FormatError):
        import_coco(doc, data)
    export_coco(doc, tmp_path / "coco.json", polygons="never")
    export_png_masks(doc, tmp_path / "png")
