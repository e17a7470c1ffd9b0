"""COCO image ids survive a round trip: an imported image keeps its id in the file (``coco_id``) through
the project file and back into the export, so the labels stay matched to the original dataset."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from pycocotools.coco import COCO

from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.document import Document, ImageRecord
from efficientsam_studio.annotations.errors import CorruptProjectError
from efficientsam_studio.annotations.formats.coco import coco_dict, export_image_ids, import_coco
from efficientsam_studio.annotations.project import Project

from .conftest import H, W, disk


def dataset(ids: dict[str, int]) -> dict:
    """One image per name with the given COCO id, each with one "cat" annotation."""
    return {
        "images": [{"id": i, "file_name": name, "width": W, "height": H} for name, i in ids.items()],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [
            {"id": 900 + n, "image_id": i, "category_id": 1, "iscrowd": 0,
             "segmentation": masks.encode(disk(20 + n, 20, 6))}
            for n, i in enumerate(ids.values())
        ],
    }  # fmt: skip


def exported_ids(document: Document) -> dict[str, int]:
    data, _ = coco_dict(document)
    by_id = {image["id"]: image["file_name"] for image in data["images"]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = data
        coco.createIndex()
    for annotation in data["annotations"]:  # every annotation refers to an exported image
        assert annotation["image_id"] in by_id
    return {name: image_id for image_id, name in by_id.items()}


def test_imported_image_ids_come_back_on_export():
    document = Document()
    import_coco(document, dataset({"a.png": 397133, "b.png": 42}))
    assert [(i.id, i.coco_id) for i in document.images] == [(1, 397133), (2, 42)]
    assert exported_ids(document) == {"a.png": 397133, "b.png": 42}
    data, _ = coco_dict(document)
    assert {a["image_id"] for a in data["annotations"]} == {397133, 42}
    again = Document()
    import_coco(again, data)  # and a second round trip keeps them
    assert exported_ids(again) == {"a.png": 397133, "b.png": 42}


def test_an_image_of_the_project_takes_the_id_of_the_file_that_names_it_first():
    document = Document()
    document.add_image(ImageRecord(document.allocate_id("image"), "a.png", W, H))
    import_coco(document, dataset({"a.png": 7}))
    import_coco(document, dataset({"a.png": 8}))  # another file's id does not replace it
    assert document.images[0].coco_id == 7
    assert exported_ids(document) == {"a.png": 7}


def test_images_without_a_coco_id_get_free_ids():
    document = Document()
    import_coco(document, dataset({"a.png": 2, "b.png": 5}))
    for name in ("c.png", "d.png"):  # project ids 3 and 4: 3 is free, ... and 5 is not reached
        document.add_image(ImageRecord(document.allocate_id("image"), name, W, H))
    document.add_image(ImageRecord(document.allocate_id("image"), "e.png", W, H))  # project id 5: taken
    ids = export_image_ids(document.images)
    assert ids == {1: 2, 2: 5, 3: 3, 4: 4, 5: 6}
    assert len(set(ids.values())) == len(ids)


def test_images_sharing_a_coco_id_fall_back_to_their_own_ids():
    images = [ImageRecord(1, "a.png", W, H, coco_id=9), ImageRecord(2, "b.png", W, H, coco_id=9),
              ImageRecord(3, "c.png", W, H, coco_id=1)]  # fmt: skip
    assert export_image_ids(images) == {1: 4, 2: 2, 3: 1}  # 1 is c.png's: a.png takes the next free id


def test_the_project_file_keeps_the_coco_id(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    with Project.create(folder, "labels") as project:
        import_coco(project.document, dataset({"a.png": 397133}))
        project.save()
        path = project.path
    with Project.open(path) as reopened:
        assert reopened.document.images[0].coco_id == 397133


@pytest.mark.parametrize("bad", ["397133", True, 1.5, [1]])
def test_a_bad_coco_id_in_the_project_file_is_damage(tmp_path, bad):
    folder = tmp_path / "photos"
    folder.mkdir()
    with Project.create(folder, "labels") as project:
        import_coco(project.document, dataset({"a.png": 1}))
        project.save()
        path = project.path
    text = path.read_text(encoding="utf-8").replace('"coco_id":1', f'"coco_id":{json.dumps(bad)}')
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CorruptProjectError, match="coco_id"):
        Project.open(path)


def test_a_negative_coco_id_is_kept_and_the_project_reopens(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    with Project.create(folder, "labels") as project:
        import_coco(project.document, dataset({"a.png": -1}))
        project.save()
        path = project.path
    with Project.open(path) as reopened:
        assert reopened.document.images[0].coco_id == -1
        assert exported_ids(reopened.document) == {"a.png": -1}
