"""COCO category ids survive a round trip: an imported category keeps its id in the file (``coco_id``)
through the project file and back into the export, even where the project cannot use it as its own id
(0); ids stay unique in the export when categories claim the same one."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from pycocotools.coco import COCO

from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.document import Category, Document, ImageRecord, Instance
from efficientsam_studio.annotations.errors import CorruptProjectError
from efficientsam_studio.annotations.formats.coco import coco_dict, export_category_ids, import_coco
from efficientsam_studio.annotations.formats.png_masks import export_png_masks
from efficientsam_studio.annotations.formats.yolo import export_yolo
from efficientsam_studio.annotations.project import Project

from .conftest import H, W, disk


def dataset(categories: list[tuple[int, str]], image_id: int = 0) -> dict:
    """One image ``a.png`` with one annotation per category."""
    return {
        "images": [{"id": image_id, "file_name": "a.png", "width": W, "height": H}],
        "categories": [{"id": i, "name": name} for i, name in categories],
        "annotations": [
            {"id": n + 1, "image_id": image_id, "category_id": i, "iscrowd": 0,
             "segmentation": masks.encode(disk(8 + 14 * n, 20, 5))}
            for n, (i, _) in enumerate(categories)
        ],
    }  # fmt: skip


def exported(document: Document) -> tuple[dict[str, int], list[tuple[int, str]], list[str]]:
    """The export's ``{category name: id}``, ``(image id, category name)`` of each annotation, and its
    notes; checked to load in pycocotools."""
    data, report = coco_dict(document)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = data
        coco.createIndex()
    ids = {c["name"]: c["id"] for c in data["categories"]}
    assert len(set(ids.values())) == len(ids)  # unique ids
    names = {c["id"]: c["name"] for c in data["categories"]}
    annotations = sorted((a["image_id"], names[a["category_id"]]) for a in data["annotations"])
    return ids, annotations, report.notes


def test_category_ids_from_0_come_back_on_export():
    source = dataset([(0, "background"), (1, "cell"), (2, "dog")])
    document = Document()
    report = import_coco(document, source)
    assert all(c.id > 0 for c in document.categories)  # project ids are positive
    assert [(c.name, c.coco_id) for c in document.categories] == [("background", 0), ("cell", 1), ("dog", 2)]
    assert report.category_ids_changed == [] and report.category_ids_moved == []
    assert "category ids" not in report.summary().lower()
    data, _ = coco_dict(document)
    assert [(i["id"], i["file_name"]) for i in data["images"]] == [(0, "a.png")]
    assert [(c["id"], c["name"]) for c in data["categories"]] == [(0, "background"), (1, "cell"), (2, "dog")]
    by_name = {c["name"]: c["id"] for c in source["categories"]}
    assert sorted((a["image_id"], a["category_id"]) for a in data["annotations"]) == sorted(
        (0, by_name[name]) for name in ("background", "cell", "dog")
    )
    again = Document()
    import_coco(again, data)  # a second round trip keeps them
    assert exported(again)[0] == {"background": 0, "cell": 1, "dog": 2}


def test_the_project_file_keeps_the_category_coco_id(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    with Project.create(folder, "labels") as project:
        import_coco(project.document, dataset([(0, "background"), (1, "cell")]))
        project.save()
        path = project.path
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert [c.get("coco_id") for c in saved["categories"]] == [0, 1]
    with Project.open(path) as reopened:
        assert [c.coco_id for c in reopened.document.categories] == [0, 1]
        assert exported(reopened.document)[0] == {"background": 0, "cell": 1}


def old_project_file(path) -> None:
    """A project file as written before categories had a COCO id: none of its records has one."""
    rle = masks.encode(disk(20, 20, 6))
    data = {
        "format": "efficientsam-studio-project",
        "schema_version": 1,
        "app_version": "0.1.0",
        "settings": {},
        "next_ids": {"image": 2, "category": 3, "instance": 2},
        "categories": [
            {"id": 1, "name": "cell", "colour": "#e69f00", "supercategory": ""},
            {"id": 2, "name": "dog", "colour": "#56b4e9", "supercategory": "animal"},
        ],
        "images": [{"id": 1, "path": "a.png", "width": W, "height": H, "status": "done"}],
        "instances": [
            {"id": 1, "image_id": 1, "category_id": 2, "segmentation": rle, "bbox": [0, 0, 1, 1],
             "area": 1, "score": None, "source": "manual", "iscrowd": False, "attributes": {}},
        ],
    }  # fmt: skip
    path.write_text(json.dumps(data), encoding="utf-8")


def test_an_old_project_file_loads_unchanged_and_exports_its_own_ids(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    path = folder / "labels.efsam.json"
    old_project_file(path)
    with Project.open(path) as project:
        document = project.document
        assert [(c.id, c.name, c.supercategory, c.coco_id) for c in document.categories] == [
            (1, "cell", "", None),
            (2, "dog", "animal", None),
        ]
        assert exported(document)[:2] == ({"cell": 1, "dog": 2}, [(1, "dog")])
        project.save()
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert all("coco_id" not in c for c in saved["categories"])  # nothing added to a file without them


@pytest.mark.parametrize("bad", ["3", True, 1.5, [1]])
def test_a_bad_category_coco_id_in_the_project_file_is_damage(tmp_path, bad):
    folder = tmp_path / "photos"
    folder.mkdir()
    path = folder / "labels.efsam.json"
    old_project_file(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["categories"][1]["coco_id"] = bad
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CorruptProjectError, match=r"categories\[1\]\.coco_id"):
        Project.open(path)


# ------------------------------------------------------------------------------------------ collisions
def test_two_categories_with_one_coco_id_the_first_keeps_it():
    categories = [
        Category(1, "cell", coco_id=7),
        Category(2, "dog", coco_id=7),
        Category(3, "cat", coco_id=2),
    ]
    ids = export_category_ids(categories)
    # "dog" falls back to its own id, 2, which is "cat"'s COCO id: the next id above all the others
    assert ids == {1: 7, 2: 8, 3: 2}


def test_a_coco_id_takes_the_place_of_another_category_s_own_id():
    document = Document()
    document.add_image(ImageRecord(1, "a.png", W, H))
    document.add_category(Category(1, "hand-made"))
    document.add_category(Category(2, "imported", coco_id=1))
    for n, category in enumerate(document.categories):
        document.add_instance(Instance.from_mask(n + 1, 1, category.id, disk(10 + 20 * n, 20, 6)))
    ids, annotations, notes = exported(document)
    assert ids == {"hand-made": 3, "imported": 1}
    assert annotations == [(1, "hand-made"), (1, "imported")]  # annotations follow their category
    assert notes == [
        "category ids must be unique, so 1 category got a free id (own -> written): "
        "'hand-made' 1 -> 3 (1 went to 'imported')"
    ]


def test_import_adopts_the_file_s_id_for_a_category_found_by_name_and_says_what_moved():
    document = Document()
    document.add_category(Category(document.allocate_id("category"), "dog"))
    document.add_category(Category(document.allocate_id("category"), "zebra"))
    report = import_coco(document, dataset([(1, "cell"), (2, "dog")]))
    assert [(c.id, c.name, c.coco_id) for c in document.categories] == [
        (1, "dog", 2),
        (2, "zebra", None),
        (3, "cell", 1),
    ]
    assert report.category_ids_changed == []  # the export writes the file's ids
    assert report.category_ids_moved == [("dog", 1, 2), ("zebra", 2, 4)]
    assert (
        "COCO export ids of categories already in the project changed (before -> now): "
        "'dog' 1 -> 2, 'zebra' 2 -> 4." in report.summary()
    )
    assert exported(document)[0] == {"dog": 2, "zebra": 4, "cell": 1}


def test_a_category_keeps_the_coco_id_of_the_first_file_and_the_report_says_so():
    document = Document()
    import_coco(document, dataset([(0, "background"), (5, "cell")]))
    report = import_coco(document, dataset([(1, "cell"), (5, "nucleus")], image_id=9))
    assert [(c.name, c.coco_id) for c in document.categories] == [
        ("background", 0),
        ("cell", 5),
        ("nucleus", 5),
    ]
    ids = exported(document)[0]
    assert ids["background"] == 0 and ids["cell"] == 5 and ids["nucleus"] not in (0, 5)
    assert report.category_ids_changed == [("cell", 1, 5), ("nucleus", 5, ids["nucleus"])]
    assert (
        f"category ids not kept (file -> COCO export): 'cell' 1 -> 5, 'nucleus' 5 -> {ids['nucleus']}."
        in report.summary()
    )


# ------------------------------------------------------------------------------------- other formats
def test_yolo_and_png_exports_use_display_order_and_project_ids(tmp_path):
    document = Document()
    document.add_image(ImageRecord(1, "a.png", W, H))
    document.add_category(Category(4, "cell", coco_id=9))
    document.add_category(Category(2, "dog", coco_id=0))
    document.add_instance(Instance.from_mask(1, 1, 2, disk(20, 20, 6)))
    export_yolo(document, tmp_path / "yolo", image_root=tmp_path, images="none")
    assert 'names:\n  0: "cell"\n  1: "dog"\n' in (tmp_path / "yolo" / "data.yaml").read_text()
    label = (tmp_path / "yolo" / "labels" / "a.txt").read_text().split()
    assert label[0] == "1"  # "dog", the second category
    export_png_masks(document, tmp_path / "png")
    written = json.loads((tmp_path / "png" / "instances.json").read_text())
    assert written["a.png"][0]["category_id"] == 2
