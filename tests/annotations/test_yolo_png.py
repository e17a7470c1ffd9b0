"""YOLO segmentation and PNG mask exports."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from efficientsam_studio.annotations import commands as C
from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.document import Document, ImageStatus
from efficientsam_studio.annotations.errors import FormatError
from efficientsam_studio.annotations.formats.coco import coco_dict
from efficientsam_studio.annotations.formats.labelme import export_labelme
from efficientsam_studio.annotations.formats.png_masks import export_png_masks
from efficientsam_studio.annotations.formats.yolo import export_yolo

from .conftest import H, W
from .shared_stems import shared_stem_document


@pytest.fixture
def folder(tmp_path, doc):
    root = tmp_path / "project"
    for image in doc.images:
        (root / image.path).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / image.path), np.zeros((image.height, image.width, 3), np.uint8))
    return root


def test_yolo_lines_are_normalised_polygons_one_per_part(doc, folder, tmp_path):
    out = tmp_path / "yolo"
    report = export_yolo(doc, out, image_root=folder, tolerance=0.5)
    lines = (out / "labels" / "a.txt").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["0", "1", "0", "0"]  # disk, ring, two parts
    assert report.parts_split == [3] and report.holes_lost == [2]
    for line in lines:
        values = np.array(line.split()[1:], dtype=float)
        assert len(values) % 2 == 0 and len(values) >= 6 and values.min() >= 0 and values.max() <= 1
    polygon = np.array(lines[0].split()[1:], dtype=float).reshape(-1, 2) * [W, H]
    back = masks.polygons_to_mask([polygon], H, W)
    assert masks.boundary_distance(doc.instances_of(1)[0].mask(), back) <= 0.5 + 1.0
    assert (out / "images" / "sub" / "b.png").is_file() and (out / "labels" / "sub" / "b.txt").is_file()
    assert (out / "images.txt").read_text().splitlines() == ["./images/a.png", "./images/sub/b.png"]
    yaml = (out / "data.yaml").read_text()
    assert 'names:\n  0: "cell"\n  1: "dog"\n' in yaml and "nc: 2" in yaml and "train: images.txt" in yaml


def test_yolo_exports_done_images_without_instances_as_negatives(doc, folder, tmp_path):
    C.UndoStack().push(C.RemoveInstance(doc, 4))
    export_yolo(doc, tmp_path / "a", image_root=folder, images="none")
    assert not (tmp_path / "a" / "labels" / "sub" / "b.txt").exists()
    C.UndoStack().push(C.SetImageStatus(doc, 2, ImageStatus.DONE))
    export_yolo(doc, tmp_path / "b", image_root=folder, images="copy")
    assert (tmp_path / "b" / "labels" / "sub" / "b.txt").read_text() == ""


def test_png_masks_semantic_and_instance_images(doc, tmp_path):
    out = tmp_path / "masks"
    export_png_masks(doc, out)
    semantic = cv2.imread(str(out / "semantic" / "a.png"), cv2.IMREAD_UNCHANGED)
    labels = cv2.imread(str(out / "instances" / "a.png"), cv2.IMREAD_UNCHANGED)
    assert semantic.dtype == np.uint8 and labels.dtype == np.uint16 and labels.shape == (H, W)
    first, ring, parts = doc.instances_of(1)
    assert np.array_equal(labels == 2, ring.mask() & ~parts.mask())  # the top one wins overlaps
    assert np.array_equal(labels == 3, parts.mask())
    assert set(np.unique(semantic[ring.mask() & ~parts.mask()])) == {2}
    assert semantic[0, W - 1] == 0 and labels[0, W - 1] == 0
    colour = cv2.imread(str(out / "semantic_colour" / "a.png"))
    assert ring.mask()[24, 31] and not parts.mask()[24, 31]
    assert tuple(colour[24, 31][::-1]) == (0, 255, 0)  # on the ring: the dog colour #00ff00
    table = json.loads((out / "categories.json").read_text())
    assert [(c["index"], c["name"]) for c in table] == [(0, "background"), (1, "cell"), (2, "dog")]
    listing = json.loads((out / "instances.json").read_text())
    assert [e["id"] for e in listing["a.png"]] == [first.id, ring.id, parts.id]


def test_exporters_report_progress_per_image(doc, folder, tmp_path):
    for export in (lambda p: coco_dict(doc, progress=p),
                   lambda p: export_labelme(doc, tmp_path / "lm", image_root=folder, progress=p),
                   lambda p: export_yolo(doc, tmp_path / "y", image_root=folder, images="none", progress=p),
                   lambda p: export_png_masks(doc, tmp_path / "png", progress=p)):
        calls: list[tuple[int, int]] = []
        export(lambda done, total, seen=calls: seen.append((done, total)))
        assert calls == [(1, 2), (2, 2)]


def test_yolo_export_of_no_labelled_image_is_an_empty_dataset(tmp_path):
    out = tmp_path / "empty"
    report = export_yolo(Document(), out, image_root=tmp_path)
    assert (out / "images.txt").read_text() == "" and "nc: 0" in (out / "data.yaml").read_text()
    assert report.images == 0 and report.instances == 0


def test_yolo_gives_images_that_share_a_stem_their_own_image_and_label_names(tmp_path):
    document = shared_stem_document(tmp_path / "project")
    out = tmp_path / "yolo"
    report = export_yolo(document, out, image_root=tmp_path / "project", images="copy")
    listed = (out / "images.txt").read_text().splitlines()
    assert listed == ["./images/a/x_png.png", "./images/a/x_jpg.jpg", "./images/b.png"]
    for image, expected_class in zip(listed, ("0", "1", "0"), strict=True):
        assert (out / image).is_file()
        label = (out / image.replace("images/", "labels/", 1)).with_suffix(".txt")
        assert [line.split()[0] for line in label.read_text().splitlines()] == [expected_class]
    assert not (out / "labels" / "a" / "x.txt").exists()
    assert report.renamed == [("a/x.png", "a/x_png"), ("a/x.jpg", "a/x_jpg")]
    assert "a/x.png -> a/x_png" in report.summary() and "3 instances on 3 images" in report.summary()


def test_yolo_without_images_refuses_images_that_share_a_stem(tmp_path):
    document = shared_stem_document(tmp_path / "project")
    out = tmp_path / "yolo"
    with pytest.raises(FormatError, match=r"a/x\.png, a/x\.jpg.*a/x\.txt.*link.*copy"):
        export_yolo(document, out, image_root=tmp_path / "project", images="none")
    assert not out.exists()


def test_png_masks_of_images_that_share_a_stem_go_to_their_own_files(tmp_path):
    document = shared_stem_document(tmp_path / "project")
    out = tmp_path / "masks"
    report = export_png_masks(document, out)
    for name, category_index in (("a/x_png.png", 1), ("a/x_jpg.png", 2), ("b.png", 1)):
        semantic = cv2.imread(str(out / "semantic" / name), cv2.IMREAD_UNCHANGED)
        assert set(np.unique(semantic)) == {0, category_index}
        assert (out / "instances" / name).is_file() and (out / "semantic_colour" / name).is_file()
    assert not (out / "semantic" / "a" / "x.png").exists()
    assert report.renamed == [("a/x.png", "a/x_png"), ("a/x.jpg", "a/x_jpg")]

