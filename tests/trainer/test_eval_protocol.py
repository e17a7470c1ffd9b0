"""The evaluation protocol, checked with predictors whose answers are known."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from efficientsam_studio.annotations import masks as mask_ops
from trainer.evaluate import EvalConfig, EvaluationError, evaluate, parse_clicks, parse_prompts
from trainer.finetune import synthetic


class _FakePredictor:
    """Answers from the ground truth of the image it is given (looked up by the image's bytes)."""

    def __init__(self, truth: dict[bytes, list[np.ndarray]], mode: str) -> None:
        self.truth, self.mode, self.prompts = truth, mode, []

    def set_image(self, image: np.ndarray) -> None:
        self.masks = self.truth[image.tobytes()]
        self.shape = image.shape[:2]

    def _answer(self, prompt) -> np.ndarray:
        self.prompts.append(prompt)
        if self.mode == "empty":
            return np.zeros(self.shape, dtype=bool)
        if prompt.box is not None:
            x0, y0, x1, y1 = prompt.box
            if self.mode == "box_fill":
                out = np.zeros(self.shape, dtype=bool)
                out[int(y0) : int(y1) + 1, int(x0) : int(x1) + 1] = True
                return out
            for mask in self.masks:  # oracle: the mask whose tight box this is
                ys, xs = np.nonzero(mask)
                if abs(xs.min() - x0) <= 1 and abs(ys.min() - y0) <= 1 and abs(xs.max() - x1) <= 1:
                    return mask
            return np.zeros(self.shape, dtype=bool)
        x, y = prompt.point_coords[0].astype(int)
        owner = next(m for m in self.masks if m[y, x])
        if self.mode == "oracle":
            return owner
        # "clicks": a disk of radius 6 around every positive click, minus disks around negative ones
        yy, xx = np.mgrid[0 : self.shape[0], 0 : self.shape[1]]
        out = np.zeros(self.shape, dtype=bool)
        for (px, py), label in zip(prompt.point_coords, prompt.point_labels, strict=True):
            disk = (xx - px) ** 2 + (yy - py) ** 2 <= 36
            out = out | disk if label == 1 else out & ~disk
        return out

    def predict_batch(self, prompts, multimask_output=True):
        assert multimask_output is False  # only the most confident mask is scored
        return SimpleNamespace(masks=np.stack([self._answer(p) for p in prompts])[:, None])


@pytest.fixture()
def coco(tmp_path):
    path = synthetic.write_coco(tmp_path / "ann.json", tmp_path / "images", 3, seed=11)
    from efficientsam_studio.annotations.images import load_image

    document = json.loads(path.read_text())
    truth = {}
    for image in document["images"]:
        pixels = load_image(tmp_path / "images" / image["file_name"])
        truth[pixels.tobytes()] = [mask_ops.decode(a["segmentation"]) for a in document["annotations"]
                                   if a["image_id"] == image["id"]]  # fmt: skip
    return path, tmp_path / "images", truth, document


def test_oracle_scores_one_for_every_prompt(coco):
    path, images, truth, document = coco
    config = EvalConfig(prompts=("box", "point", "center"), clicks=(1,))
    report = evaluate(_FakePredictor(truth, "oracle"), path, images, config, progress=False)
    assert report["masks"] == len(document["annotations"])
    for key in ("box", "point@1", "center@1"):
        assert report["miou"][key]["miou"] == pytest.approx(1.0)
        assert report["miou"][key]["count"] == len(document["annotations"])


def test_box_is_the_tight_box(coco):
    path, images, truth, _ = coco
    report = evaluate(_FakePredictor(truth, "box_fill"), path, images, EvalConfig(), progress=False)
    expected = []
    for masks in truth.values():
        for mask in masks:
            ys, xs = np.nonzero(mask)
            expected.append(mask.sum() / ((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)))
    assert report["miou"]["box"]["miou"] == pytest.approx(np.mean(expected))


def test_more_clicks_come_from_the_error_region_and_help(coco):
    path, images, truth, _ = coco
    predictor = _FakePredictor(truth, "clicks")
    config = EvalConfig(prompts=("point",), clicks=(1, 3), seed=5)
    report = evaluate(predictor, path, images, config, progress=False)
    assert report["miou"]["point@3"]["miou"] > report["miou"]["point@1"]["miou"]
    three = [p for p in predictor.prompts if len(p.point_labels) == 3]
    assert three and all(p.point_labels[0] == 1 for p in three)
    again = evaluate(_FakePredictor(truth, "clicks"), path, images, config, progress=False)
    assert again["miou"] == report["miou"]  # the clicks are seeded
    other = evaluate(_FakePredictor(truth, "clicks"), path, images, EvalConfig(("point",), (1, 3), seed=6),
                     progress=False)  # fmt: skip
    assert other["miou"]["point@1"] != report["miou"]["point@1"]


def test_instance_ap_with_detections(coco, tmp_path):
    path, images, truth, document = coco
    detections = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1}
                  for a in document["annotations"]]  # fmt: skip
    (tmp_path / "det.json").write_text(json.dumps(detections))
    config = EvalConfig(prompts=("box",))
    perfect = evaluate(_FakePredictor(truth, "oracle"), path, images, config, tmp_path / "det.json", False)
    assert perfect["instance_segmentation"]["AP"] == pytest.approx(1.0)
    assert perfect["instance_segmentation"]["detections"] == len(detections)
    empty = evaluate(_FakePredictor(truth, "empty"), path, images, config, tmp_path / "det.json", False)
    assert empty["instance_segmentation"]["AP"] == pytest.approx(0.0)


def test_limit_and_bad_options(coco, tmp_path):
    path, images, truth, _ = coco
    report = evaluate(_FakePredictor(truth, "oracle"), path, images, EvalConfig(limit=1), progress=False)
    assert report["images"] == 1
    with pytest.raises(EvaluationError, match="--clicks"):
        EvalConfig(prompts=("point",), clicks=(7,))
    with pytest.raises(EvaluationError, match="--prompt"):
        EvalConfig(prompts=("lasso",))
    with pytest.raises(EvaluationError, match="--clicks"):
        parse_clicks("1,x")
    assert parse_clicks("3,1") == (1, 3) and parse_prompts("box, point") == ("box", "point")
    (tmp_path / "bad.json").write_text(json.dumps([{"image_id": 1}]))
    with pytest.raises(EvaluationError, match="COCO results"):
        evaluate(_FakePredictor(truth, "oracle"), path, images, EvalConfig(), tmp_path / "bad.json", False)


def test_unreadable_images_are_skipped_counted_and_the_rest_scored(coco):
    path, images, truth, document = coco
    names = [image["file_name"] for image in document["images"]]
    (images / names[1]).write_bytes((images / names[1]).read_bytes()[:300])  # truncated
    (images / names[2]).unlink()  # listed but missing
    with pytest.warns(UserWarning, match="skipped an unreadable image") as caught:
        report = evaluate(_FakePredictor(truth, "oracle"), path, images, EvalConfig(), progress=False)
    assert len([w for w in caught if "unreadable" in str(w.message)]) == 2
    first_id = document["images"][0]["id"]
    first_masks = sum(1 for a in document["annotations"] if a["image_id"] == first_id)
    assert report["unreadable_images"] == 2 and report["images"] == 1
    assert report["masks"] == first_masks and report["miou"]["box"] == {"miou": 1.0, "count": first_masks}
