"""Candidate masks handed to the GUI: best first, full-size masks made on first use."""

from __future__ import annotations

import numpy as np

from efficientsam_studio.engine.numpy_predictor import masks_from_logits
from efficientsam_studio.gui.engine_service import EngineConfig, EngineWorker, RequestTracker
from efficientsam_studio.gui.prediction import Prediction


def _logits() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(0.0, 3.0, size=(3, 256, 256)).astype(np.float32)


def test_from_logits_sorts_and_upsamples_each_candidate_on_first_use() -> None:
    logits = _logits()
    prediction = Prediction.from_logits("img", logits, np.array([0.2, 0.9, 0.5]), (60, 90))
    assert prediction.scores.tolist() == np.float32([0.9, 0.5, 0.2]).tolist()
    assert prediction.made == [False, False, False]
    best = prediction.mask(0)
    assert prediction.made == [True, False, False]
    np.testing.assert_array_equal(best, masks_from_logits(logits[1], (60, 90)))
    assert prediction.mask(0) is best  # made once
    np.testing.assert_array_equal(prediction.masks, masks_from_logits(logits[[1, 2, 0]], (60, 90)))
    assert prediction.made == [True, True, True]


def test_from_masks_sorts_stably() -> None:
    masks = np.zeros((3, 4, 5), bool)
    masks[1, 0, 0] = masks[2, 1, 1] = True
    prediction = Prediction.from_masks("img", masks, np.array([0.5, 0.9, 0.5]))
    assert prediction.made == [True, True, True]
    assert prediction.mask(0)[0, 0] and not prediction.mask(1).any() and prediction.mask(2)[1, 1]


def test_the_worker_answers_with_the_best_mask_and_makes_the_others_after(qtbot, tiny_checkpoint) -> None:
    from efficientsam_studio.engine import load_predictor

    predictor = load_predictor("tiny", checkpoint=tiny_checkpoint, device="cpu", backend="torch")
    image = np.random.default_rng(1).integers(0, 256, size=(48, 80, 3), dtype=np.uint8)
    tracker = RequestTracker()
    worker = EngineWorker(tracker, loader=lambda config: predictor, reader=lambda path: image)
    worker.load(EngineConfig(model="tiny"))
    worker.set_image(tracker.new("image"), "img", image)
    answers = []
    worker.prediction_ready.connect(lambda request, prediction: answers.append((prediction, prediction.made)))
    point = {"point_coords": np.array([[30.0, 20.0]], np.float32), "point_labels": np.array([1])}
    worker.predict(tracker.new("predict"), "img", {**point, "box": None})
    ((prediction, made_when_sent),) = answers
    assert made_when_sent == [True, False, False]
    qtbot.waitUntil(lambda: all(prediction.made), timeout=5000)  # filled by the worker's event loop
    masks, scores, _ = predictor.predict(**point)
    np.testing.assert_allclose(prediction.scores, scores, rtol=1e-6)
    np.testing.assert_array_equal(prediction.masks, masks)
