"""``efsam-studio eval`` end to end with a random tiny checkpoint on synthetic COCO data."""

from __future__ import annotations

import json

import pytest

from efficientsam_studio.cli.main import main
from trainer.finetune import synthetic


@pytest.fixture()
def coco(tmp_path):
    path = synthetic.write_coco(tmp_path / "ann.json", tmp_path / "images", 2, seed=21)
    return path, tmp_path / "images"


def test_eval_writes_json_with_miou_and_ap(coco, tiny_checkpoint, tmp_path, capsys):
    annotations, images = coco
    document = json.loads(annotations.read_text())
    first_image = document["images"][0]["id"]
    detections = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1}
                  for a in document["annotations"] if a["image_id"] == first_image]  # fmt: skip
    (tmp_path / "det.json").write_text(json.dumps(detections))
    out = tmp_path / "results" / "eval.json"
    status = main([
        "eval", "--checkpoint", str(tiny_checkpoint), "--coco", str(annotations), "--images", str(images),
        "--prompt", "box,point,center", "--clicks", "1,2", "--limit", "1", "--detections",
        str(tmp_path / "det.json"), "--json", str(out), "--no-progress", "--device", "cpu",
    ])  # fmt: skip
    assert status == 0
    report = json.loads(out.read_text())
    assert report["model"] == "tiny" and report["images"] == 1
    assert set(report["miou"]) == {"box", "point@1", "point@2", "center@1", "center@2"}
    count = sum(1 for a in document["annotations"] if a["image_id"] == first_image)
    for value in report["miou"].values():
        assert 0.0 <= value["miou"] <= 1.0 and value["count"] == count
    assert 0.0 <= report["instance_segmentation"]["AP"] <= 1.0
    assert report["instance_segmentation"]["detections"] == len(detections)
    printed = capsys.readouterr().out
    assert "mIoU box" in printed and "mask AP" in printed


def test_eval_errors_are_reported(coco, tiny_checkpoint, tmp_path, capsys):
    annotations, images = coco
    base = ["eval", "--checkpoint", str(tiny_checkpoint), "--coco", str(annotations), "--images", str(images)]
    assert main([*base, "--prompt", "point", "--clicks", "9"]) == 2
    assert "--clicks" in capsys.readouterr().err
    assert main([*base, "--prompt", "scribble"]) == 2
    assert "--prompt" in capsys.readouterr().err
    missing = ["eval", "--checkpoint", str(tiny_checkpoint), "--coco", str(tmp_path / "none.json"),
               "--images", str(images)]  # fmt: skip
    assert main(missing) == 2
    assert "none.json" in capsys.readouterr().err


def test_eval_skips_invalid_annotations_and_counts_them(coco, tiny_checkpoint, capsys):
    annotations, images = coco
    document = json.loads(annotations.read_text())
    first = document["annotations"][0]
    document["annotations"] += [
        {**first, "id": 901, "segmentation": [[10, 20, 30]]},
        {**first, "id": 902, "segmentation": {"size": first["segmentation"]["size"], "counts": [100, 50]}},
        {**first, "id": 903, "segmentation": [[float("nan"), 1, 5, 5, 10, 1]]},
    ]
    annotations.write_text(json.dumps(document))
    base = ["eval", "--checkpoint", str(tiny_checkpoint), "--coco", str(annotations), "--images", str(images)]
    with pytest.warns(UserWarning) as caught:
        assert main([*base, "--limit", "1", "--no-progress", "--device", "cpu"]) == 0
    messages = [str(w.message) for w in caught if w.category is UserWarning]
    assert [m.split(":")[1].strip() for m in messages] == [
        "annotation 901",
        "annotation 902",
        "annotation 903",
    ]
    out = capsys.readouterr().out
    assert "skipped 3 invalid annotations" in out
    assert main([*base, "--seed", "-1"]) == 2
    assert "--seed must be at least 0" in capsys.readouterr().err


def test_an_unknown_prompt_mode_is_named_plainly(coco, tiny_checkpoint, capsys):
    annotations, images = coco
    base = ["eval", "--checkpoint", str(tiny_checkpoint), "--coco", str(annotations), "--images", str(images)]
    assert main([*base, "--prompt", "box,foo"]) == 2
    err = capsys.readouterr().err
    assert "--prompt box,foo: unknown mode foo; choose from box, point, center" in err
    assert "[" not in err and len(err.strip().splitlines()) == 1


def test_no_progress_bar_when_stderr_is_not_a_terminal(coco, tiny_checkpoint, capsys):
    annotations, images = coco
    command = ["eval", "--checkpoint", str(tiny_checkpoint), "--coco", str(annotations), "--images",
               str(images), "--limit", "1", "--device", "cpu"]  # fmt: skip
    assert main(command) == 0
    captured = capsys.readouterr()
    assert "mIoU box" in captured.out
    assert "eval:" not in captured.err and "\r" not in captured.err


def test_eval_skips_an_unreadable_image_and_says_so(coco, tiny_checkpoint, capsys):
    annotations, images = coco
    document = json.loads(annotations.read_text())
    broken = images / document["images"][0]["file_name"]
    broken.write_bytes(broken.read_bytes()[:200])  # a truncated file
    base = ["eval", "--checkpoint", str(tiny_checkpoint), "--coco", str(annotations), "--images", str(images)]
    with pytest.warns(UserWarning, match="unreadable image"):
        assert main([*base, "--no-progress", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1 images,") and "skipped 1 unreadable images" in out
