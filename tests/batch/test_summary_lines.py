"""The summary says why images were skipped (grouped by reason, with a limit), and malformed point
entries are errors that name the entry, not silently dropped."""

from __future__ import annotations

import json

import pytest

from efficientsam_studio.batch import BatchSummary, PromptFileError, read_point_prompts, run_batch
from tests.batch.fake_predictor import ShapesPredictor


@pytest.mark.parametrize(
    ("content", "entry"),
    [
        ({"img1.png": [[30, 30, 1]], "img2.png": [{"x": 50, "y": 80, "label": 1}]}, "{path} 'img1.png'[0]"),
        ([{"image": "img2.png", "x": 50, "y": 80, "label": 1}, "img1.png 30 30"], "{path}[1]"),
    ],
)
def test_a_point_entry_that_is_not_an_object_names_the_entry(tmp_path, content, entry):
    path = tmp_path / "points.json"
    path.write_text(json.dumps(content))
    with pytest.raises(PromptFileError, match="a point must be an object") as caught:
        read_point_prompts(path)
    assert entry.format(path=path) in str(caught.value)


def test_skipped_images_are_listed_by_reason_with_a_limit():
    summary = BatchSummary("boxes", images=15)
    summary.skipped = [(f"a{i}.png", "already labelled (status done)") for i in range(12)]
    summary.skipped += [("b.png", "no boxes in boxes.csv"), ("c.png", "no boxes in boxes.csv")]
    summary.skipped.append(("d.png", "all boxes in boxes.csv score below the minimum score"))
    lines = summary.lines(max_listed=2)
    assert (
        "skipped 12: a0.png, a1.png, a2.png, a3.png, a4.png and 7 more: already labelled (status done)"
        in lines
    )
    assert "skipped 2: b.png, c.png: no boxes in boxes.csv" in lines
    assert "skipped: ... and 1 more images for 1 other reasons" in lines
    assert not any("d.png" in line for line in lines)


def test_a_run_prints_why_it_skipped_images(project, tmp_path):
    path = tmp_path / "points.json"
    path.write_text(json.dumps({"img2.png": [{"x": 50, "y": 80, "label": 1}]}))
    summary = run_batch(project, mode="points", predictor=ShapesPredictor(), prompts=read_point_prompts(path))
    assert summary.labelled == 1
    assert f"skipped 2: img1.png, img3.png: no points in {path}" in summary.lines()
    again = run_batch(project, mode="points", predictor=ShapesPredictor(), prompts=read_point_prompts(path))
    assert any(
        line.startswith("skipped 1: img2.png: already labelled (status needs_review)")
        for line in again.lines()
    )
