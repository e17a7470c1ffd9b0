"""Batch labelling of a project's images: the one pipeline behind ``efsam-studio label`` and the GUI.

:func:`run_batch` labels images in turn (load, encode, decode, land the masks as AI instances with status
``needs_review``), saving the project every ``save_every`` labelled images and at the end. It is resumable
and safe:

- images already labelled are skipped unless ``overwrite`` (see :mod:`.apply` for the rules), so running
  the same command again continues where a stopped run ended; images marked done are kept even then,
  unless ``replace_manual`` too;
- hand-made instances are kept unless ``replace_manual`` (which goes with ``overwrite`` only);
- an image that cannot be read or labelled is reported in the summary and the run goes on;
- ``cancel`` (a ``threading.Event`` or a function returning True) stops after the current decoder batch,
  cut or batch of grid points, in every mode: the image being labelled is left untouched (none of its
  new masks land; the next run labels it); Ctrl+C (KeyboardInterrupt) stops at once; in both cases the
  images finished so far are saved (atomic save, the previous file kept as a backup) and the summary
  says so and counts the images not reached; an image is either fully labelled or untouched.

The GUI runs :meth:`BatchJob.compute` in a worker thread and :meth:`BatchJob.apply` on the GUI thread;
:func:`run_batch` does both in the calling thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from efficientsam_studio.annotations.document import Document, ImageRecord
from efficientsam_studio.annotations.images import load_image
from efficientsam_studio.batch.apply import ApplyCounts, ApplyResult, images_to_label, skip_reason
from efficientsam_studio.batch.coco_ids import CategoryIds
from efficientsam_studio.batch.labeller import label_boxes, label_everything, label_points
from efficientsam_studio.batch.prompts import BoxPrompt, PointPrompt, Prompt, PromptSet
from efficientsam_studio.batch.prompts_io import DEFAULT_CATEGORY
from efficientsam_studio.batch.results import BatchProgress, BatchSummary, ImageFailure, ImageResult
from efficientsam_studio.engine.automatic import AutomaticMaskParams, MaskGenerationCancelled
from efficientsam_studio.errors import StudioError

Mode = Literal["everything", "boxes", "points"]
MODES: tuple[str, ...] = ("everything", "boxes", "points")
ProgressCallback = Callable[[BatchProgress], None]
CancelFlag = threading.Event | Callable[[], bool] | None


class BatchError(StudioError):
    """A batch run cannot start (wrong mode, missing prompts, bad parameters)."""


@dataclass
class BatchParams:
    """Options of a batch run.

    Attributes:
        overwrite: label images again that are already labelled (their AI instances are replaced),
            except those marked done.
        replace_manual: with ``overwrite``: also remove hand-made instances of the images labelled, and
            label images marked done again (off: both are kept).
        save_every: save the project after this many labelled images (and always at the end).
        category: category of everything-mode masks (prompts that name none get the prompt readers'
            ``default_category``).
        automatic: parameters of everything mode (grid, thresholds, NMS, crops, minimum area).
        refine_small_boxes: boxes mode: a small box is decoded again in a cut around it (one more encoder
            run per such box). Small: grown by a quarter of its size on each side (at least 8 px), it
            covers at most half of the image each way, so boxes under about a third of the image each
            way (:func:`~efficientsam_studio.engine.crop_refine.refine_crop`).
    """

    overwrite: bool = False
    replace_manual: bool = False
    save_every: int = 10
    category: str = DEFAULT_CATEGORY
    automatic: AutomaticMaskParams = field(default_factory=AutomaticMaskParams)
    refine_small_boxes: bool = False

    def validate(self) -> None:
        if self.save_every < 1:
            raise BatchError(f"save_every must be at least 1, got {self.save_every}")
        if self.replace_manual and not self.overwrite:
            raise BatchError(
                "replacing hand-made instances works on images labelled again: it needs overwrite"
            )
        if not self.category.strip():
            raise BatchError("the category of automatic masks needs a name")
        self.automatic.validate()


def _cancel_check(cancel: CancelFlag) -> Callable[[], bool]:
    if cancel is None:
        return lambda: False
    if isinstance(cancel, threading.Event):
        return cancel.is_set
    return cancel


class BatchJob:
    """A planned batch run over the images of one document.

    Build it on the thread that owns the document; :meth:`compute` only reads image files and runs the
    predictor (safe in a worker thread); :meth:`apply` changes the document.

    Attributes:
        todo: images to label, in order; ``skipped``: ``(image, reason)`` left alone;
        prompts_by_image: prompts per image id (boxes and points modes); ``unmatched``: prompt-file keys
        that fit no image.
    """

    def __init__(
        self,
        document: Document,
        folder: str | Path,
        mode: Mode,
        params: BatchParams | None = None,
        prompts: PromptSet | None = None,
        image_ids: Sequence[int] | None = None,
    ) -> None:
        if mode not in MODES:
            raise BatchError(f"unknown batch mode {mode!r}; use one of {', '.join(MODES)}")
        self.params = params or BatchParams()
        self.params.validate()
        if mode != "everything":
            if prompts is None:
                raise BatchError(f"{mode} mode needs a prompt file (--{mode} FILE)")
            if prompts.kind != mode:
                raise BatchError(f"{prompts.source} holds {prompts.kind}, not {mode}")
        self.document, self.folder, self.mode, self.prompts = document, Path(folder), mode, prompts
        params = self.params
        todo, skipped = images_to_label(document, image_ids, params.overwrite, params.replace_manual)
        self.category_ids = CategoryIds(prompts.category_ids if prompts is not None else None)
        self.prompts_by_image: dict[int, list[Prompt]] = {}
        self.unmatched: list[str] = []
        if prompts is not None:
            records = document.images if image_ids is None else [document.image(i) for i in image_ids]
            self.prompts_by_image, self.unmatched = prompts.match(records)
            without = [r for r in todo if r.id not in self.prompts_by_image]
            todo = [r for r in todo if r.id in self.prompts_by_image]
            low = prompts.images_below_min_score(records)
            skipped.extend(
                (r, f"all boxes in {prompts.source} score below the minimum score")
                if r.id in low
                else (r, f"no {mode} in {prompts.source}")
                for r in without
            )
        self.todo: list[ImageRecord] = todo
        self.skipped: list[tuple[ImageRecord, str]] = skipped

    def compute(
        self,
        image: ImageRecord,
        predictor: Any,
        cancel: Callable[[], bool] | None = None,
        step: Callable[[int, int], None] | None = None,
    ) -> ImageResult:
        """Masks of one image (nothing in the document changes).

        Raises:
            ImageLoadError / StudioError: the image cannot be read or does not fit its record.
            MaskGenerationCancelled: ``cancel`` returned true (inside the image, in any mode).
        """
        started = time.perf_counter()
        result = ImageResult(image.id, image.path)
        pixels = load_image(self.folder / image.path)
        height, width = pixels.shape[:2]
        if (height, width) != (image.height, image.width):
            raise StudioError(
                f"{image.path}: the file is {width}x{height} pixels but the project recorded "
                f"{image.width}x{image.height}; the file changed since it was added (re-add it to the "
                "project)"
            )
        if self.mode == "everything":
            label_everything(
                predictor, pixels, result, self.params.automatic, self.params.category, step, cancel
            )
        else:
            predictor.set_image(pixels)
            prompts = self.prompts_by_image.get(image.id, [])
            if self.mode == "boxes":
                boxes = [p for p in prompts if isinstance(p, BoxPrompt)]
                cuts = pixels if self.params.refine_small_boxes else None
                label_boxes(predictor, (height, width), boxes, result, cuts, cancel)
                coco_ids = {p.image_id for p in boxes if p.image_id is not None}
                if len(coco_ids) == 1:
                    result.coco_id = coco_ids.pop()
            else:
                points = [p for p in prompts if isinstance(p, PointPrompt)]
                label_points(predictor, (height, width), points, result, cancel)
        result.seconds = time.perf_counter() - started
        return result

    def skip_reason(self, image: ImageRecord) -> str | None:
        """Why this run would leave ``image`` alone as it is now (None: label it); for results that
        arrive after the image was changed meanwhile (see :func:`~.apply.skip_reason`)."""
        return skip_reason(self.document, image, self.params.overwrite, self.params.replace_manual)

    def apply(self, result: ImageResult) -> ApplyCounts:
        """Land a result in the document (atomically; see :class:`~.apply.ApplyResult`)."""
        command = self.apply_command(result)
        command.do()
        return command.counts

    def apply_command(self, result: ImageResult) -> ApplyResult:
        """The undoable command that lands ``result`` (for a GUI undo stack); not yet applied."""
        return ApplyResult(self.document, result, self.params.replace_manual, self.category_ids)


def run_batch(
    project: Any,
    images: Sequence[int] | None = None,
    mode: Mode = "everything",
    params: BatchParams | None = None,
    predictor: Any = None,
    *,
    prompts: PromptSet | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelFlag = None,
) -> BatchSummary:
    """Label the images of an open, writable project; see the module docstring.

    Args:
        project: an open :class:`~efficientsam_studio.annotations.project.Project` (``document``,
            ``folder``, ``save()``).
        images: image ids to consider (default: every image of the project, in project order).
        mode: ``everything``, ``boxes`` or ``points``.
        params: :class:`BatchParams` (defaults: no overwrite, hand-made instances kept, save every 10).
        predictor: an engine predictor (``set_image``, ``predict_batch``, ``masks_from_logits``).
        prompts: the boxes or points (``read_box_prompts`` / ``read_point_prompts``) for those modes.
        progress: called with a :class:`BatchProgress` after each image and inside everything mode.
        cancel: a ``threading.Event`` or a function; when set/true the run stops and saves.

    Returns:
        the run's :class:`BatchSummary`. Ctrl+C is caught: the project is saved, the summary says
        ``interrupted`` and is returned (callers exit as interrupted).
    """
    started = time.perf_counter()
    params = params or BatchParams()
    job = BatchJob(project.document, project.folder, mode, params, prompts, images)
    summary = BatchSummary(mode=mode, images=len(job.todo) + len(job.skipped))
    summary.unmatched_prompts = list(job.unmatched)
    summary.skipped = [(record.path, reason) for record, reason in job.skipped]
    is_cancelled = _cancel_check(cancel)
    total = len(job.todo)
    done = 0
    since_save = 0

    def report(
        record: ImageRecord, outcome: str, detail: str = "", step: tuple[int, int] | None = None
    ) -> None:
        if progress is not None:
            progress(BatchProgress(done, total, record.path, outcome, summary.instances_added, detail, step))

    try:
        for record in job.todo:
            if is_cancelled():
                summary.cancelled = True
                break
            report(record, "working")

            def step(points: int, points_total: int, record: ImageRecord = record) -> None:
                report(record, "working", step=(points, points_total))

            try:
                result = job.compute(record, predictor, cancel=is_cancelled, step=step)
                counts = job.apply(result)
            except MaskGenerationCancelled:
                summary.cancelled = True
                break
            except Exception as exc:  # one bad image must not stop a run over thousands
                done += 1
                reason = str(exc) if isinstance(exc, StudioError) else f"{type(exc).__name__}: {exc}"
                summary.failed.append(ImageFailure(record.path, reason))
                report(record, "failed", reason)
                continue
            done += 1
            since_save += 1
            summary.labelled += 1
            summary.instances_added += counts.added
            summary.instances_removed += counts.removed_ai + counts.removed_manual
            summary.manual_removed += counts.removed_manual
            summary.reviewed_relabelled += counts.reviewed
            summary.empty_masks += result.empty
            summary.skipped_prompts += result.skipped_prompts
            summary.notes.extend(result.notes)
            report(record, "labelled", f"{counts.added} masks")
            if since_save >= params.save_every:
                project.save()
                since_save = 0
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        if summary.stopped_early and done < total:
            summary.not_labelled = total - done
            summary.not_labelled_reason = "interrupted" if summary.interrupted else "cancelled"
        summary.seconds = time.perf_counter() - started
        if project.document.dirty:
            project.save()
    return summary
