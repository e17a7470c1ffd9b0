"""What batch labelling produces and reports: per-image results, progress events and the run's summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["working", "labelled", "skipped", "failed"]


@dataclass(frozen=True)
class NewMask:
    """A mask computed for an image, before it becomes an instance of the document.

    Attributes:
        category: category name (created in the document when absent).
        rle: compressed COCO RLE at the image's full size.
        score: the instance's ``score``: the detector's confidence for a box that has one, else the
            decoder's predicted IoU of the mask (then also in ``attributes["predicted_iou"]``).
        attributes: JSON-able details kept on the instance (prompt kind, detector score, box, ...).
    """

    category: str
    rle: dict[str, Any]
    score: float
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImageResult:
    """Masks computed for one image. ``empty``: prompts whose mask came out empty (nothing to keep);
    ``skipped_prompts``: prompts not decoded (outside the image); ``notes``: messages
    for the user (points left out by the decoder's limit, each skipped prompt with the reason);
    ``coco_id``: the image's id in the COCO file its boxes came from, if any (see :mod:`.coco_ids`)."""

    image_id: int
    path: str
    masks: list[NewMask] = field(default_factory=list)
    empty: int = 0
    skipped_prompts: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    coco_id: int | None = None


@dataclass(frozen=True)
class BatchProgress:
    """A progress event of a batch run.

    Attributes:
        done: images finished so far (labelled, skipped or failed); ``total``: images in the run.
        path: the image concerned (project-relative).
        outcome: ``working`` (inside an image: ``step`` = ``(points done, points total)`` of everything
            mode), or what happened to the image: ``labelled``, ``skipped`` or ``failed``.
        instances: AI instances added so far in the run.
        detail: reason of a skip or failure, or a note.
    """

    done: int
    total: int
    path: str
    outcome: Outcome
    instances: int = 0
    detail: str = ""
    step: tuple[int, int] | None = None


@dataclass(frozen=True)
class ImageFailure:
    """An image the run could not label, with the reason (an error message naming the file)."""

    path: str
    reason: str


@dataclass
class BatchSummary:
    """What a batch run did.

    ``images``: images the run considered; ``labelled``: images that received new masks (possibly none, if
    no mask survived); ``skipped``: ``(path, reason)`` of images left alone (already labelled, no prompts);
    ``failed``: images that could not be labelled; ``not_labelled``: images the run meant to label but
    did not reach, with ``not_labelled_reason`` (the model could not be loaded, the run was cancelled);
    ``reviewed_relabelled``: images marked done that were labelled again (overwrite with replace-manual);
    ``instances_added`` / ``instances_removed``: AI
    instances written and old ones replaced (``manual_removed``: hand-made ones replaced on request);
    ``empty_masks``: prompts whose mask was empty; ``skipped_prompts``: prompts not decoded (outside their
    image; the reasons are in ``notes``); ``unmatched_prompts``: image keys of the
    prompt file that fit no image of the project; ``cancelled``: stopped by the cancel flag;
    ``interrupted``: stopped by Ctrl+C (KeyboardInterrupt); ``seconds``: wall time.
    """

    mode: str
    images: int = 0
    labelled: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[ImageFailure] = field(default_factory=list)
    not_labelled: int = 0
    not_labelled_reason: str = ""
    reviewed_relabelled: int = 0
    instances_added: int = 0
    instances_removed: int = 0
    manual_removed: int = 0
    empty_masks: int = 0
    skipped_prompts: int = 0
    unmatched_prompts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cancelled: bool = False
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def stopped_early(self) -> bool:
        return self.cancelled or self.interrupted

    def lines(self, max_listed: int = 20) -> list[str]:
        """A human-readable report, one line each (failures listed, at most ``max_listed``; skipped
        images grouped by reason, :meth:`skipped_lines`)."""
        per_minute = 60.0 * self.labelled / self.seconds if self.seconds > 0 else 0.0
        not_labelled = ""
        if self.not_labelled:
            why = f": {self.not_labelled_reason}" if self.not_labelled_reason else ""
            not_labelled = f", {self.not_labelled} not labelled{why}"
        out = [
            f"mode: {self.mode}",
            f"images: {self.images} considered, {self.labelled} labelled, {len(self.skipped)} skipped, "
            f"{len(self.failed)} failed{not_labelled}",
            f"instances: {self.instances_added} added, {self.instances_removed} replaced"
            + (f" (of which {self.manual_removed} hand-made)" if self.manual_removed else ""),
            f"time: {self.seconds:.1f} s ({per_minute:.1f} images/min)",
        ]
        if self.reviewed_relabelled:
            out.append(f"reviewed: {self.reviewed_relabelled} images marked done were labelled again")
        out.extend(self.skipped_lines(max_listed))
        if self.empty_masks:
            out.append(f"empty masks: {self.empty_masks} prompts gave no mask")
        if self.skipped_prompts:
            out.append(f"skipped prompts: {self.skipped_prompts} (outside their image; see notes)")
        if self.unmatched_prompts:
            listed = ", ".join(self.unmatched_prompts[:max_listed])
            more = len(self.unmatched_prompts) - max_listed
            suffix = f" (+{more} more)" if more > 0 else ""
            out.append(f"prompts for images not in the project: {listed}{suffix}")
        for failure in self.failed[:max_listed]:
            out.append(f"failed: {failure.path}: {failure.reason}")
        if len(self.failed) > max_listed:
            out.append(f"failed: ... and {len(self.failed) - max_listed} more")
        for note in self.notes[:max_listed]:
            out.append(f"note: {note}")
        if len(self.notes) > max_listed:
            out.append(f"note: ... and {len(self.notes) - max_listed} more")
        if self.interrupted:
            out.append("interrupted by Ctrl+C: finished images are saved; run again to resume")
        elif self.cancelled:
            out.append("cancelled: finished images are saved; run again to resume")
        return out

    def skipped_lines(self, max_listed: int = 20, paths_per_reason: int = 5) -> list[str]:
        """The skipped images grouped by reason (in order of first appearance), ``paths_per_reason``
        paths named per reason and ``max_listed`` reasons at most, each with "and N more"."""
        groups: dict[str, list[str]] = {}
        for path, reason in self.skipped:
            groups.setdefault(reason, []).append(path)
        out = []
        for reason, paths in list(groups.items())[:max_listed]:
            named = ", ".join(paths[:paths_per_reason])
            if len(paths) > paths_per_reason:
                named += f" and {len(paths) - paths_per_reason} more"
            out.append(f"skipped {len(paths)}: {named}: {reason}")
        if len(groups) > max_listed:
            rest = sum(len(paths) for paths in list(groups.values())[max_listed:])
            out.append(f"skipped: ... and {rest} more images for {len(groups) - max_listed} other reasons")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())
