"""Importers report ``progress(done, total)`` as they go, and an exception raised from it stops them."""

from __future__ import annotations

import json

import pytest

from efficientsam_studio.annotations.document import Document
from efficientsam_studio.annotations.formats.coco_import import import_coco
from efficientsam_studio.annotations.formats.labelme import import_labelme

SQUARE = [2, 2, 12, 2, 12, 12, 2, 12]


class Stop(Exception):
    pass


def coco(count: int) -> dict:
    return {
        "images": [{"id": 1, "file_name": "a.png", "width": 32, "height": 24}],
        "categories": [{"id": 1, "name": "box"}],
        "annotations": [
            {"id": n + 1, "image_id": 1, "category_id": 1, "segmentation": [[v + n % 7 for v in SQUARE]]}
            for n in range(count)
        ]
        + [{"id": count + 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}],  # no mask
    }


def test_coco_progress_counts_checking_then_adding_and_ends_at_the_total():
    calls = []
    report = import_coco(Document(), coco(150), progress=lambda done, total: calls.append((done, total)))
    assert report.instances_added == 7  # seven distinct squares, the rest identical copies
    assert calls == [(64, 302), (128, 302), (192, 302), (256, 302), (302, 302)]


def test_coco_import_stopped_while_checking_adds_nothing():
    document = Document()

    def stop(done, total):
        raise Stop

    with pytest.raises(Stop):
        import_coco(document, coco(100), progress=stop)
    assert document.images == [] and document.categories == [] and document.instance_count == 0


def labelme_file(folder, name: str) -> None:
    shapes = [{"label": "box", "points": [[2, 2], [12, 2], [12, 12]], "shape_type": "polygon"}]
    data = {"shapes": shapes, "imagePath": f"{name}.png", "imageHeight": 24, "imageWidth": 32}
    (folder / f"{name}.json").write_text(json.dumps(data), encoding="utf-8")


def test_labelme_progress_counts_reading_then_adding(tmp_path):
    for n in range(40):
        labelme_file(tmp_path, f"img{n:02d}")
    (tmp_path / "notes.json").write_text("{}", encoding="utf-8")  # not a labelme file: counted, skipped
    calls = []
    report = import_labelme(
        Document(), tmp_path, image_root=tmp_path, progress=lambda done, total: calls.append((done, total))
    )
    assert report.instances_added == 40
    assert calls == [(64, 82), (82, 82)]
