"""run_batch: boxes/points/everything modes, resume, overwrite, hand-made instances, bad images, Ctrl+C."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest

from efficientsam_studio.annotations.commands import AddInstance
from efficientsam_studio.annotations.document import ImageStatus
from efficientsam_studio.annotations.project import Project
from efficientsam_studio.batch import (
    BatchError,
    BatchParams,
    BoxPrompt,
    PointPrompt,
    PromptSet,
    read_box_prompts,
    run_batch,
)
from efficientsam_studio.engine.automatic import AutomaticMaskParams
from tests.batch.conftest import SCENES, box_mask
from tests.batch.fake_predictor import ShapesPredictor


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / np.logical_or(a, b).sum())


def _box_prompts(scenes=SCENES, score: float = 0.8) -> PromptSet:
    prompts = PromptSet("boxes", source=Path("boxes.csv"))
    for name, objects in scenes.items():
        for label, _, box in objects:
            prompts.add(name, BoxPrompt(tuple(float(v) for v in box), label, score, f"{name}:{label}"))
    return prompts


def _everything() -> BatchParams:
    return BatchParams(automatic=AutomaticMaskParams(points_per_side=8, min_mask_area=20))


def test_boxes_mode_assigns_each_mask_to_its_box_and_category(project):
    summary = run_batch(project, mode="boxes", predictor=ShapesPredictor(), prompts=_box_prompts())
    doc = project.document
    assert summary.labelled == 3 and summary.instances_added == 5 and not summary.failed
    assert {c.name for c in doc.categories} == {"cat", "dog"}
    for name, objects in SCENES.items():
        record = doc.image_by_path(name)
        assert record.status == ImageStatus.NEEDS_REVIEW
        instances = doc.instances_of(record.id)
        assert len(instances) == len(objects)
        for instance, (label, _, box) in zip(instances, objects, strict=True):
            assert doc.category(instance.category_id).name == label
            assert _iou(instance.mask(), box_mask(box)) > 0.9
            assert instance.source == "ai"
            assert instance.score == pytest.approx(0.8)  # the detector's confidence ranks the mask
            assert instance.attributes["detector_score"] == pytest.approx(0.8)
            assert instance.attributes["predicted_iou"] == pytest.approx(0.95)  # the best candidate's
            assert instance.attributes["prompt"] == "box"


def test_a_label_differing_only_in_case_takes_the_existing_category(project):
    from efficientsam_studio.annotations.commands import AddCategory

    doc = project.document
    AddCategory(doc, "Cat").do()
    AddCategory(doc, "DOG").do()
    AddCategory(doc, "Dog").do()  # two categories differ only in case: "dog" matches neither of them
    run_batch(project, mode="boxes", predictor=ShapesPredictor(), prompts=_box_prompts())
    assert sorted(c.name for c in doc.categories) == ["Cat", "DOG", "Dog", "dog"]
    labels = {doc.category(i.category_id).name for i in doc.iter_instances()}
    assert labels == {"Cat", "dog"}


def test_the_run_is_saved_and_reopens(project, image_folder):
    run_batch(project, mode="boxes", predictor=ShapesPredictor(), prompts=_box_prompts())
    path = project.path
    project.close()
    with Project.open(path) as reopened:
        assert reopened.document.instance_count == 5
        assert not reopened.document.dirty


def test_points_mode_groups_the_points_of_one_object(project):
    prompts = PromptSet("points", source=Path("points.json"))
    # two positive points on the cat of img1 and a negative one on the dog: one object
    prompts.add("img1.png", PointPrompt(((20.0, 20.0), (50.0, 40.0), (100.0, 50.0)), (1, 1, 0), "cat", "a"))
    prompts.add("img2.png", PointPrompt(((30.0, 70.0),), (1,), "cat", "b"))
    summary = run_batch(project, mode="points", predictor=ShapesPredictor(), prompts=prompts)
    assert summary.labelled == 2 and summary.instances_added == 2
    assert [s[0] for s in summary.skipped] == ["img3.png"]  # no prompts for it
    doc = project.document
    cat = doc.instances_of(doc.image_by_path("img1.png").id)
    assert len(cat) == 1 and _iou(cat[0].mask(), box_mask(SCENES["img1.png"][0][2])) > 0.9
    assert cat[0].attributes["object"] == "a" and cat[0].attributes["labels"] == [1, 1, 0]
    assert doc.image_by_path("img3.png").status == ImageStatus.UNLABELLED


def test_everything_mode_finds_the_drawn_objects(project):
    summary = run_batch(project, mode="everything", params=_everything(), predictor=ShapesPredictor())
    assert summary.labelled == 3 and summary.instances_added == 5
    doc = project.document
    for name, objects in SCENES.items():
        found = [inst.mask() for inst in doc.instances_of(doc.image_by_path(name).id)]
        for _, _, box in objects:
            assert max(_iou(mask, box_mask(box)) for mask in found) > 0.9
    assert {c.name for c in doc.categories} == {"object"}


def test_a_second_run_skips_labelled_images_and_overwrite_replaces_ai_instances(project):
    predictor = ShapesPredictor()
    run_batch(project, mode="boxes", predictor=predictor, prompts=_box_prompts())
    first_ids = {inst.id for inst in project.document.iter_instances()}
    calls = predictor.calls
    again = run_batch(project, mode="boxes", predictor=predictor, prompts=_box_prompts())
    assert again.labelled == 0 and len(again.skipped) == 3 and predictor.calls == calls
    assert {inst.id for inst in project.document.iter_instances()} == first_ids
    params = BatchParams(overwrite=True)
    redo = run_batch(project, mode="boxes", params=params, predictor=predictor, prompts=_box_prompts())
    assert redo.labelled == 3 and redo.instances_removed == 5 and redo.instances_added == 5
    new_ids = {inst.id for inst in project.document.iter_instances()}
    assert len(new_ids) == 5 and not new_ids & first_ids


def test_images_holding_ai_instances_count_as_labelled_whatever_their_status(project):
    run_batch(project, mode="boxes", predictor=ShapesPredictor(), prompts=_box_prompts())
    doc = project.document
    record = doc.image_by_path("img2.png")
    doc.replace_image(dataclasses.replace(record, status=ImageStatus.UNLABELLED))
    summary = run_batch(project, mode="boxes", predictor=ShapesPredictor(), prompts=_box_prompts())
    assert summary.labelled == 0
    assert "AI instances" in dict(summary.skipped)["img2.png"]


def _add_manual(project, name: str) -> int:
    doc = project.document
    record = doc.image_by_path(name)
    if doc.category_by_name("hand") is None:
        from efficientsam_studio.annotations.commands import AddCategory

        AddCategory(doc, "hand").do()
    mask = np.zeros((record.height, record.width), dtype=bool)
    mask[0:5, 0:5] = True
    command = AddInstance.from_mask(doc, record.id, doc.category_by_name("hand").id, mask)
    command.do()
    return command.instance.id


def test_hand_made_instances_are_kept_unless_replace_manual(project):
    manual_id = _add_manual(project, "img1.png")
    summary = run_batch(project, mode="boxes", predictor=ShapesPredictor(), prompts=_box_prompts())
    doc = project.document
    record = doc.image_by_path("img1.png")
    assert summary.labelled == 2  # an image holding hand-made instances counts as labelled
    assert "hand-made" in dict(summary.skipped)["img1.png"]
    assert [i.id for i in doc.instances_of(record.id)] == [manual_id]
    params = BatchParams(overwrite=True)
    run_batch(project, mode="boxes", params=params, predictor=ShapesPredictor(), prompts=_box_prompts())
    assert doc.has_instance(manual_id)  # overwrite alone replaces only AI instances
    assert [i.source for i in doc.instances_of(record.id)] == ["manual", "ai", "ai"]
    params = BatchParams(overwrite=True, replace_manual=True)
    summary = run_batch(
        project, mode="boxes", params=params, predictor=ShapesPredictor(), prompts=_box_prompts()
    )
    assert not doc.has_instance(manual_id) and summary.manual_removed == 1
    assert all(i.source == "ai" for i in doc.instances_of(record.id))


def test_a_corrupt_image_is_reported_and_the_run_goes_on(project, image_folder):
    # the file is damaged after the project was made: its record exists, its pixels do not load
    (image_folder / "img2.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    summary = run_batch(project, mode="boxes", predictor=ShapesPredictor(), prompts=_box_prompts())
    assert summary.labelled == 2 and len(summary.failed) == 1
    assert summary.failed[0].path == "img2.png" and "img2.png" in summary.failed[0].reason
    doc = project.document
    assert doc.image_by_path("img2.png").status == ImageStatus.UNLABELLED
    assert doc.image_by_path("img3.png").status == ImageStatus.NEEDS_REVIEW
    assert any(line.startswith("failed: img2.png") for line in summary.lines())


def test_ctrl_c_mid_run_leaves_a_consistent_saved_project_that_resumes(project):
    seen = []

    def progress(event):
        seen.append(event)
        if event.outcome == "labelled" and event.done == 2:
            raise KeyboardInterrupt

    summary = run_batch(
        project,
        mode="boxes",
        predictor=ShapesPredictor(),
        prompts=_box_prompts(),
        progress=progress,
        params=BatchParams(save_every=100),
    )
    assert summary.interrupted and summary.labelled == 2
    path = project.path
    project.close()
    with Project.open(path) as reopened:
        doc = reopened.document
        statuses = [doc.image_by_path(n).status for n in SCENES]
        assert statuses == [ImageStatus.NEEDS_REVIEW, ImageStatus.NEEDS_REVIEW, ImageStatus.UNLABELLED]
        assert doc.instance_count == 3
        resumed = run_batch(reopened, mode="boxes", predictor=ShapesPredictor(), prompts=_box_prompts())
        assert resumed.labelled == 1 and len(resumed.skipped) == 2
        assert doc.instance_count == 5


class _InterruptingPredictor(ShapesPredictor):
    """Raises KeyboardInterrupt while decoding the n-th image."""

    def __init__(self, at_image: int) -> None:
        super().__init__()
        self.at_image = at_image

    def set_image(self, image):
        super().set_image(image)
        if self.encodes == self.at_image:
            raise KeyboardInterrupt


def test_ctrl_c_inside_an_image_leaves_that_image_untouched(project):
    summary = run_batch(project, mode="boxes", predictor=_InterruptingPredictor(2), prompts=_box_prompts())
    assert summary.interrupted and summary.labelled == 1
    path = project.path
    project.close()
    with Project.open(path) as reopened:
        doc = reopened.document
        assert doc.image_by_path("img2.png").status == ImageStatus.UNLABELLED
        assert doc.instances_of(doc.image_by_path("img2.png").id) == []


def test_an_interruption_while_a_result_lands_rolls_the_image_back(project, monkeypatch):
    from efficientsam_studio.annotations.commands import SetImageStatus

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(SetImageStatus, "do", interrupted)  # the last step of landing a result
    summary = run_batch(project, mode="boxes", predictor=ShapesPredictor(), prompts=_box_prompts())
    assert summary.interrupted and summary.labelled == 0
    assert project.document.instance_count == 0 and project.document.categories == []


def test_cancel_stops_between_images_and_saves(project):
    cancel = threading.Event()

    def progress(event):
        if event.outcome == "labelled":
            cancel.set()

    summary = run_batch(
        project,
        mode="everything",
        params=_everything(),
        predictor=ShapesPredictor(),
        progress=progress,
        cancel=cancel,
    )
    assert summary.cancelled and summary.labelled == 1
    assert not project.document.dirty


def test_progress_reports_each_image_and_the_grid_inside_it(project):
    events = []
    params = _everything()
    run_batch(project, mode="everything", params=params, predictor=ShapesPredictor(), progress=events.append)
    finished = [(e.done, e.total, e.outcome) for e in events if e.outcome != "working"]
    assert finished == [(1, 3, "labelled"), (2, 3, "labelled"), (3, 3, "labelled")]
    steps = [e.step for e in events if e.step is not None]
    assert steps and steps[-1] == (64, 64)


def test_periodic_saves_write_the_project_during_the_run(project):
    sizes = []

    def progress(event):
        if event.outcome == "labelled":
            sizes.append(len(project.path.read_bytes()))

    run_batch(
        project,
        mode="boxes",
        params=BatchParams(save_every=1),
        predictor=ShapesPredictor(),
        prompts=_box_prompts(),
        progress=progress,
    )
    assert sizes[0] < sizes[1] < sizes[2]  # each labelled image was on disk before the next began


def test_prompts_of_the_wrong_kind_or_missing_are_refused(project):
    with pytest.raises(BatchError, match="needs a prompt file"):
        run_batch(project, mode="boxes", predictor=ShapesPredictor())
    with pytest.raises(BatchError, match="holds boxes"):
        run_batch(project, mode="points", predictor=ShapesPredictor(), prompts=_box_prompts())
    with pytest.raises(BatchError, match="unknown batch mode"):
        run_batch(project, mode="all", predictor=ShapesPredictor())


def test_an_image_whose_boxes_all_score_below_the_minimum_is_left_for_a_later_run(project, tmp_path):
    rows = ["image,x0,y0,x1,y1,label,score"]
    for name, objects in SCENES.items():
        score = 0.3 if name == "img2.png" else 0.9
        rows += [f"{name},{x0},{y0},{x1},{y1},{label},{score}" for label, _, (x0, y0, x1, y1) in objects]
    csv = tmp_path / "boxes.csv"
    csv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    summary = run_batch(
        project, mode="boxes", predictor=ShapesPredictor(), prompts=read_box_prompts(csv, min_score=0.5)
    )
    record = project.document.image_by_path("img2.png")
    assert summary.labelled == 2 and record.status == ImageStatus.UNLABELLED
    assert not project.document.instances_of(record.id)
    ((path, reason),) = summary.skipped
    assert path == "img2.png" and "all boxes" in reason and "below the minimum" in reason
    again = run_batch(
        project, mode="boxes", predictor=ShapesPredictor(), prompts=read_box_prompts(csv, min_score=0.2)
    )
    assert again.labelled == 1 and len(project.document.instances_of(record.id)) == 1


def test_an_image_labelled_by_hand_in_progress_is_left_alone_unless_overwrite(project):
    from efficientsam_studio.annotations.commands import SetImageStatus

    manual_id = _add_manual(project, "img1.png")
    record = project.document.image_by_path("img1.png")
    SetImageStatus(project.document, record.id, ImageStatus.IN_PROGRESS).do()
    summary = run_batch(project, mode="boxes", predictor=ShapesPredictor(), prompts=_box_prompts())
    ((path, reason),) = summary.skipped
    assert summary.labelled == 2 and path == "img1.png" and "in_progress" in reason
    assert [i.id for i in project.document.instances_of(record.id)] == [manual_id]
    params = BatchParams(overwrite=True)
    run_batch(project, mode="boxes", params=params, predictor=ShapesPredictor(), prompts=_box_prompts())
    assert [i.source for i in project.document.instances_of(record.id)] == ["manual", "ai", "ai"]
