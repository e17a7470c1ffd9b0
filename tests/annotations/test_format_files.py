"""Where exports put their files and how imports find theirs: YOLO image lists as Ultralytics reads them,
labelme files whose images sit elsewhere, four-corner boxes, and an export with nothing to write."""

from __future__ import annotations

import json
import os
import shutil

import cv2
import numpy as np
import pytest

from efficientsam_studio.annotations.document import Category, Document, ImageRecord, Instance
from efficientsam_studio.annotations.errors import FormatError
from efficientsam_studio.annotations.formats.labelme import export_labelme, import_labelme, polygon_mask
from efficientsam_studio.annotations.formats.yolo import export_yolo

from .conftest import H, W, disk


def write_images(root, names):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / name), np.zeros((H, W, 3), np.uint8))
    return root


def labelled(names) -> Document:
    """One instance of "cell" on each image named."""
    document = Document()
    document.add_category(Category(document.allocate_id("category"), "cell", "#ff0000"))
    for n, name in enumerate(names):
        image = ImageRecord(document.allocate_id("image"), name, W, H)
        document.add_image(image)
        mask = disk(10 + 8 * n, 20, 6)
        document.add_instance(Instance.from_mask(document.allocate_id("instance"), image.id, 1, mask))
    return document


# ------------------------------------------------------------------------------------------- YOLO
def ultralytics_pairs(out):
    """The (image, label) paths Ultralytics reads from ``data.yaml`` and its list file: lines starting
    with ``./`` are relative to the list's folder, other relative lines to the working directory, and the
    label of ``.../images/x.png`` is ``.../labels/x.txt``."""
    yaml = (out / "data.yaml").read_text()
    root = json.loads(yaml.split("path: ", 1)[1].split("\n", 1)[0])
    listing = os.path.join(root, "images.txt")
    parent = os.path.dirname(listing) + os.sep
    with open(listing, encoding="utf-8") as file:
        lines = file.read().strip().splitlines()
    images = [x.replace("./", parent) if x.startswith("./") else x for x in lines]
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return [(x, sb.join(x.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt") for x in images]


def test_yolo_image_list_is_found_from_any_working_directory(tmp_path, monkeypatch):
    names = ["a.png", "sub/b.png", "v1./c.png"]  # a folder whose name ends in a dot
    root = write_images(tmp_path / "project", names)
    out = tmp_path / "yolo"
    export_yolo(labelled(names), out, image_root=root, images="copy")
    lines = (out / "images.txt").read_text().splitlines()
    assert lines[:2] == ["./images/a.png", "./images/sub/b.png"]
    assert lines[2] == (out / "images" / "v1." / "c.png").resolve().as_posix()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    pairs = ultralytics_pairs(out)
    assert len(pairs) == 3
    for image, label in pairs:
        assert os.path.isfile(image) and os.path.isfile(label), (image, label)
        assert open(label).read().startswith("0 ")


def test_yolo_without_images_says_where_to_put_them_and_pairs_them_once_they_are_there(tmp_path, monkeypatch):
    names = ["a.png", "sub/b.png"]
    root = write_images(tmp_path / "project", names)
    out = tmp_path / "yolo"
    report = export_yolo(labelled(names), out, image_root=root, images="none")
    assert (out / "images.txt").read_text().splitlines() == ["./images/a.png", "./images/sub/b.png"]
    assert not (out / "images").exists()
    assert len(report.notes) == 1 and f"copy the project's images into {out / 'images'}" in report.summary()
    shutil.copytree(root, out / "images")  # as the note says
    monkeypatch.chdir(tmp_path)
    assert all(os.path.isfile(i) and os.path.isfile(label) for i, label in ultralytics_pairs(out))


# ------------------------------------------------------------------------------------------ labelme
def test_labelme_import_finds_an_image_in_a_subfolder_the_project_has_not_listed(tmp_path):
    names = ["a.png", "sub/b.png"]
    original = write_images(tmp_path / "original", names)
    export_labelme(labelled(names), tmp_path / "exported", image_root=original)  # written outside it
    copy = write_images(tmp_path / "copy", names)
    document = Document()  # a project of the top folder only
    document.add_image(ImageRecord(document.allocate_id("image"), "a.png", W, H))
    report = import_labelme(document, tmp_path / "exported", image_root=copy)
    assert report.skipped == [] and report.missing_images == []
    assert [i.path for i in report.images_added] == ["sub/b.png"] and report.instances_added == 2


def test_labelme_import_says_when_an_image_is_not_found(tmp_path):
    write_images(tmp_path / "original", ["sub/b.png"])
    export_labelme(labelled(["sub/b.png"]), tmp_path / "exported", image_root=tmp_path / "original")
    project = write_images(tmp_path / "project", ["a.png"])
    document = Document()
    report = import_labelme(document, tmp_path / "exported", image_root=project)
    assert report.instances_added == 0 and document.images == []
    ((what, why),) = report.skipped
    assert what.endswith("b.json") and "../../original/sub/b.png was not found" in why
    assert "outside the project folder" in why and "no sub/b.png" in why


CORNERS = [[4.0, 20.0], [20.0, 4.0], [36.0, 20.0], [20.0, 36.0]]


@pytest.mark.parametrize("kind", ["oriented_rectangle", "rotation"])
def test_four_corner_boxes_are_imported_as_polygons(tmp_path, kind):
    root = write_images(tmp_path, ["a.png"])
    shape = {"label": "box", "points": CORNERS, "group_id": None, "shape_type": kind, "flags": {}}
    if kind == "rotation":
        shape["direction"] = 0.785  # X-AnyLabeling keeps the angle beside the corners
    data = {"version": "5.5.0", "flags": {}, "shapes": [shape], "imagePath": "a.png", "imageData": None}
    (root / "a.json").write_text(json.dumps({**data, "imageHeight": H, "imageWidth": W}))
    document = Document()
    report = import_labelme(document, root / "a.json", image_root=root)
    assert report.instances_added == 1 and report.skipped == []
    expected = polygon_mask(np.array(CORNERS), H, W)
    assert np.array_equal(document.instances_of(1)[0].mask(), expected)
    shape["points"] = CORNERS[:3]
    (root / "a.json").write_text(json.dumps({**data, "shapes": [shape], "imageHeight": H, "imageWidth": W}))
    with pytest.raises(FormatError, match=r"shapes\[0\]: field 'points' must hold exactly 4"):
        import_labelme(Document(), root / "a.json", image_root=root)


def test_unknown_shape_types_are_not_supported_and_points_have_no_area(tmp_path):
    root = write_images(tmp_path, ["a.png"])
    shapes = [
        {"label": "x", "points": [[1, 1], [5, 1], [5, 5], [1, 5]], "shape_type": "cuboid"},
        {"label": "x", "points": [[1, 1]], "shape_type": "point"},
    ]
    data = {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": "a.png", "imageData": None}
    (root / "a.json").write_text(json.dumps({**data, "imageHeight": H, "imageWidth": W}))
    report = import_labelme(Document(), root / "a.json", image_root=root)
    assert [why for _, why in report.skipped] == [
        "shape type 'cuboid' is not supported; not imported",
        "shape type 'point' has no area; not imported",
    ]


def test_labelme_export_with_nothing_to_write_creates_its_folder(tmp_path):
    out = tmp_path / "labelme"
    report = export_labelme(Document(), out, image_root=tmp_path)
    assert out.is_dir() and list(out.iterdir()) == [] and report.images == 0
    assert import_labelme(Document(), out, image_root=tmp_path).instances_added == 0
