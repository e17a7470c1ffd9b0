"""``efsam-studio label``: options that belong to another mode, messages that name the option, the progress
bar on a terminal and in a log, and the summary's lists of failed and unmatched images."""

from __future__ import annotations

import io
import json

import pytest

from efficientsam_studio.annotations.project import Project
from efficientsam_studio.annotations.records import DEFAULT_COLOURS
from efficientsam_studio.cli import label as label_cli
from efficientsam_studio.cli.main import main
from tests.batch.fake_predictor import ShapesPredictor

EVERYTHING = ["--everything", "--points-per-side", "8", "--points-per-batch", "4", "--min-area", "0"]


@pytest.fixture
def points_csv(tmp_path):
    path = tmp_path / "points.csv"
    path.write_text("image,x,y,label\nimg1.png,30,30,1\nimg2.png,50,80,1\nimg3.png,120,30,1\n")
    return path


def _one_line_error(err: str, *words: str) -> None:
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, err


# ------------------------------------------------------------------------------------ options of one mode
@pytest.mark.parametrize(
    "mode, option, expected",
    [
        ("points", ["--images-json", "images.json"], "--images-json works on box prompts"),
        ("points", ["--min-score", "0.5"], "--min-score works on box prompts"),
        ("everything", ["--min-score", "0.5"], "--min-score works on box prompts"),
        ("boxes", ["--points-per-side", "4"], "--points-per-side tunes --everything"),
        ("points", ["--nms-thresh", "0.5"], "--nms-thresh tunes --everything"),
        ("boxes", ["--skip-covered-points"], "--skip-covered-points tunes --everything"),
    ],
)
def test_an_option_the_mode_would_ignore_is_refused(
    folder, boxes_csv, points_csv, fake_model, capsys, mode, option, expected
):
    chosen = {"points": ["--points", str(points_csv)], "boxes": ["--boxes", str(boxes_csv)],
              "everything": ["--everything"]}[mode]  # fmt: skip
    assert main(["label", str(folder), "--out", "labels", *chosen, *option]) == 2
    _one_line_error(capsys.readouterr().err, expected)
    assert fake_model.encodes == 0 and not (folder / "labels.efsam.json").exists()


def test_category_names_point_prompts_whose_file_gives_none(folder, points_csv, fake_model, capsys):
    assert (
        main(["label", str(folder), "--out", "labels", "--points", str(points_csv), "--category", "fish"])
        == 0
    )
    with Project.open(folder / "labels.efsam.json") as project:
        document = project.document
        assert [category.name for category in document.categories] == ["fish"]
        assert document.instance_count == 3


# ------------------------------------------------------------------------------------ messages
@pytest.mark.parametrize(
    "options, expected",
    [
        ([*EVERYTHING, "--points-per-side", "0"], "--points-per-side 0 is out of range: use at least 1"),
        ([*EVERYTHING, "--crop-overlap", "1.5"], "--crop-overlap 1.5 is out of range"),
        (["--everything", "--save-every", "0"], "--save-every 0"),
        (["--everything", "--category", " "], "--category needs a name"),
    ],
)
def test_bad_values_name_the_option(folder, fake_model, capsys, options, expected):
    assert main(["label", str(folder), "--out", "labels", *options]) == 2
    err = capsys.readouterr().err
    _one_line_error(err, expected)
    assert "_" not in err.split("error:", 1)[1]  # no internal parameter names


def test_a_missing_images_json_names_the_option(folder, tmp_path, fake_model, capsys):
    detections = tmp_path / "dets.json"
    detections.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 1}]))
    missing = tmp_path / "nosuch.json"
    assert (
        main(["label", str(folder), "--out", "x", "--boxes", str(detections), "--images-json", str(missing)])
        == 2
    )
    _one_line_error(capsys.readouterr().err, f"--images-json {missing}")


def test_an_interrupted_run_says_the_coco_file_was_not_written(
    folder, boxes_csv, tmp_path, monkeypatch, capsys
):
    class Interrupting(ShapesPredictor):
        def set_image(self, image):
            super().set_image(image)
            if self.encodes == 2:
                raise KeyboardInterrupt

    monkeypatch.setattr(label_cli, "_load_predictor", lambda args: Interrupting())
    coco = tmp_path / "coco.json"
    rc = main(["label", str(folder), "--out", "labels", "--boxes", str(boxes_csv), "--coco", str(coco)])
    assert rc == 130 and not coco.exists()
    out = capsys.readouterr().out
    assert f"COCO: {coco} not written, as the run was interrupted" in out
    assert f"--format coco --out {coco}" in out


def test_help_states_which_boxes_are_refined(capsys):
    with pytest.raises(SystemExit):
        main(["label", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "covers at most half of the image each way: boxes under about a third of the image each way" in text
    )


# ------------------------------------------------------------------------------------ summary lists
def test_a_corrupt_image_is_listed_as_failed_only(folder, boxes_csv, fake_model, capsys):
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with boxes_csv.open("a") as handle:
        handle.write("broken.png,1,1,20,20,cat,0.9\ntypo.png,1,1,20,20,cat,0.9\n")
    assert main(["label", str(folder), "--out", "labels", "--boxes", str(boxes_csv)]) == 1
    out = capsys.readouterr().out
    assert "failed: broken.png:" in out
    assert "prompts for images not in the project: typo.png\n" in out


# ------------------------------------------------------------------------------------ categories
def test_categories_new_in_one_image_get_distinct_colours(folder, boxes_csv, fake_model, capsys):
    assert main(["label", str(folder), "--out", "labels", "--boxes", str(boxes_csv)]) == 0
    with Project.open(folder / "labels.efsam.json") as project:
        categories = project.document.categories
    assert [c.name for c in categories] == ["cat", "dog"]  # both first seen on img1.png
    assert [c.colour for c in categories] == list(DEFAULT_COLOURS[:2])


# ------------------------------------------------------------------------------------ progress bar
class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_progress_bar_when_stderr_is_not_a_terminal(folder, fake_model, capsys):
    assert main(["label", str(folder), "--out", "labels", *EVERYTHING]) == 0
    captured = capsys.readouterr()
    assert "mode: everything" in captured.out
    assert captured.err == ""


def test_a_terminal_bar_is_not_redrawn_at_every_step(folder, fake_model, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)

    class FrozenClock:
        @staticmethod
        def monotonic() -> float:
            return 1000.0

    monkeypatch.setattr(label_cli, "time", FrozenClock)  # every step falls within one redraw interval
    assert main(["label", str(folder), "--out", "labels", *EVERYTHING]) == 0
    text = terminal.getvalue()
    assert "label:" in text and "3/3" in text
    assert text.count("\r") < 12  # 16 decoder steps per image, 3 images: steps alone would redraw 48 times
