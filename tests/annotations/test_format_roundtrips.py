"""What survives an export and an import: how each mask was made (hand or AI), the image status, and
the objects themselves (importing a project's own export adds no second copies); category ids."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.document import (
    Category,
    Document,
    ImageRecord,
    ImageStatus,
    Instance,
)
from efficientsam_studio.annotations.errors import FormatError
from efficientsam_studio.annotations.formats.coco import coco_dict, import_coco
from efficientsam_studio.annotations.formats.labelme import export_labelme, import_labelme
from efficientsam_studio.annotations.formats.matching import PresentInstances

from .conftest import H, W, disk, snapshot


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "project"
    (root / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.png"):
        cv2.imwrite(str(root / name), np.zeros((H, W, 3), np.uint8))
    return root


def document_with(*instances: tuple[np.ndarray, str, float | None]) -> Document:
    """Images a.png and sub/b.png, category "cell", the instances on a.png."""
    document = Document()
    document.add_image(ImageRecord(document.allocate_id("image"), "a.png", W, H))
    document.add_image(ImageRecord(document.allocate_id("image"), "sub/b.png", W, H))
    document.add_category(Category(document.allocate_id("category"), "cell", "#ff0000"))
    for mask, source, score in instances:
        document.add_instance(
            Instance.from_mask(document.allocate_id("instance"), 1, 1, mask, score=score, source=source)
        )
    return document


def images_only(document: Document) -> Document:
    """A document with the same images (status unlabelled) and nothing else."""
    target = Document()
    for image in document.images:
        target.add_image(ImageRecord(image.id, image.path, image.width, image.height))
    return target


SOURCES = (
    (disk(12, 12, 6), "ai", None),  # a merge of AI masks: AI without a score
    (disk(40, 20, 7), "ai", 0.875),
    (disk(20, 36, 5), "manual", None),
    (disk(50, 38, 6), "manual", 0.5),  # an AI mask edited by hand keeps its score
)


def kept_fields(document: Document) -> list[tuple[str, float | None]]:
    return [(i.source, i.score) for i in document.instances_of(1)]


# ------------------------------------------------------------------------------------- source, score
def test_coco_round_trip_keeps_how_each_mask_was_made():
    document = document_with(*SOURCES)
    data, _ = coco_dict(document)
    assert [a["source"] for a in data["annotations"]] == ["ai", "ai", "manual", "manual"]
    target = images_only(document)
    import_coco(target, data)
    assert kept_fields(target) == [("ai", None), ("ai", 0.875), ("manual", None), ("manual", 0.5)]


def coco_file(annotations: list[dict]) -> dict:
    rle = masks.encode(disk(20, 20, 5))
    for n, annotation in enumerate(annotations, start=1):
        annotation.update(id=n, image_id=1, category_id=1, segmentation=rle)
    return {
        "images": [{"id": 1, "file_name": "a.png", "width": W, "height": H}],
        "categories": [{"id": 1, "name": "cell"}],
        "annotations": annotations,
    }


def test_coco_without_a_source_takes_a_scored_annotation_for_an_ai_mask():
    data = coco_file(
        [{"score": 0.75}, {}, {"source": "ai"}, {"source": "robot", "score": 0.25}, {"score": None}]
    )
    for n, annotation in enumerate(data["annotations"]):  # five masks side by side
        annotation["segmentation"] = masks.encode(disk(6 + 12 * n, 20, 4))
    document = Document()
    import_coco(document, data)
    assert [(i.source, i.score) for i in document.instances_of(1)] == [
        ("ai", 0.75),
        ("manual", None),
        ("ai", None),
        ("ai", 0.25),
        ("manual", None),
    ]


@pytest.mark.parametrize("score", ["0.9", True, 1.5, -0.1, float("nan"), [0.9]])
def test_a_coco_score_that_is_not_a_number_from_0_to_1_is_refused(score):
    document = Document()
    before = snapshot(document)
    with pytest.raises(
        FormatError, match=r"annotation id 1 \(annotations\[0\]\): field 'score': must be a number"
    ):
        import_coco(document, coco_file([{"score": score}]))
    assert snapshot(document) == before


def test_labelme_round_trip_keeps_how_each_mask_was_made(folder, tmp_path):
    document = document_with(*SOURCES)
    export_labelme(document, tmp_path / "lm", image_root=folder, tolerance=0)
    shapes = json.loads((tmp_path / "lm" / "a.json").read_text())["shapes"]
    assert [s["source"] for s in shapes] == ["ai", "ai", "manual", "manual"]
    target = images_only(document)
    import_labelme(target, tmp_path / "lm", image_root=folder)
    assert kept_fields(target) == [("ai", None), ("ai", 0.875), ("manual", None), ("manual", 0.5)]
    assert [i.mask().sum() for i in target.instances_of(1)] == [
        i.mask().sum() for i in document.instances_of(1)
    ]


def test_labelme_shapes_with_a_score_and_no_source_are_ai_masks_as_x_anylabeling_writes_them(folder):
    def square(x, **extra):
        points = [[x, 2], [x + 8, 2], [x + 8, 10], [x, 10]]
        return {
            "label": "cell",
            "points": points,
            "group_id": None,
            "shape_type": "polygon",
            "flags": {},
            **extra,
        }

    shapes = [
        square(2, score=0.8, difficult=False, attributes={}, kie_linking=[], description=None),
        square(14, score=None, difficult=False, attributes={}, kie_linking=[], description=None),
        square(26),
        square(38, source="ai"),
        square(50, source="elsewhere", score=0.5),
    ]
    data = {"version": "2.4.4", "flags": {}, "shapes": shapes, "imagePath": "a.png", "imageData": None}
    (folder / "a.json").write_text(json.dumps({**data, "imageHeight": H, "imageWidth": W}))
    document = Document()
    import_labelme(document, folder / "a.json", image_root=folder)
    assert [(i.source, i.score) for i in document.instances_of(1)] == [
        ("ai", 0.8),
        ("manual", None),
        ("manual", None),
        ("ai", None),
        ("ai", 0.5),
    ]


# ------------------------------------------------------------------------------------- image status
def test_labelme_round_trip_keeps_the_image_status_also_without_shapes(folder, tmp_path):
    document = document_with((disk(20, 20, 6), "ai", 0.9))
    document.replace_image(ImageRecord(1, "a.png", W, H, ImageStatus.NEEDS_REVIEW))
    document.replace_image(ImageRecord(2, "sub/b.png", W, H, ImageStatus.DONE))  # a true negative
    export_labelme(document, tmp_path / "lm", image_root=folder)
    flags = [json.loads((tmp_path / "lm" / name).read_text())["flags"] for name in ("a.json", "sub/b.json")]
    assert flags == [{"needs_review": True}, {"done": True}]
    target = Document()  # the images are added by the import
    import_labelme(target, tmp_path / "lm", image_root=folder)
    assert [(i.path, i.status) for i in target.images] == [
        ("a.png", ImageStatus.NEEDS_REVIEW),
        ("sub/b.png", ImageStatus.DONE),
    ]
    kept = images_only(document)  # project images: unlabelled ones take the file's status
    kept.replace_image(ImageRecord(1, "a.png", W, H, ImageStatus.SKIPPED))  # a status of its own stays
    import_labelme(kept, tmp_path / "lm", image_root=folder)
    assert [i.status for i in kept.images] == [ImageStatus.SKIPPED, ImageStatus.DONE]


@pytest.mark.parametrize(
    "flags, status",
    [
        ({"done": True, "truncated": True}, ImageStatus.DONE),
        ({"done": True, "skipped": True}, None),
        ({"done": False}, None),
        ({"finished": True}, None),
        ({}, None),
    ],
)
def test_labelme_image_flags_give_a_status_only_when_one_status_is_set(folder, flags, status):
    data = {"version": "5.5.0", "flags": flags, "shapes": [], "imagePath": "a.png", "imageData": None}
    (folder / "a.json").write_text(json.dumps({**data, "imageHeight": H, "imageWidth": W}))
    document = Document()
    import_labelme(document, folder / "a.json", image_root=folder)
    assert document.images[0].status == (status or ImageStatus.UNLABELLED)


def test_labelme_image_flags_that_are_not_an_object_are_refused(folder):
    data = {"version": "5.5.0", "flags": ["done"], "shapes": [], "imagePath": "a.png", "imageData": None}
    (folder / "a.json").write_text(json.dumps({**data, "imageHeight": H, "imageWidth": W}))
    with pytest.raises(FormatError, match=r"a.json: field 'flags' must be an object"):
        import_labelme(Document(), folder / "a.json", image_root=folder)


# --------------------------------------------------------------------------- objects already present
def small_objects(count: int = 24, seed: int = 5) -> list[tuple[np.ndarray, str, float | None]]:
    """Ellipses 8 to 20 pixels across, as AI masks of small objects look, each apart from the others."""
    rng = np.random.default_rng(seed)
    shapes = []
    for n in range(count):
        mask = np.zeros((H, W), np.uint8)
        centre = (6 + 10 * (n % 6), 6 + 12 * (n // 6))
        axes = (int(rng.integers(4, 10)), int(rng.integers(4, 10)))
        cv2.ellipse(mask, centre, axes, float(rng.integers(0, 180)), 0, 360, 1, -1)
        shapes.append((mask.astype(bool), "ai", 0.9))
    return shapes


def test_importing_the_default_coco_export_back_adds_no_second_copies():
    document = document_with(*small_objects())
    data, export = coco_dict(document)  # polygons simplified with the default 1 pixel tolerance
    changed = sum(
        masks.polygons_to_rle(a["segmentation"], H, W)["counts"] != i.rle["counts"]
        for i, a in zip(document.instances_of(1), data["annotations"], strict=True)
        if isinstance(a["segmentation"], list)
    )
    assert export.polygons == len(data["annotations"]) and changed > len(data["annotations"]) // 2
    before = snapshot(document)
    report = import_coco(document, data)
    assert report.instances_added == 0 and report.same_objects == changed
    assert report.duplicates == len(data["annotations"]) - changed
    assert "recognised as objects already present" in report.summary()
    assert snapshot(document)[2] == before[2]


def test_importing_the_default_labelme_export_back_adds_no_second_copies(folder, tmp_path):
    document = document_with(*small_objects(seed=9))
    export_labelme(document, tmp_path / "lm", image_root=folder)
    report = import_labelme(document, tmp_path / "lm", image_root=folder)
    assert report.instances_added == 0 and report.same_objects > 0
    assert report.duplicates + report.same_objects == len(document.instances_of(1))


def test_distinct_overlapping_objects_are_not_taken_for_one():
    near = document_with((disk(20, 20, 8), "ai", 0.9), (disk(44, 24, 6), "ai", 0.9))
    incoming = [
        disk(23, 20, 8),  # 3 pixels beside the first: another object of the same size
        disk(20, 20, 4),  # inside the first, much smaller
        disk(44, 24, 9),  # around the second, larger
    ]
    present = PresentInstances(near)
    assert [present.find(1, 1, masks.encode(mask)) for mask in incoming] == [None, None, None]
    assert present.find(2, 1, near.instances_of(1)[0].rle) is None  # another image
    assert present.find(1, 2, near.instances_of(1)[0].rle) is None  # another category


def test_an_instance_already_present_is_recognised_once():
    document = document_with((disk(20, 20, 8), "ai", 0.9))
    present = PresentInstances(document)
    shifted = masks.encode(np.roll(disk(20, 20, 8), 1, axis=1))
    assert present.find(1, 1, shifted) == "same object"
    assert present.find(1, 1, masks.encode(np.roll(disk(20, 20, 8), -1, axis=1))) is None  # taken
    assert present.find(1, 1, document.instances_of(1)[0].rle) == "identical"


# ------------------------------------------------------------------------------------- category ids
def categories_file(categories: list[tuple[int, str]]) -> dict:
    return {
        "images": [{"id": 0, "file_name": "a.png", "width": W, "height": H}],
        "categories": [{"id": i, "name": name} for i, name in categories],
        "annotations": [
            {"id": n, "image_id": 0, "category_id": i, "segmentation": masks.encode(disk(8 + 14 * n, 20, 5))}
            for n, (i, _) in enumerate(categories)
        ],
    }


def test_category_id_0_gets_another_project_id_and_the_export_writes_0():
    document = Document()
    report = import_coco(document, categories_file([(0, "background"), (1, "cell"), (2, "dog")]))
    assert [(c.id, c.name, c.coco_id) for c in document.categories] == [
        (3, "background", 0),
        (1, "cell", 1),
        (2, "dog", 2),
    ]
    assert report.category_ids_changed == [] and "category ids" not in report.summary()
    data, _ = coco_dict(document)
    assert [c["id"] for c in data["categories"]] == [0, 1, 2]
    assert sorted(a["category_id"] for a in data["annotations"]) == [0, 1, 2]


def test_category_ids_the_project_can_keep_are_kept_without_a_word():
    document = Document()
    report = import_coco(document, categories_file([(5, "cell"), (9, "dog")]))
    assert [c.id for c in document.categories] == [5, 9] and report.category_ids_changed == []
    assert "category ids" not in report.summary()


def test_a_category_found_by_name_under_another_id_takes_the_file_s_id_for_exports():
    document = Document()
    document.add_category(Category(document.allocate_id("category"), "dog"))
    report = import_coco(document, categories_file([(1, "cell"), (2, "dog")]))
    assert [(c.id, c.name, c.coco_id) for c in document.categories] == [(1, "dog", 2), (2, "cell", 1)]
    assert report.category_ids_changed == [] and report.category_ids_moved == [("dog", 1, 2)]
    data, _ = coco_dict(document)
    assert {c["name"]: c["id"] for c in data["categories"]} == {"cell": 1, "dog": 2}
