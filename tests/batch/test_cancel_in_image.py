"""Cancel is honoured inside an image in boxes and points modes: between decoder batches and between
the cuts of small boxes; the image cut short is left untouched."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from efficientsam_studio.annotations.document import ImageStatus
from efficientsam_studio.batch import BatchParams, BoxPrompt, PointPrompt, PromptSet, run_batch
from efficientsam_studio.batch.labeller import DECODE_CHUNK, label_boxes, label_points
from efficientsam_studio.batch.results import ImageResult
from efficientsam_studio.engine.automatic import MaskGenerationCancelled
from tests.batch.conftest import SCENES, SIZE, scene_image
from tests.batch.fake_predictor import ShapesPredictor


class CountingPredictor(ShapesPredictor):
    """Counts the batched decoder calls."""

    def __init__(self) -> None:
        super().__init__()
        self.batches = 0

    def predict_batch(self, *args, **kwargs):
        self.batches += 1
        return super().predict_batch(*args, **kwargs)


def _small_boxes(count: int) -> list[BoxPrompt]:
    """``count`` boxes of 8 x 8 px in a grid (small: each is decoded again in its cut when asked)."""
    return [
        BoxPrompt((2 + (k % 10) * 15, 2 + (k // 10) * 15, 10 + (k % 10) * 15, 10 + (k // 10) * 15), "cat")
        for k in range(count)
    ]


def _predictor() -> CountingPredictor:
    predictor = CountingPredictor()
    predictor.set_image(scene_image(SCENES["img1.png"]))
    return predictor


def test_boxes_stop_after_the_current_decoder_batch():
    predictor = _predictor()
    result = ImageResult(1, "img1.png")
    with pytest.raises(MaskGenerationCancelled):
        label_boxes(predictor, SIZE, _small_boxes(40), result, cancel=lambda: predictor.batches >= 1)
    assert predictor.batches == 1 and predictor.calls == DECODE_CHUNK


def test_small_boxes_stop_between_their_cuts():
    predictor = _predictor()
    image = scene_image(SCENES["img1.png"])
    result = ImageResult(1, "img1.png")
    with pytest.raises(MaskGenerationCancelled):
        label_boxes(predictor, SIZE, _small_boxes(40), result, image, cancel=lambda: predictor.encodes >= 3)
    assert predictor.encodes == 3  # the image, then two cuts: not one per box of the chunk


def test_points_stop_after_the_current_decoder_batch():
    predictor = _predictor()
    prompts = [PointPrompt(((20.0 + k, 20.0),), (1,), "cat", str(k)) for k in range(40)]
    with pytest.raises(MaskGenerationCancelled):
        label_points(
            predictor, SIZE, prompts, ImageResult(1, "img1.png"), cancel=lambda: predictor.batches >= 1
        )
    assert predictor.batches == 1


def test_an_image_cut_short_by_cancel_is_left_untouched_and_labelled_by_the_next_run(project):
    prompts = PromptSet("boxes", source=Path("boxes.csv"))
    for name in SCENES:
        for box in _small_boxes(20):
            prompts.add(name, box)
    predictor = CountingPredictor()
    cancel = threading.Event()

    def progress(event):
        if event.outcome == "working" and event.path == "img2.png":
            predictor.predict_batch = _cancelling(predictor.predict_batch, cancel)

    summary = run_batch(
        project, mode="boxes", predictor=predictor, prompts=prompts, progress=progress, cancel=cancel
    )
    doc = project.document
    assert summary.cancelled and summary.labelled == 1
    assert summary.not_labelled == 2 and "2 not labelled: cancelled" in summary.lines()[1]
    second = doc.image_by_path("img2.png")
    assert doc.instances_of(second.id) == [] and second.status == ImageStatus.UNLABELLED
    assert not doc.dirty
    resumed = run_batch(
        project, mode="boxes", params=BatchParams(), predictor=ShapesPredictor(), prompts=prompts
    )
    assert resumed.labelled == 2 and len(doc.instances_of(second.id)) == 20


def _cancelling(decode, cancel: threading.Event):
    """``decode`` that sets ``cancel`` once it has decoded one batch."""

    def wrapped(*args, **kwargs):
        answer = decode(*args, **kwargs)
        cancel.set()
        return answer

    return wrapped
