"""Loading hand-edited or damaged project files: every record is checked, nothing is trusted blindly."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from efficientsam_studio.annotations import masks, storage
from efficientsam_studio.annotations.document import Category, Document, ImageRecord
from efficientsam_studio.annotations.errors import CorruptProjectError, DocumentError
from efficientsam_studio.annotations.project import Project, load_document, recover_from_backup

from .conftest import snapshot
from .test_project import label_something, make_folder


def make_labelled(tmp_path):
    """A closed project with a category and two instances on image 1; its .bak holds the same."""
    with Project.create(make_folder(tmp_path), "labels") as project:
        label_something(project)
        project.save()
        project.save()
    return project.path


@pytest.fixture
def labelled(tmp_path):
    return make_labelled(tmp_path)


def edit(path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def refused(path, message):
    with pytest.raises(CorruptProjectError, match=message) as caught:
        Project.open(path)
    assert caught.value.backup_path == storage.backup_path(path)
    assert not storage.lock_path(path).exists()
    return caught.value


def first_instance(key, value):
    return lambda data: data["instances"][0].__setitem__(key, value)


@pytest.mark.parametrize("counts", ["zz", "01", "0", "", "a1o0", "5"])
def test_damaged_rle_counts_are_refused_and_the_backup_recovers(labelled, counts):
    good = snapshot(load_document(labelled))
    edit(labelled, lambda data: data["instances"][0]["segmentation"].__setitem__("counts", counts))
    refused(labelled, r"instances\[0\] \(instance id 1\)\.segmentation\.counts: is not a valid COCO RLE")
    with recover_from_backup(labelled) as recovered:
        assert snapshot(recovered.document) == good


def test_rle_of_the_wrong_length_is_refused_even_if_its_size_matches(labelled):
    other = masks.encode(np.ones((48, 63), bool))["counts"]
    edit(labelled, lambda data: data["instances"][1]["segmentation"].__setitem__("counts", other))
    refused(labelled, r"instances\[1\] \(instance id 2\)\.segmentation\.counts: .*not height x width = 3072")


def test_empty_mask_is_refused(labelled):
    empty = masks.encode(np.zeros((48, 64), bool))["counts"]
    edit(labelled, lambda data: data["instances"][0]["segmentation"].__setitem__("counts", empty))
    refused(labelled, r"instance id 1\)\.segmentation: is an empty mask")


@pytest.mark.parametrize(
    "next_ids, message",
    [
        ({"foo": 5, "image": 4, "category": 2, "instance": 3}, r"next_ids\.foo: is not a kind of id"),
        ({"instance": "7"}, r"next_ids\.instance: must be a positive integer; found '7'"),
        ({"instance": -3}, r"next_ids\.instance: must be a positive integer; found -3"),
        ({"instance": True}, r"next_ids\.instance: must be a positive integer; found True"),
        ([1, 2, 3], r"next_ids: must be a JSON object"),
    ],
)
def test_bad_next_ids_are_refused(labelled, next_ids, message):
    edit(labelled, lambda data: data.__setitem__("next_ids", next_ids))
    refused(labelled, message)


def test_partial_next_ids_still_never_reuse_an_id(labelled):
    edit(labelled, lambda data: data.__setitem__("next_ids", {"instance": 9}))
    document = load_document(labelled)
    assert document.next_ids == {"image": 4, "category": 2, "instance": 9}


def test_restore_next_ids_refuses_unknown_kinds_and_bad_values():
    document = Document()
    for bad in ({"foo": 5}, {"image": "3"}, {"image": 0}, {"image": 2.0}):
        with pytest.raises(DocumentError, match="next_ids"):
            document.restore_next_ids(bad)
    assert document.next_ids == {"image": 1, "category": 1, "instance": 1}


@pytest.mark.parametrize("iscrowd", ["false", "true", 0, 1, None, [True]])
def test_iscrowd_must_be_a_json_boolean(labelled, iscrowd):
    edit(labelled, first_instance("iscrowd", iscrowd))
    refused(labelled, r"instance id 1\)\.iscrowd: must be true or false")


def test_iscrowd_true_and_a_missing_flag_load(labelled):
    edit(labelled, first_instance("iscrowd", True))
    edit(labelled, lambda data: data["instances"][1].pop("iscrowd"))
    first, second = load_document(labelled).instances_of(1)
    assert first.iscrowd is True and second.iscrowd is False


def test_stored_area_and_bbox_are_recomputed_from_the_mask(labelled):
    good = snapshot(load_document(labelled))
    edit(labelled, first_instance("area", 0))
    edit(labelled, first_instance("bbox", [0, 0, 1, 1]))
    document = load_document(labelled)
    assert snapshot(document) == good
    instance = document.instance(1)
    assert instance.area == masks.area(instance.rle) > 0
    assert list(instance.bbox) == masks.bbox(instance.rle)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda data: data["categories"].append(dict(data["categories"][0], id=7)),
            r"categories\[1\]\.name: category 7 is named 'cell' like category 1",
        ),
        (
            lambda data: data["categories"][0].__setitem__("name", ""),
            r"categories\[0\]\.name: category 1 needs a non-empty name",
        ),
        (
            lambda data: data["categories"][0].__setitem__("name", "  "),
            r"categories\[0\]\.name: category 1 needs a non-empty name",
        ),
        (
            lambda data: data["categories"].append(dict(data["categories"][0], name="dog")),
            r"categories\[1\]\.id: category id 1 appears twice",
        ),
    ],
)
def test_bad_categories_are_refused(labelled, change, message):
    edit(labelled, change)
    refused(labelled, message)


def test_load_records_checks_categories_as_adding_them_does():
    image = ImageRecord(1, "a.png", 4, 4)
    for categories, message in (
        ([Category(1, "cell"), Category(2, "cell")], "categories 1 and 2 have the same name 'cell'"),
        ([Category(1, " ")], "category id 1: a category needs a non-empty name"),
        ([Category(1, "cell", "red")], "category id 1: .*colour must look like"),
    ):
        with pytest.raises(DocumentError, match=message):
            Document().load_records([image], categories, [])


@pytest.mark.parametrize(
    "change, message",
    [
        (first_instance("image_id", 99), r"instance id 1\)\.image_id: refers to image 99, which is not in"),
        (
            first_instance("category_id", 42),
            r"instance id 1\)\.category_id: refers to category 42, which is not in",
        ),
        (
            lambda data: data["instances"][0]["segmentation"].__setitem__("size", [64, 48]),
            r"instance id 1\)\.segmentation\.size: \[64, 48\] differs from the image's",
        ),
        (
            lambda data: data["images"][0].update(width=32),
            r"instance id 1\)\.segmentation\.size: \[48, 64\] differs from the image's .* \[48, 32\]",
        ),
        (
            lambda data: data["instances"][1].__setitem__("id", 1),
            r"instances\[1\] \(instance id 1\)\.id: instance id 1 is also used by instances\[0\]",
        ),
        (first_instance("id", 0), r"instances\[0\]\.id: must be a positive integer; found 0"),
        (lambda data: data["images"][1].__setitem__("height", 0), r"images\[1\]\.height: must be a positive"),
        (first_instance("score", True), r"instance id 1\)\.score: must be a number or null"),
    ],
)
def test_bad_references_sizes_and_ids_are_refused(labelled, change, message):
    edit(labelled, change)
    refused(labelled, message)


def test_run_lengths_reads_strings_as_the_character_by_character_reader_does():
    rng = np.random.RandomState(0)
    digits = [chr(c) for c in range(40, 120)] + ["ü"]
    for _ in range(20000):
        counts = "".join(rng.choice(digits, rng.randint(0, 14)))
        try:
            expected = masks._run_lengths_slow(counts)
        except ValueError as exc:
            with pytest.raises(ValueError, match=re.escape(str(exc))):
                masks.run_lengths({"counts": counts})
        else:
            assert masks.run_lengths({"counts": counts}) == expected
    long_run = "0" + "o" * 9 + "0"  # a run of 50 bits
    assert masks.run_lengths({"counts": long_run}) == masks._run_lengths_slow(long_run) == [0, 2**45 - 1]
    mask = rng.rand(30, 40) > 0.5
    assert sum(masks.run_lengths(masks.encode(mask))) == mask.size
