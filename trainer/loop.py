"""The training loop shared by SAMI pretraining and finetuning.

``fit(task, config)`` runs a :class:`trainer.task.TrainTask` on one process, on several GPUs or on several
CPU processes (``torchrun``), with AdamW, a per-step learning-rate schedule, gradient accumulation, bf16
autocast on CUDA, atomic checkpoints with exact mid-epoch resume, JSON-lines logs and a progress bar.

Ctrl+C: an optimiser step, its log record and a checkpoint write are each finished before the interrupt
is taken (:mod:`trainer.interrupt`; a second Ctrl+C abandons a checkpoint write). A single-process run
then writes a checkpoint at its last completed optimiser step, exactly as ``max_steps`` does, and says
which step ``--resume`` continues from; a run of several processes keeps its last regular checkpoint
(writing one needs every process, which an interrupt may have stopped anywhere).

Counting: a *micro-batch* is ``batch_size`` samples on one process; an *optimiser step* consumes ``accum``
micro-batches on each of ``world_size`` processes, i.e. ``effective_batch = batch_size * accum * world``
samples. Steps per epoch = ``(len(dataset) // world) // batch_size // accum``; leftovers are dropped.
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from efficientsam_studio.errors import CheckpointError, StudioError
from trainer.checkpoint import (
    atomic_torch_save,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    seed_everything,
)
from trainer.config import PRECISIONS, RESUME_AND_OVERWRITE, FitResult, TrainConfig
from trainer.distributed import (
    DistInfo,
    all_reduce_mean,
    all_reduce_sum_int,
    any_process,
    barrier,
    cleanup_distributed,
    gather_objects,
    setup_distributed,
)
from trainer.interrupt import hold_sigint
from trainer.resume import CHECKPOINT_FORMAT, TrainConfigError, check_resume, resume_path
from trainer.run_folder import CHECKPOINT_NAME, check_inputs, run_files, set_aside
from trainer.runlog import RunLog
from trainer.sampler import ResumableDistributedSampler
from trainer.schedule import LrSchedule, apply_lr, scaled_lr
from trainer.task import TrainTask

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
    "PRECISIONS",
    "FitResult",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainConfigError",
    "fit",
]


class NonFiniteLossError(StudioError):
    """The loss became NaN or infinite; training stopped without overwriting the last checkpoint."""


def _autocast(device: torch.device, precision: str):
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _as_float(value: Any) -> float:
    return float(value.detach().float().item()) if isinstance(value, torch.Tensor) else float(value)


def _from_worker(exc: StudioError) -> StudioError:
    """A data-loader worker's StudioError comes back with the worker's traceback in its message; the same
    error with the original one-line message (other errors are returned as they are)."""
    text = str(exc)
    if not text.startswith("Caught ") or "Original Traceback" not in text:
        return exc
    last = text.rstrip().splitlines()[-1]
    marker = f"{type(exc).__name__}: "
    return type(exc)(last.split(marker, 1)[1] if marker in last else last)


class _Run:
    """State of one ``fit`` call; split from ``fit`` to keep each piece readable."""

    def __init__(self, task: TrainTask, config: TrainConfig, info: DistInfo) -> None:
        self.task, self.config, self.info = task, config, info
        if config.precision not in PRECISIONS:
            raise TrainConfigError(f"precision must be one of {PRECISIONS}, got {config.precision!r}")
        if config.batch_size < 1 or config.accum < 1:
            raise TrainConfigError("--batch-size and --accum must be at least 1")
        if config.overwrite and config.resume:
            raise TrainConfigError(RESUME_AND_OVERWRITE)
        self.out_dir = Path(config.out_dir)
        self.replaced = run_files(task.export_files)
        if config.overwrite:
            check_inputs(self.out_dir, self.replaced, task.input_paths())
        self.device = info.device
        seed_everything(config.seed)
        model = task.build_model().to(self.device)
        task.setup(self.device)
        seed_everything(config.seed + info.rank)
        self.dataset = task.train_dataset()
        self.sampler = ResumableDistributedSampler(
            self.dataset, num_replicas=info.world_size, rank=info.rank, seed=config.seed, drop_last=True
        )
        self.per_rank = self.sampler.num_samples
        self.effective_batch = config.batch_size * config.accum * info.world_size
        self.steps_per_epoch = self.per_rank // config.batch_size // config.accum
        if self.steps_per_epoch < 1:
            raise TrainConfigError(
                f"the dataset has {len(self.dataset)} samples, fewer than one optimiser step needs "
                f"(batch size {config.batch_size} x accumulation {config.accum} x "
                f"{info.world_size} processes); "
                "lower --batch-size/--accum or add images"
            )
        self.total_steps = self.steps_per_epoch * config.epochs
        peak = config.lr if config.lr is not None else scaled_lr(config.blr, self.effective_batch)
        self.schedule = LrSchedule(
            peak_lr=peak,
            total_steps=self.total_steps,
            warmup_steps=round(config.warmup_epochs * self.steps_per_epoch),
            decay=config.decay,
            min_lr=config.min_lr,
        )
        if info.is_main and 0 < config.epochs <= config.warmup_epochs:
            warnings.warn(
                f"--warmup-epochs {config.warmup_epochs:g} is not below --epochs {config.epochs}: the run "
                f"ends inside its warmup and never reaches its peak lr {peak:.3g}; "
                "give a shorter --warmup-epochs",
                stacklevel=3,
            )
        self.model = model
        self.optimizer = torch.optim.AdamW(
            task.parameter_groups(model, config.weight_decay), lr=peak, betas=tuple(config.betas)
        )
        use_scaler = self.device.type == "cuda" and config.precision == "fp16"
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.autocast = _autocast(self.device, config.precision)
        self.step = 0
        self.epoch = 0
        self.step_in_epoch = 0
        self.totals = {key: 0 for key in ("corrupt_images", *task.count_keys)}
        self.saved_step: int | None = None  # the step of the checkpoint in out_dir, once known
        self.updating = False  # True while an optimiser step or an epoch change is half done
        self._maybe_resume()
        if info.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp: nn.Module = nn.parallel.DistributedDataParallel(
                self.model, device_ids=ids, find_unused_parameters=task.find_unused_parameters
            )
        else:
            self.ddp = self.model
        if config.overwrite and info.is_main:
            folder, moved = set_aside(self.out_dir, self.replaced)
            if folder is not None:
                print(f"--overwrite: moved the earlier run's {', '.join(moved)} to {folder}", file=sys.stderr)
        self.log = RunLog(
            self.out_dir, enabled=info.is_main, tensorboard=config.tensorboard, start_step=self.step
        )
        self.loader = DataLoader(
            self.dataset,
            batch_size=config.batch_size,
            sampler=self.sampler,
            num_workers=config.workers,
            collate_fn=task.collate,
            drop_last=True,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    # ----------------------------------------------------------------- checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_NAME

    def _maybe_resume(self) -> None:
        path = resume_path(self.config.resume, self.checkpoint_path, self.info.is_main)
        if path is None:
            return
        state = load_checkpoint(path)
        check_resume(
            path,
            state,
            self.task,
            self.config.to_plain(),
            self.schedule,
            self.effective_batch,
            self.steps_per_epoch,
            self.info.is_main,
        )
        trained = state.get("describe") or {}
        wanted = self.task.describe()
        try:
            self.model.load_state_dict(state["model"], strict=True)
        except RuntimeError as exc:
            changed = [k for k in wanted if k in trained and trained[k] != wanted[k]]
            differences = "; ".join(f"{k} was {trained[k]}, now {wanted[k]}" for k in changed)
            raise CheckpointError(
                f"{path} does not fit this model ({differences or 'other parameter shapes'}); "
                "resume with the options the run was trained with"
            ) from exc
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch, self.step_in_epoch = state["step"], state["epoch"], state["step_in_epoch"]
        saved = state.get("count_totals") or {"corrupt_images": state.get("corrupt_images_total", 0)}
        for key, value in saved.items():
            self.totals[key] = int(value)
        rngs = state.get("rng") or []
        if len(rngs) == self.info.world_size:
            restore_rng_state(rngs[self.info.rank])
        if path.resolve() == self.checkpoint_path.resolve():
            self.saved_step = self.step

    def save_checkpoint(self, presses_to_abort: int = 2) -> Path:
        """Write the checkpoint on rank 0 (every rank contributes its RNG state); Ctrl+C number
        ``presses_to_abort`` abandons the write (see :func:`trainer.checkpoint.atomic_torch_save`)."""
        rngs = gather_objects(capture_rng_state())
        if self.info.is_main:
            state = {
                "format": CHECKPOINT_FORMAT,
                "version": 1,
                "task": self.task.name,
                "describe": self.task.describe(),
                "config": self.config.to_plain(),
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "schedule": self.schedule.state_dict(),
                "step": self.step,
                "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch,
                "steps_per_epoch": self.steps_per_epoch,
                "effective_batch": self.effective_batch,
                "world_size": self.info.world_size,
                "sampler": {
                    "seed": self.config.seed,
                    "epoch": self.epoch,
                    "start": self.step_in_epoch * self.config.batch_size * self.config.accum,
                },
                "corrupt_images_total": self.totals["corrupt_images"],
                "count_totals": dict(self.totals),
                "rng": rngs,
            }
            with hold_sigint(presses_to_abort):
                atomic_torch_save(state, self.checkpoint_path, presses_to_abort)
                self.saved_step = self.step
        barrier()
        return self.checkpoint_path

    def _checkpoint_after_interrupt(self) -> None:
        """On Ctrl+C: write a checkpoint at the last completed optimiser step (one process) and say which
        step ``--resume`` continues from."""
        if not self.info.is_main:
            return
        path = self.checkpoint_path
        kept = (
            f"{path} holds step {self.saved_step}"
            if self.saved_step is not None
            else "no checkpoint was written"
        )
        if self.updating or self.info.distributed:
            why = "during an optimiser step" if self.updating else f"after optimiser step {self.step}"
            resume = (
                "--resume continues from it" if self.saved_step is not None else "--resume starts at step 0"
            )
            print(f"interrupted {why}: {kept}; {resume}", file=sys.stderr)
            return
        if self.saved_step != self.step:
            try:
                self.save_checkpoint(presses_to_abort=1)
            except KeyboardInterrupt:
                print(
                    f"interrupted again while writing the checkpoint of step {self.step}: {kept}",
                    file=sys.stderr,
                )
                raise
        print(
            f"interrupted: checkpoint {path} holds optimiser step {self.step} (epoch {self.epoch}); "
            f"--resume continues from step {self.step}",
            file=sys.stderr,
        )

    @contextlib.contextmanager
    def _update(self):
        """A change of the run's state that must happen whole (an optimiser step with its counters and
        log record, an epoch change): Ctrl+C is held until it is done."""
        with hold_sigint():
            self.updating = True
            yield
            self.updating = False

    # ----------------------------------------------------------------- training
    def _check_finite(self, loss: torch.Tensor) -> None:
        bad = not bool(torch.isfinite(loss.detach()).all())
        if self.info.distributed:
            bad = any_process(bad, self.device)
        if bad:
            last = self.checkpoint_path if self.checkpoint_path.is_file() else None
            where = f"the last checkpoint {last} is untouched" if last else "no checkpoint was written yet"
            raise NonFiniteLossError(
                f"the loss became non-finite at epoch {self.epoch}, optimiser step {self.step + 1} "
                f"(lr {self.schedule.lr_at(self.step):.3g}); {where}. Lower --lr/--blr, use --precision fp32 "
                "or check the data, then resume with --resume"
            )

    def _optimizer_step(self) -> None:
        if self.config.clip_grad:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def _accumulate(self, micro_batches: list[Any]) -> tuple[dict[str, float], dict[str, int]]:
        """Forward and backward every micro-batch of one optimiser step; returns the summed metrics and
        counts. The model and the optimiser are not changed yet, so an interrupt here loses nothing."""
        apply_lr(self.optimizer, self.schedule.lr_at(self.step))
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for i, batch in enumerate(micro_batches):
            last = i == len(micro_batches) - 1
            sync = contextlib.nullcontext() if last or not self.info.distributed else self.ddp.no_sync()
            with sync:
                with self.autocast():
                    out = self.task.train_step(self.ddp, batch, self.device)
                loss = out["loss"]
                self._check_finite(loss)
                self.scaler.scale(loss.float() / len(micro_batches)).backward()
            for key, value in out.items():
                if key in self.task.count_keys:
                    counts[key] = counts.get(key, 0) + int(round(_as_float(value)))
                else:
                    sums[key] = sums.get(key, 0.0) + _as_float(value)
        return sums, counts

    def _finish_step(
        self, sums: dict[str, float], counts: dict[str, int], micro_batches: int
    ) -> dict[str, float]:
        """Update the weights, count the step and reduce its metrics over processes (inside
        :meth:`_update`)."""
        lr = self.schedule.lr_at(self.step)
        self._optimizer_step()
        self.step += 1
        self.step_in_epoch += 1
        metrics = {k: v / micro_batches for k, v in sums.items()}
        metrics = all_reduce_mean(metrics, self.device)
        for key, value in counts.items():
            total = all_reduce_sum_int(value, self.device)
            metrics[key] = float(total)
            self.totals[key] = self.totals.get(key, 0) + total
        metrics["lr"] = lr
        return metrics

    def _epoch_batches(self):
        accum = self.config.accum
        group: list[Any] = []
        try:
            for batch in self.loader:
                group.append(batch)
                if len(group) == accum:
                    yield group
                    group = []
        except StudioError as exc:
            raise _from_worker(exc) from None

    def _train(self, pbar) -> tuple[dict[str, float], bool]:
        """Train up to the last epoch or ``max_steps``; returns the last step's metrics and whether the
        run stopped at ``max_steps``."""
        cfg = self.config
        metrics: dict[str, float] = {}
        stopped = cfg.max_steps is not None and self.step >= cfg.max_steps
        while self.epoch < cfg.epochs and not stopped:
            self.sampler.set_epoch(self.epoch)
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(self.epoch)
            self.sampler.set_start(self.step_in_epoch * cfg.batch_size * cfg.accum)
            tick = time.perf_counter()
            for group in self._epoch_batches():
                if self.step_in_epoch >= self.steps_per_epoch:
                    break
                sums, counts = self._accumulate(group)
                with self._update():
                    metrics = self._finish_step(sums, counts, len(group))
                    now = time.perf_counter()
                    metrics["images_per_s"] = self.effective_batch / max(now - tick, 1e-9)
                    tick = now
                    due = self.step % cfg.log_every == 0 or self.step == self.total_steps
                    if self.info.is_main and due:
                        totals = {f"{key}_total": value for key, value in self.totals.items()}
                        self.log.log({"step": self.step, "epoch": self.epoch, **metrics, **totals})
                if pbar is not None:
                    pbar.update(1)
                    pbar.set_postfix(epoch=self.epoch, loss=f"{metrics.get('loss', float('nan')):.4g}")
                if cfg.max_steps is not None and self.step >= cfg.max_steps:
                    stopped = True
                    break
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
            if not stopped:
                extra = self.task.on_epoch_end(_unwrap(self.ddp), self.epoch)
                if extra and self.info.is_main:
                    self.log.log({"step": self.step, "epoch": self.epoch, **extra})
                with self._update():
                    self.epoch += 1
                    self.step_in_epoch = 0
            self.save_checkpoint()
        return metrics, stopped

    def run(self) -> FitResult:
        pbar = None
        if self.info.is_main and self.config.progress:
            from tqdm import tqdm

            pbar = tqdm(total=self.total_steps, initial=self.step, unit="step", dynamic_ncols=True)
        self.ddp.train()
        try:
            metrics, stopped = self._train(pbar)
        except KeyboardInterrupt:
            if pbar is not None:
                pbar.close()
                pbar = None
            self._checkpoint_after_interrupt()
            raise
        finally:
            if pbar is not None:
                pbar.close()
            self.log.close()
        export_path = None
        if self.info.is_main:
            export_path = self.task.export(_unwrap(self.ddp), self.out_dir)
        barrier()
        return FitResult(
            step=self.step,
            epoch=self.epoch,
            metrics=metrics,
            export_path=export_path,
            checkpoint_path=self.checkpoint_path,
            corrupt_images=self.totals["corrupt_images"],
            stopped_early=stopped and self.step < self.total_steps,
            totals=dict(self.totals),
        )


def fit(task: TrainTask, config: TrainConfig, info: DistInfo | None = None) -> FitResult:
    """Train ``task`` with ``config``; joins the torchrun process group when launched by torchrun.

    Rank 0 writes ``out_dir/checkpoint.pt``, ``out_dir/log.jsonl`` and the task's export; the returned
    :class:`FitResult` has ``export_path`` set on rank 0 only.
    """
    own_group = info is None
    info = info or setup_distributed(config.device)
    try:
        return _Run(task, config, info).run()
    finally:
        if own_group:
            cleanup_distributed()
