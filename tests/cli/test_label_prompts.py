"""``efsam-studio label``: prompts follow the engine's rule for the image; a prompt it refuses is skipped with
the reason and the run goes on; the decoder's point limit is reported in the summary, not as a warning."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from efficientsam_studio.annotations.project import load_document
from efficientsam_studio.cli.main import main
from efficientsam_studio.engine import PromptsTruncatedWarning
from tests.batch.conftest import box_mask


def _masks_by_object(path: Path) -> dict[str, int]:
    document = load_document(path)
    return {str(inst.attributes.get("object")): inst.image_id for inst in document.iter_instances()}


def test_points_outside_the_image_are_skipped_and_the_run_goes_on(folder, tmp_path, fake_model, capsys):
    points = tmp_path / "points.csv"
    points.write_text(
        "image,x,y,label,object\n"
        "img1.png,30,30,1,cat\n"
        "img1.png,5000,5000,1,far\n"
        "img1.png,-50,-50,1,corner\n"
        "img1.png,100,60,0,background\n"
        "img1.png,160.5,-0.5,1,edge\n"
        "img2.png,50,80,1,cat\n"
    )
    rc = main(["label", str(folder), "--out", "pts", "--points", str(points)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "img1.png: object far skipped: point (5000, 5000) lies outside the 160x120 image" in out
    assert "img1.png: object corner skipped: point (-50, -50) lies outside the 160x120 image" in out
    assert "skipped prompts: 2" in out and "2 labelled" in out
    objects = _masks_by_object(folder / "pts.efsam.json")
    assert set(objects) == {"cat", "background", "edge"}  # negative points alone are a prompt


def test_boxes_reversed_as_a_line_or_outside(folder, tmp_path, fake_model, capsys):
    boxes = tmp_path / "boxes.csv"
    boxes.write_text(
        "image,x0,y0,x1,y1,label\n"
        "img1.png,60,50,10,10,cat\n"  # corners reversed: the cat's box
        "img1.png,80,30,80,100,flat\n"
        "img1.png,500,500,600,600,away\n"
        "img2.png,20,60,90,200,cat\n"  # partly outside: clipped
    )
    rc = main(["label", str(folder), "--out", "boxes", "--boxes", str(boxes)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "box (500, 500, 600, 600) lies outside the 160x120 image" in out
    assert "skipped prompts: 1" in out
    document = load_document(folder / "boxes.efsam.json")
    instances = list(document.iter_instances())
    boxes = sorted(inst.attributes["box"] for inst in instances)
    assert [10, 10, 60, 50] in boxes and [20, 60, 90, 120] in boxes  # reversed corners, clipped
    assert "(80, 30, 80, 100)" not in out  # a line is a prompt like any other, not refused
    cat = next(inst for inst in instances if inst.attributes["box"] == [10, 10, 60, 50])
    assert (cat.mask() & box_mask((10, 10, 60, 50))).sum() > 0.9 * box_mask((10, 10, 60, 50)).sum()


def test_the_point_limit_is_a_note_not_a_warning(folder, tmp_path, tiny_checkpoint, capsys):
    clicks = [{"x": 10 + 12 * i, "y": 20 + 8 * i, "label": 1, "object": "many"} for i in range(8)]
    points = tmp_path / "points.json"
    points.write_text(json.dumps({"img1.png": clicks}))
    common = ["--model", "tiny", "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--no-cache"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rc = main(["label", str(folder), "--out", "pts", "--points", str(points), *common])
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    assert not [w for w in caught if issubclass(w.category, PromptsTruncatedWarning)]
    assert "PromptsTruncatedWarning" not in err
    assert "note: img1.png: object many: the model reads at most 6 points" in out
