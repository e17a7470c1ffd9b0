"""Opening reads every mask of a project in one pass (rle_batch.read_counts): same checks, same
messages and the same area / bbox as the one-mask path (masks.check_rle, pycocotools)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from efficientsam_studio.annotations import masks, rle_batch, schema
from efficientsam_studio.annotations.document import Category, Document, ImageRecord, Instance

H, W = 24, 32


def random_masks(seed: int, count: int) -> list[np.ndarray]:
    rng = np.random.RandomState(seed)
    out = []
    for n in range(count):
        height, width = rng.randint(1, 50), rng.randint(1, 50)
        mask = np.zeros((height, width), bool)
        if n % 3 == 0:
            mask = rng.rand(height, width) > rng.rand()
        elif n % 3 == 1:
            y, x = rng.randint(height), rng.randint(width)
            mask[y : y + rng.randint(1, height + 1), x : x + rng.randint(1, width + 1)] = True
        else:
            mask.flat[rng.randint(mask.size)] = True
        out.append(mask)
    return out


def test_area_and_bbox_equal_pycocotools_on_random_masks():
    rles = [masks.encode(m) for m in random_masks(0, 600)]
    batch = rle_batch.read_counts(
        [r["counts"] for r in rles], [r["size"][0] for r in rles], [r["size"][1] for r in rles]
    )
    for n, rle in enumerate(rles):
        if masks.area(rle) == 0:  # an empty mask is left to the one-mask path (EmptyMaskError)
            assert not batch.read[n]
            continue
        assert batch.read[n]
        assert batch.area[n] == masks.area(rle)
        assert batch.bbox[n].tolist() == masks.bbox(rle)


def test_a_mask_with_a_foreground_run_of_zero_is_left_to_pycocotools():
    counts = masks.to_compressed({"size": [H, W], "counts": [3, 0, 5, 4, H * W - 12]})["counts"]
    assert not rle_batch.read_counts([counts], [H], [W]).read[0]


def project(rles: list[dict]) -> dict:
    document = Document()
    image = ImageRecord(1, "a.png", W, H)
    instances = [Instance.from_rle(n + 1, 1, 1, rle) for n, rle in enumerate(rles)]
    document.load_records([image], [Category(1, "thing")], instances, {})
    return schema.document_to_dict(document)


def good_rles(count: int) -> list[dict]:
    rng = np.random.RandomState(1)
    out = []
    while len(out) < count:
        mask = rng.rand(H, W) > rng.rand()
        if mask.any():
            out.append(masks.encode(mask))
    return out


def test_opened_instances_have_the_bbox_and_area_of_pycocotools():
    rles = good_rles(40)
    document, _ = schema.document_from_dict(project(rles))
    for instance, rle in zip(document.iter_instances(), rles, strict=True):
        assert instance.area == masks.area(rle)
        assert list(instance.bbox) == masks.bbox(rle)
        assert instance.rle == rle


DAMAGED = {
    "truncated": lambda counts: counts[:-1] + "P",  # the last run never ends
    "cut short": lambda counts: counts[: len(counts) // 2],
    "invalid character": lambda counts: counts[:3] + "!" + counts[4:],
    "beyond 'o'": lambda counts: counts[:2] + "z" + counts[3:],
    "not ascii": lambda counts: counts[:2] + "é" + counts[3:],
    "too many pixels": lambda counts: counts + "3",
    "too few pixels": lambda counts: "0" + "3",
    "overflow": lambda counts: "0" + "o" * 9 + "0",  # a run of 50 bits
    "negative run": lambda counts: "0@",  # "@" is 16 - 32: the second run is -16
    "empty": lambda counts: "",
}


@pytest.mark.parametrize("damage", sorted(DAMAGED))
@pytest.mark.parametrize("position", [0, 7, 19])
def test_a_damaged_counts_string_is_reported_as_on_the_one_mask_path(damage, position):
    rles = good_rles(20)
    counts = DAMAGED[damage](rles[position]["counts"])
    with pytest.raises(ValueError) as expected:
        masks.check_rle({"size": [H, W], "counts": counts}, H, W)
    data = project(rles)
    data["instances"][position]["segmentation"]["counts"] = counts
    raws = data["instances"]
    images = {1: ImageRecord(1, "a.png", W, H)}
    read = schema._read_masks(raws, images).read
    assert not read[position] and read.sum() == len(raws) - 1
    message = (
        rf"field instances\[{position}\] \(instance id {position + 1}\)\.segmentation\.counts: "
        rf"is not a valid COCO RLE: {re.escape(str(expected.value))}$"
    )
    with pytest.raises(schema.SchemaFieldError, match=message):
        schema.document_from_dict(data)


def test_the_first_damaged_instance_is_the_one_named():
    rles = good_rles(10)
    data = project(rles)
    data["instances"][6]["segmentation"]["counts"] = "!!"
    data["instances"][3]["segmentation"]["counts"] = rles[3]["counts"] + "1"
    with pytest.raises(schema.SchemaFieldError, match=r"instances\[3\] .*runs cover"):
        schema.document_from_dict(data)


def test_an_empty_mask_is_still_refused_as_empty():
    data = project(good_rles(3))
    data["instances"][1]["segmentation"]["counts"] = masks.encode(np.zeros((H, W), bool))["counts"]
    with pytest.raises(schema.SchemaFieldError, match=r"instances\[1\] .*segmentation: is an empty mask"):
        schema.document_from_dict(data)


def test_random_strings_read_in_one_pass_are_valid_and_measured_as_pycocotools():
    rng = np.random.RandomState(2)
    digits = [chr(c) for c in range(44, 116)]
    strings = ["".join(rng.choice(digits, rng.randint(0, 10))) for _ in range(20000)]
    sizes = rng.randint(1, 5, (len(strings), 2))
    batch = rle_batch.read_counts(strings, sizes[:, 0], sizes[:, 1])
    for n, counts in enumerate(strings):
        height, width = (int(v) for v in sizes[n])
        rle = {"size": [height, width], "counts": counts}
        try:
            masks.check_rle(rle, height, width)
        except ValueError:
            assert not batch.read[n], counts
            continue
        if batch.read[n]:
            assert batch.area[n] == masks.area(rle)
            assert batch.bbox[n].tolist() == masks.bbox(rle)
        else:  # left to the one-mask path: empty, or a foreground run of length zero
            runs = masks.run_lengths(rle)
            assert masks.area(rle) == 0 or 0 in runs[1::2]


def test_an_image_id_of_the_wrong_type_is_reported_as_before():
    data = project(good_rles(2))
    data["instances"][1]["image_id"] = [1]
    with pytest.raises(schema.SchemaFieldError, match=r"instances\[1\] .*image_id: must be int; found list"):
        schema.document_from_dict(data)
