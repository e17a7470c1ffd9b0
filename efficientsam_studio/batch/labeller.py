"""Masks for one image in each batch mode; touches no document (safe to run in a worker thread).

- ``everything``: :class:`~efficientsam_studio.engine.automatic.AutomaticMaskGenerator` on the image.
- ``boxes``: each box is decoded as a box prompt; the best of the 3 candidates (by predicted IoU) is kept,
  with the box's category; its score is the detector's confidence when the box has one (the ranking
  that COCO-style results are evaluated by), else the predicted IoU. Given the image's pixels
  (``refine_small_boxes``), a small box is decoded again in a cut around it
  (:mod:`~efficientsam_studio.engine.crop_refine`) and that mask is kept, its cut in the attributes.
  Small: the box grown by a quarter of its size on each side (at least 8 px) covers at most half of the
  image each way, so boxes under about a third of the image each way.
- ``points``: each object's points are one prompt; the best candidate is kept.

Boxes and points follow the engine's rule for prompts and the image
(:func:`~efficientsam_studio.engine.prompts.fit_to_image`): a box is clipped to the image, a point within
a pixel of it moved onto its edge. A prompt the rule refuses (outside the image) is
skipped with the reason in the image's notes; the image's other prompts are labelled. Points beyond the
decoder's limit are reported in the notes too (not as Python warnings).

Every mask keeps the decoder's predicted IoU in its attributes (``predicted_iou``), and as its score
unless a detector score ranks it; attributes say which prompt made it.

``cancel`` (a function returning True to stop) is asked before each decoder batch, each cut of a small
box and each batch of grid points; when it answers True, :class:`MaskGenerationCancelled` is raised and
the image's partial result is dropped (the pipeline lands nothing of that image).
Imports no torch (the ONNX backend must work without it).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from efficientsam_studio.annotations import masks as mask_codec
from efficientsam_studio.batch.prompts import BoxPrompt, PointPrompt
from efficientsam_studio.batch.results import ImageResult, NewMask
from efficientsam_studio.engine.automatic import (
    AutomaticMaskGenerator,
    AutomaticMaskParams,
    MaskGenerationCancelled,
)
from efficientsam_studio.engine.crop_refine import Crop, cut_current, place_in_image, refine_crop
from efficientsam_studio.engine.prompts import PromptError, PromptsTruncatedWarning, fit_to_image

DECODE_CHUNK = 16
"""Prompts decoded per batched call in boxes and points modes (bounds the memory of full-size masks)."""

Cancel = Callable[[], bool] | None


def _check(cancel: Cancel) -> None:
    if cancel is not None and cancel():
        raise MaskGenerationCancelled("cancelled")


def label_everything(
    predictor: Any,
    image: np.ndarray,
    result: ImageResult,
    params: AutomaticMaskParams,
    category: str,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> None:
    """Append every automatic mask of ``image`` (RGB uint8 ``(H, W, 3)``) to ``result``."""
    generator = AutomaticMaskGenerator(predictor, params)
    for auto in generator.generate(image, progress=progress, cancel=cancel):
        attributes = {
            "prompt": "point_grid",
            "point": [round(auto.point[0], 2), round(auto.point[1], 2)],
            "predicted_iou": round(auto.predicted_iou, 4),
            "stability_score": round(auto.stability_score, 4),
        }
        if auto.crop_box != (0, 0, image.shape[1], image.shape[0]):
            attributes["crop_box"] = list(auto.crop_box)
        result.masks.append(NewMask(category, auto.rle, float(auto.predicted_iou), attributes))


def _best_masks(
    predictor: Any, result: ImageResult, **prompt_arrays: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """Best candidate of each prompt: ``(masks bool (Q, H, W), scores (Q,), notes)``, ``notes[i]`` the
    decoder's note on prompt i (points left out by its limit) or None.

    The warnings the predictor issues about such prompts become notes, not printed warnings: the
    per-prompt notes of its ``infos``, or, from a predictor without them, notes of ``result``'s image.
    Other warnings pass on."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PromptsTruncatedWarning)
        prediction = predictor.predict_batch(**prompt_arrays, multimask_output=True, return_masks=False)
    truncated = [w for w in caught if issubclass(w.category, PromptsTruncatedWarning)]
    for other in caught:
        if not issubclass(other.category, PromptsTruncatedWarning):
            warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    _, scores, logits = prediction
    scores = np.asarray(scores)
    infos = list(getattr(prediction, "infos", []) or [])
    notes = [getattr(info, "note", None) for info in infos[: len(scores)]]
    notes += [None] * (len(scores) - len(notes))
    if not infos:
        result.notes.extend(f"{result.path}: {w.message}" for w in truncated)
    best = np.asarray(logits)[:, 0]  # candidates come sorted best first
    return np.asarray(predictor.masks_from_logits(best)), scores[:, 0], notes


def _skip(result: ImageResult, what: str, problem: PromptError) -> None:
    result.notes.append(f"{result.path}: {what} skipped: {problem}")
    result.skipped_prompts += 1


def label_boxes(
    predictor: Any,
    image_size: tuple[int, int],
    prompts: Sequence[BoxPrompt],
    result: ImageResult,
    image: np.ndarray | None = None,
    cancel: Cancel = None,
) -> None:
    """Append one mask per box (prompts in pixels or normalised) on the image set on ``predictor``;
    with ``image`` (its pixels), small boxes are decoded again in their cut (module docstring).

    Raises:
        MaskGenerationCancelled: ``cancel`` answered True (between decoder batches and cuts)."""
    height, width = image_size
    usable: list[tuple[BoxPrompt, tuple[float, ...]]] = []
    for prompt in prompts:
        try:
            _, box = fit_to_image(None, np.array(prompt.in_pixels(width, height)), image_size)
        except PromptError as exc:
            _skip(result, f"box {prompt.origin or prompt.box}", exc)
            continue
        usable.append((prompt, tuple(float(v) for v in box)))
    for start in range(0, len(usable), DECODE_CHUNK):
        _check(cancel)
        chunk = usable[start : start + DECODE_CHUNK]
        boxes = np.array([box for _, box in chunk], dtype=np.float32)
        masks, scores, _ = _best_masks(predictor, result, boxes=boxes)
        cuts: list[Crop | None] = [None] * len(chunk)
        if image is not None:
            chunk_boxes = [box for _, box in chunk]
            masks, scores, cuts = _in_cuts(predictor, image, chunk_boxes, masks, scores, result, cancel)
        for (prompt, box), mask, iou, cut in zip(chunk, masks, scores, cuts, strict=True):
            if not mask.any():
                result.empty += 1
                continue
            attributes: dict[str, Any] = {
                "prompt": "box",
                "box": [round(v, 2) for v in box],
                "predicted_iou": round(float(iou), 4),
            }
            if cut is not None:
                attributes["cut"] = list(cut)
            if prompt.score is not None:
                attributes["detector_score"] = prompt.score
            if prompt.origin:
                attributes["origin"] = prompt.origin
            score = float(iou) if prompt.score is None else float(prompt.score)
            result.masks.append(NewMask(prompt.category, mask_codec.encode(mask), score, attributes))


def _in_cuts(
    predictor: Any,
    image: np.ndarray,
    boxes: Sequence[tuple[float, ...]],
    masks: np.ndarray,
    scores: np.ndarray,
    result: ImageResult,
    cancel: Cancel = None,
) -> tuple[list[np.ndarray], list[float], list[Crop | None]]:
    """The masks and scores of ``boxes`` with those of the small boxes replaced by their decode in a cut
    (placed back in the image), and each box's cut or None."""
    size = image.shape[:2]
    out_masks, out_scores = list(masks), [float(v) for v in scores]
    cuts = [refine_crop(box, size) for box in boxes]
    for index, (box, cut) in enumerate(zip(boxes, cuts, strict=True)):
        if cut is None:
            continue
        _check(cancel)
        x0, y0 = cut[0], cut[1]
        moved = np.array([[box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0]], np.float32)
        with cut_current(predictor, image, cut):
            cut_masks, cut_scores, _ = _best_masks(predictor, result, boxes=moved)
        out_masks[index], out_scores[index] = place_in_image(cut_masks[0], cut, size), float(cut_scores[0])
    return out_masks, out_scores, cuts


def label_points(
    predictor: Any,
    image_size: tuple[int, int],
    prompts: Sequence[PointPrompt],
    result: ImageResult,
    cancel: Cancel = None,
) -> None:
    """Append one mask per point prompt (an object's points) on the image set on ``predictor``.

    Raises:
        MaskGenerationCancelled: ``cancel`` answered True (asked between decoder batches)."""
    by_length: dict[int, list[tuple[PointPrompt, np.ndarray]]] = {}
    for prompt in prompts:
        try:
            points, _ = fit_to_image(np.array(prompt.points, dtype=np.float64), None, image_size)
        except PromptError as exc:
            _skip(result, f"object {prompt.object_id}", exc)
            continue
        by_length.setdefault(len(prompt.points), []).append((prompt, points))
    for count, group in by_length.items():
        for start in range(0, len(group), DECODE_CHUNK):
            _check(cancel)
            chunk = [prompt for prompt, _ in group[start : start + DECODE_CHUNK]]
            fitted = [points for _, points in group[start : start + DECODE_CHUNK]]
            coords = np.array(fitted, dtype=np.float32).reshape(len(chunk), count, 2)
            labels = np.array([p.labels for p in chunk], dtype=np.float32).reshape(len(chunk), count)
            masks, scores, notes = _best_masks(predictor, result, point_coords=coords, point_labels=labels)
            for prompt, mask, score, note in zip(chunk, masks, scores, notes, strict=True):
                if note:
                    result.notes.append(f"{result.path}: object {prompt.object_id}: {note}")
                if not mask.any():
                    result.empty += 1
                    continue
                attributes = {
                    "prompt": "points",
                    "object": prompt.object_id,
                    "points": [[round(x, 2), round(y, 2)] for x, y in prompt.points],
                    "labels": list(prompt.labels),
                }
                rle = mask_codec.encode(mask)
                result.masks.append(NewMask(prompt.category, rle, float(score), attributes))
