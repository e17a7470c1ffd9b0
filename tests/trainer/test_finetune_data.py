"""Synthetic SA-1B data, the SA-1B / COCO sources, prompt sampling and the finetuning dataset."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
import torch

from efficientsam_studio.annotations import masks as mask_ops
from efficientsam_studio.annotations.images import load_image
from trainer.finetune import synthetic
from trainer.finetune.datasets import DataConfig, FinetuneDataset, MaskFilter, collate
from trainer.finetune.prompts import (
    PromptConfig,
    center_point,
    error_click,
    error_region_clicks,
    jitter_box,
    mask_to_box,
    sample_prompt,
)
from trainer.finetune.sources import CocoInstances, DatasetError, Sa1bFolder, Sa1bTar
from trainer.finetune.task import open_source


def test_synthetic_masks_are_exact_and_disjoint():
    rng = np.random.default_rng(3)
    for _ in range(5):
        sample = synthetic.generate_image(rng)
        assert sample.image.dtype == np.uint8 and sample.image.ndim == 3
        union = np.zeros(sample.image.shape[:2], dtype=int)
        for mask in sample.masks:
            assert mask.sum() >= synthetic.SyntheticConfig().min_visible_area
            union += mask
        assert union.max() == 1  # visible parts never overlap
        # the drawn colour inside a mask differs from the pixels just outside it
        inside = sample.image[sample.masks[-1]].astype(float).mean(0)
        assert np.isfinite(inside).all()


def test_sa1b_folder_round_trip(tmp_path):
    synthetic.write_sa1b_folder(tmp_path, 3, seed=1)
    document = json.loads((tmp_path / "sa_1.json").read_text())
    assert set(document["image"]) == {"image_id", "width", "height", "file_name"}
    annotation = document["annotations"][0]
    expected = {"id", "segmentation", "bbox", "area", "predicted_iou", "stability_score", "crop_box",
                "point_coords"}  # fmt: skip
    assert set(annotation) == expected
    mask = mask_ops.decode(annotation["segmentation"])
    assert mask.sum() == annotation["area"]
    x, y = annotation["point_coords"][0]
    assert mask[int(y), int(x)]
    source = Sa1bFolder(tmp_path)
    assert len(source) == 3
    record = source.read(0)
    assert record.image.shape[:2] == (document["image"]["height"], document["image"]["width"])
    assert np.array_equal(record.image, load_image(tmp_path / "sa_1.jpg"))


@pytest.mark.parametrize("prefix", ["", "./"])
def test_tar_shard_read_in_place(tmp_path, prefix):
    synthetic.write_sa1b_folder(tmp_path / "folder", 3, seed=2)
    shard = synthetic.write_sa1b_tar(tmp_path / "sa_000000.tar", 3, seed=2, member_prefix=prefix)
    with tarfile.open(shard) as archive:
        assert sorted(archive.getnames())[0].startswith(prefix + "sa_1.")
    from_tar, from_folder = Sa1bTar(shard), Sa1bFolder(tmp_path / "folder")
    assert len(from_tar) == len(from_folder) == 3
    for index in range(3):
        a, b = from_tar.read(index), from_folder.read(index)
        assert np.array_equal(a.image, b.image)
        assert a.annotations == b.annotations
    assert isinstance(open_source(tmp_path / "sa_000000.tar"), Sa1bTar)


def test_coco_source_polygons_rle_and_crowd(tmp_path):
    annotations = synthetic.write_coco(tmp_path / "ann.json", tmp_path / "images", 2, seed=4)
    coco = json.loads(annotations.read_text())
    first = coco["annotations"][0]
    image = coco["images"][0]
    mask = mask_ops.decode(first["segmentation"])
    rings = mask_ops.mask_to_polygons(mask, tolerance=0)
    coco["annotations"].append({**first, "id": 999, "segmentation": [r.flat() for r in rings]})
    coco["annotations"].append({**first, "id": 1000, "iscrowd": 1})
    annotations.write_text(json.dumps(coco))
    source = CocoInstances(annotations, tmp_path / "images")
    record = source.read(0)
    ids = [a["id"] for a in record.annotations]
    assert 999 in ids and 1000 not in ids
    from trainer.finetune.sources import decode_segmentation

    polygon = decode_segmentation(record.annotations[-1]["segmentation"], image["height"], image["width"])
    assert (polygon == mask).mean() > 0.99
    with pytest.raises(DatasetError, match="--images"):
        CocoInstances(annotations, tmp_path / "elsewhere")


def test_missing_data_errors_name_the_path(tmp_path):
    with pytest.raises(DatasetError, match="no image"):
        Sa1bFolder(tmp_path)
    with pytest.raises(DatasetError, match="no such"):
        open_source(tmp_path / "absent")
    with pytest.raises(DatasetError, match="--images"):
        open_source(tmp_path / "x.json")


def test_box_and_center_prompts():
    mask = np.zeros((40, 50), dtype=bool)
    mask[10:21, 5:36] = True
    assert mask_to_box(mask).tolist() == [5, 10, 35, 20]
    assert center_point(mask).tolist() == [20, 15]
    rng = np.random.default_rng(0)
    boxes = np.stack([jitter_box(mask_to_box(mask), rng, 50, 40, 0.1, 2.0) for _ in range(200)])
    assert np.abs(boxes - mask_to_box(mask)).max() <= 2.0 + 1e-6
    assert boxes[:, 0].std() > 0.3  # jittered
    assert (boxes[:, [0, 2]] >= 0).all() and (boxes[:, [0, 2]] <= 49).all()


def test_point_prompts_inside_and_outside():
    mask = np.zeros((64, 64), dtype=bool)
    mask[20:40, 20:40] = True
    config = PromptConfig(box_probability=0.0, min_points=3, max_points=3, negative_probability=0.5)
    rng = np.random.default_rng(1)
    seen_negative = False
    for _ in range(50):
        prompt = sample_prompt(mask, rng, config)
        assert len(prompt.labels) == 3 and prompt.labels[0] == 1
        for (x, y), label in zip(prompt.coords.astype(int), prompt.labels, strict=True):
            assert mask[y, x] == bool(label)
            seen_negative |= label == 0
    assert seen_negative
    boxes = sum(sample_prompt(mask, rng, PromptConfig(box_probability=0.5)).is_box for _ in range(200))
    assert 60 < boxes < 140


def test_error_clicks_label_missed_and_extra_pixels():
    target = np.zeros((32, 32), dtype=bool)
    target[8:24, 8:24] = True
    missed = target.copy()
    missed[8:24, 8:16] = False  # left half missed
    point, label = error_click(missed, target, mode="center")
    assert label == 1 and target[int(point[1]), int(point[0])] and not missed[int(point[1]), int(point[0])]
    extra = target.copy()
    extra[0:8, :] = True
    _, label = error_click(extra, target, np.random.default_rng(0), mode="random")
    assert label == 0
    assert error_click(target, target, mode="center") is None
    coords, labels = error_region_clicks(
        torch.from_numpy(np.stack([missed, extra, target])), torch.from_numpy(np.stack([target] * 3))
    )
    assert labels.tolist() == [1, 0, -1]
    x, y = coords[0].long().tolist()
    assert target[y, x] and not missed[y, x]
    assert coords[2].tolist() == [-1.0, -1.0]


def test_dataset_items_filter_and_determinism(tmp_path):
    synthetic.write_sa1b_folder(tmp_path, 4, seed=5)
    config = DataConfig(max_masks=3, prompts=PromptConfig(box_probability=1.0, box_jitter=0.0))
    dataset = FinetuneDataset(Sa1bFolder(tmp_path), config, seed=0)
    item = dataset[0]
    assert item["image"].shape == (3, 1024, 1024)
    assert item["masks"].shape == (3, 256, 256) and item["points"].shape == (3, 2, 2)
    first = int(item["valid"].sum())
    assert first >= 1
    # box prompts in input space enclose their 256 x 256 target (4 input pixels per target pixel)
    for k in range(first):
        rows, cols = torch.nonzero(item["masks"][k], as_tuple=True)
        (x0, y0), (x1, y1) = item["points"][k].tolist()
        assert x0 <= cols.min() * 4 + 4 and x1 >= cols.max() * 4 - 4
        assert y0 <= rows.min() * 4 + 4 and y1 >= rows.max() * 4 - 4
        assert item["labels"][k].tolist() == [2, 3]
    again = dataset[0]
    assert torch.equal(again["points"], item["points"]) and torch.equal(again["masks"], item["masks"])
    dataset.set_epoch(1)
    assert not torch.equal(dataset[0]["points"], item["points"]) or first == 1
    strict = FinetuneDataset(Sa1bFolder(tmp_path), DataConfig(max_masks=3, filter=MaskFilter(min_area=1e9)))
    with pytest.raises(DatasetError, match="4 have no valid annotation that passes the mask filter"):
        strict[0]
    batch = collate([dataset[0], dataset[1]])
    assert batch["valid"].shape[1] == max(int(dataset[i]["valid"].sum()) for i in range(2))


def test_each_unreadable_image_counts_once_an_epoch(tmp_path):
    synthetic.write_sa1b_folder(tmp_path, 6, seed=6)
    for index in (1, 2, 3):
        (tmp_path / f"sa_{index}.jpg").write_bytes(b"not a jpeg")
    dataset = FinetuneDataset(Sa1bFolder(tmp_path), DataConfig(max_masks=2))
    with pytest.warns(UserWarning, match="unreadable"):
        counts = [int(dataset[i]["corrupt_images"]) for i in range(len(dataset))]
    assert sum(counts) == 3


def test_unreadable_image_is_replaced_counted_and_reported_once(tmp_path):
    synthetic.write_sa1b_folder(tmp_path, 2, seed=6)
    (tmp_path / "sa_1.jpg").write_bytes(b"not a jpeg")
    dataset = FinetuneDataset(Sa1bFolder(tmp_path), DataConfig(max_masks=2))
    with pytest.warns(UserWarning, match="unreadable") as caught:
        item = dataset[0]
        again = dataset[0]
    assert len([w for w in caught if "unreadable" in str(w.message)]) == 1
    # the next readable image stands in: the step is not an empty one
    assert item["corrupt_images"].item() == 1 and item["valid"].any()
    assert torch.equal(item["image"], dataset[1]["image"]) and torch.equal(again["masks"], item["masks"])
    assert dataset[1]["corrupt_images"].item() == 0
    (tmp_path / "sa_2.json").write_text("{}")  # no annotation list: this pair cannot be used either
    with pytest.warns(UserWarning), pytest.raises(DatasetError, match="none of the 2 training images"):
        FinetuneDataset(Sa1bFolder(tmp_path), DataConfig(max_masks=2))[0]


BAD_SEGMENTATIONS = {
    "odd polygon": ([[10.0, 20.0, 30.0]], "even number"),
    "NaN polygon": ([[float("nan"), 1.0, 5.0, 5.0, 10.0, 1.0]], "finite"),
    "text in polygon": ([[1, 2, "3", 4, 5, 6]], "not a list of numbers"),
    "short RLE": ({"size": [96, 128], "counts": [100, 50]}, "cover 150 pixels"),
    "garbage RLE": ({"size": [96, 128], "counts": "!!!!garbage"}, "not an RLE digit"),
    "RLE of another size": ({"size": [10, 10], "counts": [100]}, "size"),
    "string": ("abc", "not a COCO RLE"),
}


@pytest.mark.parametrize("name", BAD_SEGMENTATIONS)
def test_annotation_problem_names_what_is_wrong_without_decoding(name):
    from trainer.finetune.sources import annotation_problem

    segmentation, expected = BAD_SEGMENTATIONS[name]
    problem = annotation_problem({"id": 1, "segmentation": segmentation, "area": 10}, 96, 128)
    assert problem is not None and expected in problem
    square = [[10.0, 10.0, 40.0, 10.0, 40.0, 40.0, 10.0, 40.0]]
    assert annotation_problem({"segmentation": square, "area": 900}, 96, 128) is None
    rle = mask_ops.encode(np.ones((96, 128), bool))
    assert annotation_problem({"segmentation": rle}, 96, 128) is None
    assert "no 'segmentation'" in annotation_problem({"id": 2}, 96, 128)
    assert "area" in annotation_problem({"segmentation": square, "area": "big"}, 96, 128)


def _coco_with(tmp_path, extra_annotations):
    annotations = synthetic.write_coco(tmp_path / "ann.json", tmp_path / "images", 2, seed=4)
    coco = json.loads(annotations.read_text())
    first = coco["annotations"][0]
    for number, segmentation in enumerate(extra_annotations):
        coco["annotations"].append({**first, "id": 900 + number, "segmentation": segmentation})
    annotations.write_text(json.dumps(coco))
    return annotations, coco


def test_coco_invalid_annotations_are_skipped_and_reported_when_indexed(tmp_path):
    bad = [segmentation for segmentation, _ in BAD_SEGMENTATIONS.values()]
    annotations, coco = _coco_with(tmp_path, bad)
    with pytest.warns(UserWarning) as caught:
        source = CocoInstances(annotations, tmp_path / "images")
    messages = [str(w.message) for w in caught if w.category is UserWarning]
    for number in range(len(bad)):
        assert any(f"ann.json: annotation {900 + number}:" in m and m.endswith("skipped") for m in messages)
    assert len(source.invalid) == len(bad)
    kept = [a["id"] for image_id in source.annotations for a in source.annotations[image_id]]
    assert sorted(kept) == sorted(a["id"] for a in coco["annotations"] if a["id"] < 900)
    # every remaining annotation decodes; the dataset trains on the first image without an error
    dataset = FinetuneDataset(source, DataConfig(max_masks=64))
    assert dataset[0]["valid"].any() and dataset[0]["invalid_annotations"].item() == 0


def test_coco_without_a_valid_annotation_is_a_clear_error(tmp_path):
    annotations, coco = _coco_with(tmp_path, [])
    for annotation in coco["annotations"]:
        annotation["segmentation"] = [[10.0, 20.0, 30.0]]
    annotations.write_text(json.dumps(coco))
    with pytest.warns(UserWarning), pytest.raises(DatasetError, match="none of its .* annotations is valid"):
        CocoInstances(annotations, tmp_path / "images")


def test_sa1b_invalid_annotations_are_skipped_when_sampled(tmp_path):
    synthetic.write_sa1b_folder(tmp_path, 2, seed=7)
    path = tmp_path / "sa_1.json"
    document = json.loads(path.read_text())
    good = len(document["annotations"])
    first = document["annotations"][0]
    document["annotations"] += [
        {**first, "id": 900, "segmentation": {**first["segmentation"], "counts": "!!!!garbage"}},
        {**first, "id": 901, "segmentation": {"size": first["segmentation"]["size"], "counts": [100, 50]}},
    ]
    path.write_text(json.dumps(document))
    dataset = FinetuneDataset(Sa1bFolder(tmp_path), DataConfig(max_masks=good + 2))
    with pytest.warns(UserWarning) as caught:
        item = dataset[0]
    messages = sorted(str(w.message) for w in caught if w.category is UserWarning)
    assert len(messages) == 2 and all(m.startswith(f"{path}: annotation 90") for m in messages)
    assert item["invalid_annotations"].item() == 2 and int(item["valid"].sum()) == good
    # each is reported once; an image whose annotations are all invalid is replaced by the next one
    document["annotations"] = document["annotations"][-2:]
    path.write_text(json.dumps(document))
    item = dataset[0]
    assert item["valid"].any() and item["invalid_annotations"].item() == 2
    assert torch.equal(item["image"], dataset[1]["image"])


def test_annotations_without_area_get_it_from_their_segmentation(tmp_path):
    annotations = synthetic.write_coco(tmp_path / "ann.json", tmp_path / "images", 2, seed=4)
    coco = json.loads(annotations.read_text())
    with_area = FinetuneDataset(CocoInstances(annotations, tmp_path / "images"), DataConfig(max_masks=64))
    for annotation in coco["annotations"]:
        del annotation["area"]
    annotations.write_text(json.dumps(coco))
    without = FinetuneDataset(CocoInstances(annotations, tmp_path / "images"), DataConfig(max_masks=64))
    for index in range(2):
        assert without[index]["valid"].any()
        assert torch.equal(without[index]["masks"], with_area[index]["masks"])


def test_data_where_no_mask_passes_the_filter_stops_before_training_with_one_line(tmp_path, capsys):
    from efficientsam_studio.cli.main import main

    synthetic.write_sa1b_folder(tmp_path / "shapes", 2, seed=3)
    args = ["train", "--preset", "tiny", "--data", str(tmp_path / "shapes"), "--out", str(tmp_path / "run"),
            "--no-progress", "--min-stability", "1"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "none of the 2 training images can be used: 0 cannot be read and 2 have no valid annotation" in err
    assert "stability score at least 1 (--min-stability)" in err and err.count("\n") == 1
    assert not (tmp_path / "run" / "efficientsam.pt").exists()
    assert not (tmp_path / "run" / "log.jsonl").exists() or not (tmp_path / "run" / "log.jsonl").read_text()


def test_an_image_without_usable_masks_is_replaced_by_the_next(tmp_path):
    synthetic.write_sa1b_folder(tmp_path, 2, seed=7)
    path = tmp_path / "sa_1.json"
    document = json.loads(path.read_text())
    for annotation in document["annotations"]:
        annotation["area"] = 10**9  # over 90 % of the image: filtered out
    path.write_text(json.dumps(document))
    dataset = FinetuneDataset(Sa1bFolder(tmp_path), DataConfig(max_masks=2))
    item = dataset[0]
    assert item["valid"].any() and torch.equal(item["image"], dataset[1]["image"])


def test_problems_count_once_at_their_own_index(tmp_path):
    from trainer.data import AugmentedImages, CropConfig

    synthetic.write_sa1b_folder(tmp_path / "shapes", 4, seed=6)
    (tmp_path / "shapes" / "sa_2.jpg").write_bytes(b"not a jpeg")
    path = tmp_path / "shapes" / "sa_3.json"
    document = json.loads(path.read_text())
    first = document["annotations"][0]
    document["annotations"].append(
        {**first, "id": 900, "segmentation": {**first["segmentation"], "counts": "!!"}}
    )
    path.write_text(json.dumps(document))
    dataset = FinetuneDataset(Sa1bFolder(tmp_path / "shapes"), DataConfig(max_masks=64))
    with pytest.warns(UserWarning):
        items = [dataset[i] for i in range(len(dataset))]
    # sa_2's item falls through to sa_3, whose invalid annotation is still counted once (at sa_3)
    assert sum(int(item["invalid_annotations"]) for item in items) == 1
    assert sum(int(item["corrupt_images"]) for item in items) == 1
    # SAMI: two unreadable files side by side count two, not three
    images = sorted((tmp_path / "shapes").glob("sa_*.jpg"))
    images[2].write_bytes(b"not a jpeg")  # sa_2 and sa_3 now
    sami = AugmentedImages(images, CropConfig(size=32))
    with pytest.warns(UserWarning, match="unreadable"):
        assert sum(sami[i]["corrupt_images"] for i in range(len(sami))) == 2


def test_coco_annotations_of_unknown_images_are_reported(tmp_path):
    annotations, coco = _coco_with(tmp_path, [])
    coco["annotations"].append({**coco["annotations"][0], "id": 950, "image_id": 12345})
    annotations.write_text(json.dumps(coco))
    with pytest.warns(UserWarning, match="annotation 950: its image_id 12345 is not among the file's images"):
        source = CocoInstances(annotations, tmp_path / "images")
    assert len(source.invalid) == 1


def test_missing_areas_are_computed_once_when_indexed_and_segmentations_checked_once(tmp_path, monkeypatch):
    from trainer.finetune import datasets
    from trainer.finetune.sources import segmentation_area

    annotations = synthetic.write_coco(tmp_path / "ann.json", tmp_path / "images", 2, seed=4)
    coco = json.loads(annotations.read_text())
    for annotation in coco["annotations"]:
        del annotation["area"]
    annotations.write_text(json.dumps(coco))
    source = CocoInstances(annotations, tmp_path / "images")
    sizes = {image["id"]: (image["height"], image["width"]) for image in coco["images"]}
    for image_id, indexed in source.annotations.items():
        assert indexed and all(
            a["area"] == segmentation_area(a["segmentation"], *sizes[image_id]) for a in indexed
        )
    checks = []
    real_problem = datasets.segmentation_problem
    monkeypatch.setattr(datasets, "segmentation_problem", lambda *a: checks.append(a) or real_problem(*a))
    monkeypatch.setattr(datasets, "segmentation_area", lambda *a: pytest.fail("area computed per item"))
    dataset = FinetuneDataset(source, DataConfig(max_masks=64))
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        assert all(dataset[index]["valid"].any() for index in range(2))
    monkeypatch.undo()
    # SA-1B files are read per item: an annotation without area has its segmentation checked once there
    synthetic.write_sa1b_folder(tmp_path / "shapes", 1, seed=4)
    (json_path,) = (tmp_path / "shapes").glob("*.json")
    document = json.loads(json_path.read_text())
    for annotation in document["annotations"]:
        del annotation["area"]
    json_path.write_text(json.dumps(document))
    checks.clear()
    monkeypatch.setattr(datasets, "segmentation_problem", lambda *a: checks.append(a) or real_problem(*a))
    item = FinetuneDataset(Sa1bFolder(tmp_path / "shapes"), DataConfig(max_masks=64))[0]
    assert int(item["valid"].sum()) == len(document["annotations"]) == len(checks)
