"""Evaluation with the EfficientSAM paper's protocol, through the engine's :class:`Predictor`.

Interactive mIoU on COCO-style ground truth (every non-crowd instance of every image):

- ``box``: the tight box of the ground-truth mask (extreme foreground pixels, inclusive) is the prompt;
- ``point``: the first click is a uniformly random pixel inside the ground-truth mask (seeded per
  annotation from ``(seed, annotation id)``, so results do not depend on ``--limit`` or image order);
- ``center``: the first click is the ground-truth pixel farthest from the mask boundary (distance
  transform), the protocol of EfficientViT-SAM and EdgeSAM;
- ``clicks`` k > 1: each further click is taken from the error region of the previous prediction (a
  missed pixel becomes a positive click, a wrongly included one a negative click); uniformly random for
  ``point``, farthest from the error region's boundary for ``center``. All clicks go to the decoder
  together (this model has no mask input).

Only the most confident output (highest predicted IoU) is scored: the predictor is asked for its best
mask (``multimask_output=False``). Masks are compared at the original image size. An invalid ground-truth
annotation (see :func:`~trainer.finetune.sources.annotation_problem`) is not scored: it is reported by a
warning naming the file and the annotation id, and counted in the report's ``invalid_annotations``. An
image that cannot be read (missing, truncated, not an image) is skipped with a warning and counted in
``unreadable_images``; the other images are scored (and only they enter the instance-segmentation AP).

Zero-shot instance segmentation: every detection box (COCO results ``[{image_id, category_id, bbox
[x, y, w, h], score}]``) prompts the model as ``[x, y, x + w, y + h]``; the most confident mask, with the
detection's category and score, goes into a COCO results list scored by pycocotools' ``COCOeval``
(``iouType="segm"``).
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from efficientsam_studio.annotations import masks as mask_ops
from efficientsam_studio.errors import StudioError
from trainer.finetune.prompts import center_point, error_click, mask_to_box, random_points
from trainer.finetune.sources import (
    CocoInstances,
    DatasetError,
    annotation_name,
    annotation_problem,
    decode_segmentation,
    report_invalid,
)

PROMPT_MODES = ("box", "point", "center")
MAX_CLICKS = 6


class EvaluationError(StudioError):
    """Evaluation inputs that cannot be used (prompt mode, clicks, detections file)."""


@dataclass(frozen=True)
class EvalConfig:
    """``prompts``: modes from :data:`PROMPT_MODES`; ``clicks``: click counts reported for point/center
    modes (1..6); ``seed`` of the random clicks; ``limit``: only the first N images of the file."""

    prompts: tuple[str, ...] = ("box",)
    clicks: tuple[int, ...] = (1,)
    seed: int = 0
    limit: int | None = None

    def __post_init__(self) -> None:
        unknown = [p for p in self.prompts if p not in PROMPT_MODES]
        if unknown or not self.prompts:
            raise EvaluationError(
                f"unknown --prompt {unknown or self.prompts}; choose from {', '.join(PROMPT_MODES)}"
            )
        if not self.clicks or any(not 1 <= k <= MAX_CLICKS for k in self.clicks):
            raise EvaluationError(
                f"--clicks must be numbers from 1 to {MAX_CLICKS} (the model reads at most "
                f"{MAX_CLICKS} points); got {list(self.clicks)}"
            )


@dataclass
class MiouAccumulator:
    """Running IoU sums per prompt key (``"box"``, ``"point@3"``, ...)."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, iou: float) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + float(iou)
        self.counts[key] = self.counts.get(key, 0) + 1

    def result(self) -> dict[str, dict[str, float]]:
        return {
            key: {"miou": self.sums[key] / self.counts[key], "count": self.counts[key]} for key in self.sums
        }


def iou(predicted: np.ndarray, target: np.ndarray) -> float:
    """IoU of two bool masks of the same shape (1.0 when both are empty)."""
    union = np.logical_or(predicted, target).sum()
    return 1.0 if union == 0 else float(np.logical_and(predicted, target).sum() / union)


def _best_masks(predictor: Any, prompts: list[Any]) -> np.ndarray:
    """Most confident mask of each prompt: bool ``(Q, H, W)``."""
    result = predictor.predict_batch(prompts=prompts, multimask_output=False)
    return np.asarray(result.masks)[:, 0]


def _first_click(mode: str, target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return random_points(target, rng, 1)[0] if mode == "point" else center_point(target)


def evaluate_image(
    predictor: Any,
    targets: list[np.ndarray],
    annotation_ids: list[int],
    config: EvalConfig,
    totals: MiouAccumulator,
) -> None:
    """Score every prompt mode on one image whose embedding is set in ``predictor``.

    ``targets``: non-empty bool ``(H, W)`` ground-truth masks; ``annotation_ids`` seed their clicks.
    """
    from efficientsam_studio.engine.prompts import Prompt

    if not targets:
        return
    for mode in config.prompts:
        if mode == "box":
            prompts = [Prompt(box=mask_to_box(t)) for t in targets]
            for target, mask in zip(targets, _best_masks(predictor, prompts), strict=True):
                totals.add("box", iou(mask, target))
            continue
        rngs = [np.random.default_rng([config.seed, int(a)]) for a in annotation_ids]
        coords = [[_first_click(mode, t, r)] for t, r in zip(targets, rngs, strict=True)]
        labels = [[1] for _ in targets]
        previous = None
        for k in range(1, max(config.clicks) + 1):
            if k > 1:
                for index, (target, rng) in enumerate(zip(targets, rngs, strict=True)):
                    click = error_click(
                        previous[index], target, rng, "random" if mode == "point" else "center"
                    )
                    if click is not None:
                        coords[index].append(click[0])
                        labels[index].append(click[1])
            prompts = [
                Prompt(point_coords=np.asarray(c, np.float32), point_labels=np.asarray(lab, np.float32))
                for c, lab in zip(coords, labels, strict=True)
            ]
            previous = _best_masks(predictor, prompts)
            if k in config.clicks:
                for target, mask in zip(targets, previous, strict=True):
                    totals.add(f"{mode}@{k}", iou(mask, target))


def _load_detections(path: Path) -> list[dict]:
    try:
        detections = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise EvaluationError(f"{path}: no such detections file") from exc
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"{path}: unreadable detections JSON ({exc})") from exc
    if isinstance(detections, dict) and "annotations" in detections:
        detections = detections["annotations"]
    if not isinstance(detections, list) or any(
        not isinstance(d, dict) or not {"image_id", "bbox", "category_id"} <= d.keys() for d in detections
    ):
        raise EvaluationError(
            f"{path}: detections must be a COCO results list of "
            "{{image_id, category_id, bbox [x, y, w, h], score}}"
        )
    return detections


def _coco_ap(annotations_file: Path, results: list[dict], image_ids: list[int]) -> dict[str, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    names = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    if not results:
        return {name: 0.0 for name in names}
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO(str(annotations_file))
        detections = ground_truth.loadRes(results)
        evaluator = COCOeval(ground_truth, detections, iouType="segm")
        evaluator.params.imgIds = image_ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(value) for name, value in zip(names, evaluator.stats, strict=True)}


def evaluate(
    predictor: Any,
    annotations_file: str | Path,
    images_dir: str | Path,
    config: EvalConfig = EvalConfig(),
    detections_file: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the protocol over a COCO instances file; returns a JSON-ready dict.

    ``{"images": n, "unreadable_images": u, "masks": m, "invalid_annotations": k, "miou": {"box": {"miou",
    "count"}, "point@1": ...}, "instance_segmentation": {"AP", "AP50", ..., "detections"} (with
    detections), "seconds": t}``; ``images`` counts the images scored, ``unreadable_images`` those
    skipped.
    """
    from tqdm import tqdm

    from efficientsam_studio.engine.prompts import Prompt

    source = CocoInstances(annotations_file, images_dir)
    detections = _load_detections(Path(detections_file)) if detections_file else None
    by_image: dict[int, list[dict]] = {}
    for detection in detections or []:
        by_image.setdefault(int(detection["image_id"]), []).append(detection)
    count = len(source) if config.limit is None else min(config.limit, len(source))
    totals = MiouAccumulator()
    results: list[dict] = []
    image_ids: list[int] = []
    masks_scored = unreadable = 0
    invalid = len(source.invalid)
    start = time.perf_counter()
    for index in tqdm(range(count), desc="eval", unit="img", disable=not progress):
        try:
            record = source.read(index)
        except StudioError as exc:
            unreadable += 1
            warnings.warn(f"skipped an unreadable image: {exc}", stacklevel=2)
            continue
        height, width = record.image.shape[:2]
        image_id = record.extra["image_id"]
        image_ids.append(image_id)
        targets, ids = [], []
        for position, annotation in enumerate(record.annotations):
            problem = annotation_problem(annotation, height, width)
            if problem is not None:
                invalid += 1
                report_invalid(str(annotations_file), annotation_name(annotation, position), problem)
                continue
            target = decode_segmentation(annotation["segmentation"], height, width, record.name)
            if target.any():
                targets.append(target)
                annotation_id = annotation.get("id")
                ids.append(annotation_id if isinstance(annotation_id, int) else position)
        predictor.set_image(record.image)
        evaluate_image(predictor, targets, ids, config, totals)
        masks_scored += len(targets)
        own = by_image.get(image_id, [])
        if own:
            boxes = [
                Prompt(box=np.array([x, y, x + w, y + h], np.float32))
                for x, y, w, h in (d["bbox"] for d in own)
            ]
            for detection, mask in zip(own, _best_masks(predictor, boxes), strict=True):
                results.append(
                    {
                        "image_id": image_id,
                        "category_id": detection["category_id"],
                        "segmentation": mask_ops.encode(mask),
                        "score": float(detection.get("score", 1.0)),
                    }
                )
    report: dict[str, Any] = {
        "annotations": str(annotations_file),
        "images": count - unreadable,
        "unreadable_images": unreadable,
        "masks": masks_scored,
        "invalid_annotations": invalid,
        "protocol": {
            "prompts": list(config.prompts),
            "clicks": list(config.clicks),
            "seed": config.seed,
            "scored": "most confident output",
        },
        "miou": totals.result(),
    }
    if detections is not None:
        report["instance_segmentation"] = {
            **_coco_ap(Path(annotations_file), results, image_ids),
            "detections": len(results),
        }
    report["seconds"] = round(time.perf_counter() - start, 3)
    return report


def box_fill_miou(annotations_file: str | Path) -> float:
    """The 1-box mIoU of the trivial answer "the whole tight box" on a COCO file's masks: the floor a
    model that ignores the image reaches, to read a box mIoU against."""
    scores = []
    for annotation in json.loads(Path(annotations_file).read_text())["annotations"]:
        mask = mask_ops.decode(annotation["segmentation"])
        ys, xs = np.nonzero(mask)
        scores.append(mask.sum() / ((np.ptp(ys) + 1) * (np.ptp(xs) + 1)))
    return float(np.mean(scores))


def parse_clicks(text: str) -> tuple[int, ...]:
    """``"1,3"`` -> ``(1, 3)``; EvaluationError on anything else."""
    try:
        values = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise EvaluationError(f"--clicks must be comma-separated numbers such as 1,3; got {text!r}") from None
    if not values:
        raise EvaluationError("--clicks needs at least one number")
    return values


def parse_prompts(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"box,point"`` -> ``("box", "point")``."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    return tuple(dict.fromkeys(p.strip() for p in parts if p.strip()))


__all__ = [
    "box_fill_miou",
    "EvalConfig",
    "EvaluationError",
    "DatasetError",
    "evaluate",
    "evaluate_image",
    "iou",
    "parse_clicks",
    "parse_prompts",
]
