"""Batch labelling of image folders: segment everything, boxes to masks, points to masks.

The pipeline (:func:`run_batch`, :class:`BatchJob`) is shared by ``efsam-studio label`` and the GUI's batch
dialog; prompt files are read by :func:`read_box_prompts` and :func:`read_point_prompts`. Imports neither Qt
nor torch.
"""

from efficientsam_studio.batch.apply import ApplyResult, apply_result, images_to_label, skip_reason
from efficientsam_studio.batch.pipeline import MODES, BatchError, BatchJob, BatchParams, run_batch
from efficientsam_studio.batch.prompts import BoxPrompt, PointPrompt, PromptFileError, PromptSet
from efficientsam_studio.batch.prompts_io import read_box_prompts, read_point_prompts
from efficientsam_studio.batch.results import (
    BatchProgress,
    BatchSummary,
    ImageFailure,
    ImageResult,
    NewMask,
)

__all__ = [
    "MODES",
    "ApplyResult",
    "BatchError",
    "BatchJob",
    "BatchParams",
    "BatchProgress",
    "BatchSummary",
    "BoxPrompt",
    "ImageFailure",
    "ImageResult",
    "NewMask",
    "PointPrompt",
    "PromptFileError",
    "PromptSet",
    "apply_result",
    "images_to_label",
    "read_box_prompts",
    "read_point_prompts",
    "run_batch",
    "skip_reason",
]
