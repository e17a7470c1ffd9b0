"""Stage 2 of the trainer: finetuning EfficientSAM (encoder and decoder) for segment-anything.

Modules: :mod:`~trainer.finetune.sources` (SA-1B folders and tar shards, COCO instances),
:mod:`~trainer.finetune.datasets` (mask and prompt sampling), :mod:`~trainer.finetune.prompts`,
:mod:`~trainer.finetune.losses`, :mod:`~trainer.finetune.task` (the task of the shared loop),
:mod:`~trainer.finetune.export` (initialisation and the published export format),
:mod:`~trainer.finetune.synthetic` (SA-1B-format shapes for tests) and :mod:`~trainer.finetune.cli`
(``efsam-studio train --stage finetune`` and ``--stage make-synthetic``).
"""
