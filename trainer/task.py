"""The interface between the shared training loop and one kind of training (SAMI, finetuning).

A task owns its model, data and loss; :func:`trainer.loop.fit` owns everything else (devices, DDP, the
optimiser and schedule, mixed precision, accumulation, checkpoints, logs, resume, export timing).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, default_collate


class TrainTask(ABC):
    """One kind of training, plugged into :func:`trainer.loop.fit`.

    Call order on every process: ``build_model`` (after seeding, identical on every rank), ``setup(device)``
    (move frozen helpers such as a teacher), ``train_dataset``; then per micro-batch
    ``train_step(model, batch, device)`` under autocast, where ``model`` may be wrapped in DDP (call it,
    do not reach into it); ``on_epoch_end``; at the end ``export`` on rank 0 with the unwrapped model.
    If the dataset has ``set_epoch(epoch)``, the loop calls it before each epoch (data-loader workers are
    not persistent, so every epoch's workers see it); datasets should derive their randomness from
    ``(seed, epoch, index)`` so that runs resume exactly and do not depend on the number of processes.
    """

    #: short name stored in checkpoints; a checkpoint of another task is refused on resume
    name: str = "task"
    #: keys of the ``train_step`` dict that are counts: summed over micro-batches and processes and
    #: accumulated over the run (logged as ``<key>_total``); every other key is averaged
    count_keys: tuple[str, ...] = ()
    #: passed to DistributedDataParallel: True when some parameters may get no gradient in a step
    #: (e.g. prompt embeddings of a prompt kind absent from the batch)
    find_unused_parameters: bool = False
    #: ``describe`` entries a resumed run may change (file locations, not settings of what is trained)
    resume_may_change: tuple[str, ...] = ()
    #: the option that sets a ``describe`` entry (dotted keys for nested dicts), for resume messages
    option_names: dict[str, str] = {}
    #: the names :meth:`export` writes into the run folder (``--overwrite`` moves an earlier run's aside)
    export_files: tuple[str, ...] = ()

    @abstractmethod
    def build_model(self) -> nn.Module:
        """The trainable module (everything the optimiser updates), on the CPU."""

    @abstractmethod
    def train_dataset(self) -> Dataset:
        """The training dataset; items are collated by :meth:`collate`."""

    @abstractmethod
    def train_step(self, model: nn.Module, batch: Any, device: torch.device) -> dict[str, torch.Tensor]:
        """Forward one micro-batch; return ``{"loss": scalar tensor with grad, other scalars...}``.

        ``loss`` must be a mean over the micro-batch's samples, so that DDP's gradient averaging equals
        one process reading the whole global batch. Under DDP, compute everything that needs gradients
        in a single call of ``model`` (several forward passes, e.g. iterative clicks, belong inside the
        module's own ``forward``), since DDP expects one forward per backward.
        """

    @abstractmethod
    def export(self, model: nn.Module, out_dir: Path) -> Path:
        """Write the deliverable weights of the run into ``out_dir`` and return the file's path."""

    def input_paths(self) -> dict[str, Path | None]:
        """The files and folders the run reads (weights it starts from, a teacher, data), keyed by the
        option that names them; ``--overwrite`` refuses to move one of them aside."""
        return {}

    def setup(self, device: torch.device) -> None:  # noqa: B027 - optional hook
        """Move frozen, non-trained helpers (a teacher) to ``device``."""

    def collate(self, items: list[Any]) -> Any:
        """Turn dataset items into a batch (torch's default collation)."""
        return default_collate(items)

    def no_weight_decay(self) -> set[str]:
        """Parameter names (as in ``model.named_parameters()``) excluded from weight decay."""
        return set()

    def parameter_groups(self, model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
        """AdamW groups: decay on matrices, none on 1-D tensors (norms, biases) and ``no_weight_decay``."""
        skip = self.no_weight_decay()
        decay, no_decay = [], []
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            if param.ndim <= 1 or name.endswith(".bias") or name in skip:
                no_decay.append(param)
            else:
                decay.append(param)
        groups = [{"params": decay, "weight_decay": weight_decay}]
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0})
        return groups

    def on_epoch_end(self, model: nn.Module, epoch: int) -> dict[str, float]:
        """Optional per-epoch evaluation on every process; values are logged by rank 0."""
        return {}

    def describe(self) -> dict[str, Any]:
        """Plain-data description of the task (stored in checkpoints and exports)."""
        return {"task": self.name}

    def resume_settings(self, described: dict[str, Any]) -> dict[str, Any]:
        """The settings in ``described`` (what :meth:`describe` returned, for this run or for the run a
        checkpoint was written by) that a resumed run must keep, keyed by the option that sets them.

        Default: every entry but ``task`` and :attr:`resume_may_change`, nested dicts flattened to dotted
        keys, renamed by :attr:`option_names`. A resume that changes one of them is refused.
        """
        flat = flatten(
            {k: v for k, v in described.items() if k != "task" and k not in self.resume_may_change}
        )
        return {self.option_names.get(key, key): value for key, value in flat.items()}


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
