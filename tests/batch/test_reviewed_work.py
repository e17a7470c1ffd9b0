"""Work the user has done is kept by batch runs: edited, relabelled and merged AI masks count as
hand-made, images marked done are kept by overwrite, and images holding imported instances count as
labelled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.commands import (
    AddCategory,
    AddInstance,
    Merge,
    Relabel,
    SetImageStatus,
    UpdateInstance,
)
from efficientsam_studio.annotations.document import ImageStatus
from efficientsam_studio.batch import BatchError, BatchParams, BoxPrompt, PromptSet, run_batch
from tests.batch.conftest import SCENES
from tests.batch.fake_predictor import ShapesPredictor


def _prompts() -> PromptSet:
    prompts = PromptSet("boxes", source=Path("boxes.csv"))
    for name, objects in SCENES.items():
        for label, _, box in objects:
            prompts.add(name, BoxPrompt(tuple(float(v) for v in box), label, 0.9, f"{name}:{label}"))
    return prompts


def _run(project, **params):
    return run_batch(
        project, mode="boxes", params=BatchParams(**params), predictor=ShapesPredictor(), prompts=_prompts()
    )


def _first_ai(project, name: str):
    doc = project.document
    return doc.instances_of(doc.image_by_path(name).id)[0]


def test_relabelled_and_merged_ai_instances_become_hand_made(project):
    _run(project)
    doc = project.document
    AddCategory(doc, "tabby").do()
    relabelled = _first_ai(project, "img1.png")
    Relabel(doc, [relabelled.id], doc.category_by_name("tabby").id).do()
    assert doc.instance(relabelled.id).source == "manual"
    assert doc.instance(relabelled.id).score == relabelled.score  # the mask is the model's still
    first, second = doc.instances_of(doc.image_by_path("img3.png").id)
    Merge(doc, [first.id, second.id]).do()
    assert doc.instance(first.id).source == "manual"


def test_overwrite_keeps_ai_masks_the_user_corrected(project):
    _run(project)
    doc = project.document
    record = doc.image_by_path("img1.png")
    edited = _first_ai(project, "img1.png")
    corrected = np.zeros((record.height, record.width), bool)
    corrected[10:50, 10:30] = True
    UpdateInstance(doc, edited.id, rle=masks.encode(corrected), source="manual", text="Move vertex").do()
    AddCategory(doc, "tabby").do()
    relabelled = doc.instances_of(doc.image_by_path("img2.png").id)[0]
    Relabel(doc, [relabelled.id], doc.category_by_name("tabby").id).do()
    summary = _run(project, overwrite=True)
    assert summary.labelled == 3 and summary.manual_removed == 0
    assert doc.instance(edited.id).area == 800 and doc.instance(relabelled.id).category_id == (
        doc.category_by_name("tabby").id
    )
    assert [i.source for i in doc.instances_of(record.id)] == ["manual", "ai", "ai"]


def test_overwrite_keeps_images_marked_done_unless_replace_manual(project):
    _run(project)
    doc = project.document
    record = doc.image_by_path("img1.png")
    kept = [i.id for i in doc.instances_of(record.id)]
    SetImageStatus(doc, record.id, ImageStatus.DONE).do()
    summary = _run(project, overwrite=True)
    assert summary.labelled == 2 and summary.reviewed_relabelled == 0
    assert "marked done" in dict(summary.skipped)["img1.png"]
    assert [i.id for i in doc.instances_of(record.id)] == kept and doc.image(
        record.id
    ).status == ImageStatus.DONE
    summary = _run(project, overwrite=True, replace_manual=True)
    assert summary.labelled == 3 and summary.reviewed_relabelled == 1
    assert any("1 images marked done were labelled again" in line for line in summary.lines())
    assert not set(kept) & {i.id for i in doc.instances_of(record.id)}
    assert doc.image(record.id).status == ImageStatus.NEEDS_REVIEW


def test_an_unlabelled_image_holding_imported_instances_counts_as_labelled(project):
    doc = project.document
    AddCategory(doc, "cat").do()
    record = doc.image_by_path("img2.png")
    ((_, _, (x0, y0, x1, y1)),) = SCENES["img2.png"]
    imported = np.zeros((record.height, record.width), bool)
    imported[y0:y1, x0:x1] = True
    add = AddInstance.from_mask(doc, record.id, doc.category_by_name("cat").id, imported)  # manual
    add.do()
    assert doc.image(record.id).status == ImageStatus.UNLABELLED
    summary = _run(project)
    assert summary.labelled == 2 and "hand-made" in dict(summary.skipped)["img2.png"]
    assert [i.id for i in doc.instances_of(record.id)] == [add.instance.id]  # not doubled
    summary = _run(project, overwrite=True)
    assert [i.source for i in doc.instances_of(record.id)] == ["manual", "ai"]  # asked for: added on top


def test_replacing_hand_made_instances_needs_overwrite(project):
    with pytest.raises(BatchError, match="needs overwrite"):
        _run(project, replace_manual=True)
    assert project.document.instance_count == 0
