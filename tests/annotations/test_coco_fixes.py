"""COCO import: ids used twice are refused, images are found by their folder and not by name alone, paths
outside the project are not stored, and a round trip keeps statuses, categories, colours and
supercategories."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json

import pytest
from pycocotools.coco import COCO

from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.document import Category, Document, ImageRecord, ImageStatus
from efficientsam_studio.annotations.errors import FormatError
from efficientsam_studio.annotations.formats.coco import coco_dict, export_coco, import_coco
from efficientsam_studio.annotations.formats.common import ImageFinder, relative_image_path

from .conftest import H, W, disk, snapshot


def annotation(annotation_id: int, image_id: int, category_id: int, cx: int = 20) -> dict:
    return {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": category_id,
        "iscrowd": 0,
        "segmentation": masks.encode(disk(cx, 20, 6)),
    }


def coco_file(*file_names: str, categories: list[dict] | None = None) -> dict:
    """One image per name (ids 1, 2...), each with one "cat" annotation (ids 101, 102...)."""
    return {
        "images": [
            {"id": n, "file_name": name, "width": W, "height": H}
            for n, name in enumerate(file_names, start=1)
        ],
        "categories": categories or [{"id": 1, "name": "cat"}],
        "annotations": [
            annotation(100 + n, n, (categories or [{"id": 1}])[0]["id"])
            for n in range(1, len(file_names) + 1)
        ],
    }


def project(*paths: str) -> Document:
    document = Document()
    for path in paths:
        document.add_image(ImageRecord(document.allocate_id("image"), path, W, H))
    return document


def paths_with_instances(document: Document) -> dict[str, int]:
    return {image.path: len(document.instances_of(image.id)) for image in document.images}


# ------------------------------------------------------------------------------------ ids used twice
@pytest.mark.parametrize(
    "breakage, message",
    [
        (
            lambda d: d["images"].append({"id": 1, "file_name": "b.png", "width": W, "height": H}),
            r"images\[1\]: image id 1 is used twice \(images\[0\] and images\[1\]\)",
        ),
        (
            lambda d: d["categories"].append({"id": 1, "name": "zebra"}),
            r"categories\[1\]: category id 1 is used twice",
        ),
        (
            lambda d: d["annotations"].append(annotation(101, 1, 1, cx=40)),
            r"annotations\[1\]: annotation id 101 is used twice",
        ),
        (
            lambda d: d["images"].append({"id": 2, "file_name": "./a.png", "width": W, "height": H}),
            r"images\[1\]: field 'file_name': './a.png' is also the file of image 1",
        ),
    ],
)
def test_ids_used_twice_are_refused_naming_the_id_and_the_file(tmp_path, breakage, message):
    data = coco_file("a.png")
    breakage(data)
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(data))
    document = project("a.png", "b.png")
    before = snapshot(document)
    with pytest.raises(FormatError, match=f"COCO file {path}: {message}"):
        import_coco(document, path)
    assert snapshot(document) == before


# ------------------------------------------------------------------------------------ finding images
def test_a_folder_never_stands_for_another_folder():
    document = project("train/x.png")
    report = import_coco(document, coco_file("train/x.png", "val/x.png"))
    assert paths_with_instances(document) == {"train/x.png": 1, "val/x.png": 1}
    assert report.missing_images == ["val/x.png"]


@pytest.mark.parametrize(
    "paths, name, found",
    [
        (["train/x.png"], "train/x.png", "train/x.png"),
        (["train/x.png"], "x.png", "train/x.png"),  # a bare name: the one image of that name
        (["data/val/x.png"], "val/x.png", "data/val/x.png"),  # written from a folder below the project's
        (["train/x.png"], "val/x.png", None),
        (["train/x.png", "val/x.png"], "x.png", None),  # ambiguous
        (["x.png", "a/x.png"], "x.png", "x.png"),  # the exact path first
        (["a/bx.png"], "x.png", None),  # the end of a name is not a name
        (["a/x.png"], "A/x.png", None),
    ],
)
def test_image_finder(paths, name, found):
    record = ImageFinder(project(*paths)).find(name)
    assert (record.path if record else None) == found


def test_a_project_image_is_found_by_one_entry_at_most():
    # both entries would find train/x.png: the one naming its path keeps it, "x.png" is a new image
    document = project("train/x.png")
    report = import_coco(document, coco_file("x.png", "train/x.png"))
    assert paths_with_instances(document) == {"train/x.png": 1, "x.png": 1}
    assert report.missing_images == ["x.png"]
    instance = document.instances_of(document.image_by_path("train/x.png").id)[0]
    assert instance.rle["counts"] == masks.encode(disk(20, 20, 6))["counts"]


# ------------------------------------------------------------------------------------ image paths
@pytest.mark.parametrize("name", ["", ".", "a/..", "./"])
def test_a_file_name_that_names_no_file_is_refused(tmp_path, name):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(coco_file(name)))
    document = project()
    with pytest.raises(
        FormatError, match=rf"COCO file {path}: images\[0\]: field 'file_name': .* names no file"
    ):
        import_coco(document, path, image_root=tmp_path)
    assert document.images == []


@pytest.mark.parametrize(
    "name", ["/etc/x.png", "../x.png", "a/../../x.png", "C:\\data\\x.png", "//srv/x.png"]
)
def test_images_outside_the_project_folder_are_skipped_and_reported(tmp_path, name):
    document = project("x.png")
    report = import_coco(document, coco_file(name), image_root=tmp_path / "proj")
    assert document.images == [ImageRecord(1, "x.png", W, H)] and document.instance_count == 0
    assert report.skipped == [(f"image {name}", "outside the project folder; its annotations skipped")]


def test_paths_are_made_relative_and_folded(tmp_path):
    inside = str(tmp_path / "proj" / "sub" / "y.png")
    document = project()
    import_coco(document, coco_file("a/./b/../x.png", "sub\\z.png", inside), image_root=tmp_path / "proj")
    assert [image.path for image in document.images] == ["a/x.png", "sub/z.png", "sub/y.png"]
    assert relative_image_path(inside) is None  # no project folder to compare with


# ------------------------------------------------------------------------------------ statuses
def labelled(doc: Document) -> Document:
    """``doc`` with image 2 (sub/b.png) a true negative: done, no instances."""
    for instance in doc.instances_of(2):
        doc.remove_instance(instance.id)
    doc.replace_image(ImageRecord(2, "sub/b.png", W, H, ImageStatus.DONE))
    return doc


def test_a_true_negative_survives_a_round_trip(doc):
    data, _ = coco_dict(labelled(doc))
    assert [(i["file_name"], i["status"]) for i in data["images"]] == [
        ("a.png", "unlabelled"),
        ("sub/b.png", "done"),
    ]
    target = project("a.png", "sub/b.png")
    import_coco(target, data)
    assert target.image(2).status == ImageStatus.DONE
    again, _ = coco_dict(target)
    assert [i["file_name"] for i in again["images"]] == ["a.png", "sub/b.png"]
    new = Document()  # images added by the import take the status too
    import_coco(new, data)
    assert [image.status for image in new.images] == [ImageStatus.UNLABELLED, ImageStatus.DONE]


@pytest.mark.parametrize("own", [ImageStatus.IN_PROGRESS, ImageStatus.NEEDS_REVIEW, ImageStatus.SKIPPED])
def test_a_status_set_in_the_project_is_kept(doc, own):
    data, _ = coco_dict(labelled(doc))
    target = project("a.png")
    target.add_image(ImageRecord(target.allocate_id("image"), "sub/b.png", W, H, own))
    import_coco(target, data)
    assert target.image(2).status == own


def test_an_unknown_status_is_ignored():
    data = coco_file("a.png")
    data["images"][0]["status"] = "approved"
    document = project("a.png")
    import_coco(document, data)
    assert document.image(1).status == ImageStatus.UNLABELLED


# ------------------------------------------------------------------------------------ categories
CATEGORIES = [
    {"id": 1, "name": "person", "supercategory": "human", "color": "#102030"},
    {"id": 3, "name": "car", "supercategory": "vehicle", "color": "#405060"},
    {"id": 18, "name": "dog", "supercategory": "", "color": "#708090"},
]


def test_every_category_comes_back_with_its_id_colour_and_supercategory():
    data = coco_file("a.png", categories=CATEGORIES)
    data["annotations"].append(dict(annotation(200, 1, 18, cx=40)))
    document = project("a.png")
    report = import_coco(document, data)
    assert report.categories_added == ["person", "car", "dog"]
    assert document.categories == [
        Category(1, "person", "#102030", "human", coco_id=1),
        Category(3, "car", "#405060", "vehicle", coco_id=3),
        Category(18, "dog", "#708090", "", coco_id=18),
    ]
    assert document.next_ids["category"] == 19
    exported, _ = coco_dict(document)
    assert exported["categories"] == [
        {"id": c["id"], "name": c["name"], "supercategory": c["supercategory"], "color": c["color"]}
        for c in CATEGORIES
    ]


def test_ids_the_project_handed_out_are_renumbered():
    document = project("a.png")
    for name in ("cell", "old", "gone"):
        document.add_category(Category(document.allocate_id("category"), name))
    document.remove_category(3)  # id 3 was handed out: never used again
    data = coco_file(
        "a.png",
        categories=[
            {"id": 2, "name": "new"},
            {"id": 3, "name": "car"},
            {"id": 9, "name": "bus"},
            {"id": 1, "name": "old"},
        ],
    )
    import_coco(document, data)
    assert [(c.id, c.name) for c in document.categories] == [
        (1, "cell"),
        (2, "old"),
        (10, "new"),
        (11, "car"),
        (9, "bus"),
    ]
    assert [i.category_id for i in document.iter_instances()] == [10]


def test_a_bad_colour_gets_a_default_and_a_name_used_twice_joins_the_first():
    data = coco_file("a.png", categories=[{"id": 1, "name": "cat", "color": "red"}, {"id": 2, "name": "cat"}])
    data["annotations"].append(annotation(200, 1, 2, cx=40))
    document = project("a.png")
    import_coco(document, data)
    assert [(c.id, c.name, c.colour) for c in document.categories] == [(1, "cat", "#e69f00")]
    assert [i.category_id for i in document.iter_instances()] == [1, 1]


@pytest.mark.parametrize("name", ["", "  "])
def test_a_category_without_a_name_is_refused(name):
    data = coco_file("a.png", categories=[{"id": 1, "name": "cat"}, {"id": 2, "name": name}])
    with pytest.raises(FormatError, match=r"categories\[1\]: field 'name': must not be empty"):
        import_coco(project("a.png"), data)


def test_an_empty_supercategory_is_written_empty_and_pycocotools_loads_it(doc, tmp_path):
    out = tmp_path / "coco.json"
    export_coco(doc, out)
    data = json.loads(out.read_text())
    assert [(c["name"], c["supercategory"], c["color"]) for c in data["categories"]] == [
        ("cell", "", "#ff0000"),
        ("dog", "animal", "#00ff00"),
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        loaded = COCO(str(out))
    assert [c["name"] for c in loaded.loadCats(loaded.getCatIds())] == ["cell", "dog"]
    target = project("a.png", "sub/b.png")
    import_coco(target, out)
    assert [dataclasses.replace(c, coco_id=None) for c in target.categories] == doc.categories
    assert [c.coco_id for c in target.categories] == [c["id"] for c in data["categories"]]
