"""labelme export/import: polygons with group ids, mask shapes for holes, rectangles and circles."""

from __future__ import annotations

import base64
import json

import cv2
import numpy as np
import pytest

from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.document import Document, ImageRecord
from efficientsam_studio.annotations.errors import FormatError
from efficientsam_studio.annotations.formats.labelme import export_labelme, import_labelme

from .conftest import H, W, disk
from .shared_stems import shared_stem_document


@pytest.fixture
def folder(tmp_path, doc):
    root = tmp_path / "project"
    for image in doc.images:
        (root / image.path).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / image.path), np.zeros((image.height, image.width, 3), np.uint8))
    return root


def same_images(doc: Document) -> Document:
    target = Document()
    for image in doc.images:
        target.add_image(ImageRecord(image.id, image.path, image.width, image.height))
    return target


def test_export_writes_one_labelme_file_per_image(doc, folder, tmp_path):
    out = tmp_path / "labelme"
    report = export_labelme(doc, out, image_root=folder)
    assert sorted(p.relative_to(out).as_posix() for p in report.files) == ["a.json", "sub/b.json"]
    data = json.loads((out / "a.json").read_text())
    assert data["imagePath"] == "../project/a.png" and data["imageData"] is None
    assert (data["imageHeight"], data["imageWidth"]) == (H, W)
    kinds = [(s["label"], s["shape_type"], s["group_id"]) for s in data["shapes"]]
    # disk: one polygon; ring (hole): a mask shape; two parts: two polygons sharing the instance id
    assert kinds == [("cell", "polygon", None), ("dog", "mask", None), ("cell", "polygon", 3),
                     ("cell", "polygon", 3)]
    assert data["shapes"][0]["score"] == pytest.approx(0.91)
    mask_shape = data["shapes"][1]
    (x0, y0), (x1, y1) = mask_shape["points"]
    crop = cv2.imdecode(np.frombuffer(base64.b64decode(mask_shape["mask"]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert crop.shape == (y1 - y0 + 1, x1 - x0 + 1)


@pytest.mark.parametrize("policy", ["auto", "never"])
def test_round_trip_keeps_mask_shapes_pixel_exact(doc, folder, tmp_path, policy):
    export_labelme(doc, tmp_path / "out", image_root=folder, polygons=policy)
    target = same_images(doc)
    report = import_labelme(target, tmp_path / "out", image_root=folder)
    assert report.instances_added == 4 and report.categories_added == ["cell", "dog"]
    for image in doc.images:
        for original, imported in zip(doc.instances_of(image.id), target.instances_of(image.id), strict=True):
            distance = masks.boundary_distance(original.mask(), imported.mask())
            if policy == "never" or original.id == 2:  # mask shapes
                assert distance == 0
            else:
                assert distance <= 1.0 + 1.0  # default tolerance 1 px, + 1 for pixel quantisation


def test_always_polygons_fills_holes_and_reports_it(doc, folder, tmp_path):
    report = export_labelme(doc, tmp_path / "out", image_root=folder, polygons="always")
    assert report.holes_lost == [2]
    target = same_images(doc)
    import_labelme(target, tmp_path / "out", image_root=folder)
    ring_back = target.instances_of(1)[1].mask()
    assert ring_back[24, 40]  # the hole's centre is filled


def labelme_file(path, shapes, image="a.png", size=(H, W)):
    path.write_text(json.dumps({"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": image,
                                "imageData": None, "imageHeight": size[0], "imageWidth": size[1]}))


def shape(label, kind, points, **extra):
    return {"label": label, "shape_type": kind, "points": points, "group_id": None, "flags": {}, **extra}


def test_import_rectangle_circle_groups_and_unsupported_shapes(folder):
    labelme_file(folder / "a.json", [
        shape("box", "rectangle", [[2, 3], [11, 8]]),
        shape("ball", "circle", [[30, 20], [30, 26]]),
        shape("pair", "polygon", [[1, 30], [10, 30], [10, 40]], group_id=7),
        shape("pair", "polygon", [[50, 30], [60, 30], [60, 40]], group_id=7),
        shape("spot", "point", [[5, 5]]),
    ])
    document = Document()
    report = import_labelme(document, folder, image_root=folder)
    assert report.instances_added == 3 and report.images_added[0].path == "a.png"
    box, ball, pair = document.instances_of(1)
    assert box.area == 10 * 6 and box.bbox == (2.0, 3.0, 10.0, 6.0)
    assert np.array_equal(ball.mask(), disk(30, 20, 6))
    assert masks.part_count(pair.mask()) == 2
    assert any("'point' has no area" in why for _, why in report.skipped)


def test_import_of_a_file_outside_the_folder_and_missing_images(folder, tmp_path):
    labelme_file(folder / "gone.json", [shape("x", "rectangle", [[1, 1], [5, 5]])], image="gone.png")
    far = [shape("x", "rectangle", [[1, 1], [5, 5]])]
    labelme_file(folder / "far.json", far, image="../../elsewhere.png")
    (folder / "notes.json").write_text(json.dumps({"hello": 1}))
    document = Document()
    report = import_labelme(document, folder, image_root=folder)
    assert report.missing_images == ["gone.png"] and report.instances_added == 1
    reasons = " ".join(why for _, why in report.skipped)
    assert "outside the project folder" in reasons and "not a labelme file" in reasons


@pytest.mark.parametrize(
    "shapes, message",
    [
        ([shape("x", "polygon", [[1, 1], [2, 2]])], r"shapes\[0\]: field 'points' must hold at least 3"),
        ([shape("", "polygon", [[1, 1], [2, 2], [3, 1]])], r"shapes\[0\]: field 'label'"),
        ([shape("x", "mask", [[1, 1], [3, 3]], mask="bm90IGEgcG5n")], "not a base64 PNG"),
        ([shape("x", "rectangle", [[1, 1], [2, "a"]])], "exactly 2"),
    ],
)
def test_bad_labelme_files_name_file_and_shape_and_add_nothing(folder, shapes, message):
    labelme_file(folder / "a.json", shapes)
    document = Document()
    with pytest.raises(FormatError, match=message):
        import_labelme(document, folder, image_root=folder)
    assert document.images == [] and document.categories == []


def test_bad_json_is_reported_with_its_line(folder):
    (folder / "a.json").write_text("{\n\n oops")
    with pytest.raises(FormatError, match=r"a.json is not valid JSON \(line 3"):
        import_labelme(Document(), folder, image_root=folder)


def test_images_that_share_a_stem_get_their_own_labelme_files(tmp_path):
    root = tmp_path / "project"
    document = shared_stem_document(root)
    out = tmp_path / "labelme"
    report = export_labelme(document, out, image_root=root)
    assert sorted(p.relative_to(out).as_posix() for p in report.files) == ["a/x_jpg.json", "a/x_png.json",
                                                                           "b.json"]
    assert json.loads((out / "a" / "x_jpg.json").read_text())["imagePath"] == "../../project/a/x.jpg"
    assert report.renamed == [("a/x.png", "a/x_png"), ("a/x.jpg", "a/x_jpg")]
    target = same_images(document)
    assert import_labelme(target, out, image_root=root).instances_added == 3
    for image in document.images:
        (original,), (imported,) = document.instances_of(image.id), target.instances_of(image.id)
        assert document.category(original.category_id).name == target.category(imported.category_id).name
        assert masks.boundary_distance(original.mask(), imported.mask()) <= 2.0


def mask_png(height, width):
    ok, png = cv2.imencode(".png", np.ones((height, width), np.uint8))
    return base64.b64encode(png.tobytes()).decode("ascii")


@pytest.mark.parametrize(
    "shapes, size, message",
    [
        ([shape("x", "mask", [[-5, 2], [4, 11]], mask=mask_png(10, 10))], (H, W),
         r"shapes\[0\]: the mask at \[-5, 2\]-\[4, 11\] is not inside the 64x48 image"),
        ([shape("x", "mask", [[60, 40], [69, 49]], mask=mask_png(10, 10))], (H, W),
         r"shapes\[0\]: the mask at \[60, 40\]-\[69, 49\] is not inside"),
        ([shape("x", "mask", [[2, 2], [5, 5]], mask=mask_png(10, 10))], (H, W),
         r"shapes\[0\]: field 'mask' is 10x10 pixels but 'points' span 4x4"),
        ([shape("x", "circle", [[10, 10], [float("nan"), 12]])], (H, W),
         r"shapes\[0\]: field 'points' must hold .*finite"),
        ([shape("x", "polygon", [[1, 1], [1e12, 1], [20, 20]])], (H, W),
         r"shapes\[0\]: .*far outside the 64x48 image"),
        ([shape("x", "polygon", [[1, 1], [9, 1], [9, 9]])], (0, W), "field 'imageHeight' must be positive"),
    ],
)
def test_bad_mask_shapes_and_sizes_are_refused_before_anything_is_added(folder, shapes, size, message):
    labelme_file(folder / "a.json", shapes, size=size)
    document = Document()
    with pytest.raises(FormatError, match=message):
        import_labelme(document, folder, image_root=folder)
    assert document.images == [] and document.categories == []


def test_a_mask_shape_that_fills_the_image_corner_is_imported(folder):
    labelme_file(folder / "a.json", [shape("x", "mask", [[W - 10, H - 10], [W - 1, H - 1]],
                                           mask=mask_png(10, 10))])
    document = Document()
    assert import_labelme(document, folder, image_root=folder).instances_added == 1
    assert next(document.iter_instances()).bbox == (W - 10.0, H - 10.0, 10.0, 10.0)
