"""The shared loop on a toy task: schedule, accumulation, resume, non-finite stop, checkpoints, sampler."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from efficientsam_studio.errors import CheckpointError
from trainer.checkpoint import atomic_torch_save, capture_rng_state, load_checkpoint, restore_rng_state
from trainer.loop import NonFiniteLossError, TrainConfig, TrainConfigError, fit
from trainer.runlog import read_log
from trainer.sampler import ResumableDistributedSampler
from trainer.schedule import LrSchedule, scaled_lr
from trainer.task import TrainTask


class _Pairs(Dataset):
    """``y = x @ A`` with per-sample noise drawn from (epoch, index), so augmentation changes per epoch."""

    def __init__(self, n: int = 32) -> None:
        rng = np.random.default_rng(0)
        self.x = torch.from_numpy(rng.normal(size=(n, 4)).astype(np.float32))
        self.y = self.x @ torch.tensor([[1.0, -2.0], [0.5, 0.0], [0.0, 1.0], [2.0, 1.0]])
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([self.epoch, i])
        return {
            "x": self.x[i] + torch.from_numpy(rng.normal(scale=0.01, size=4).astype(np.float32)),
            "y": self.y[i],
        }


class _Linear(TrainTask):
    name = "toy"
    export_files = ("toy.pt",)

    def __init__(self, nan_at_step: int | None = None) -> None:
        self.nan_at_step = nan_at_step
        self.calls = 0

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))

    def train_dataset(self) -> Dataset:
        return _Pairs()

    def train_step(self, model, batch, device):
        self.calls += 1
        loss = (model(batch["x"].to(device)) - batch["y"].to(device)).pow(2).mean()
        if self.nan_at_step is not None and self.calls > self.nan_at_step:
            loss = loss * float("nan")
        return {"loss": loss}

    def export(self, model, out_dir: Path) -> Path:
        return atomic_torch_save({"model": model.state_dict()}, Path(out_dir) / "toy.pt")


def _config(out: Path, **kw) -> TrainConfig:
    base = dict(
        out_dir=out, epochs=3, batch_size=4, lr=0.05, warmup_epochs=1, progress=False, tensorboard=False
    )
    base.update(kw)
    return TrainConfig(**base)


def _params(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_schedule_warmup_cosine_and_linear():
    assert scaled_lr(1.5e-4, 4096) == pytest.approx(2.4e-3)
    cos = LrSchedule(peak_lr=1.0, total_steps=100, warmup_steps=10, decay="cosine", min_lr=0.1)
    assert cos.lr_at(0) == 0 and cos.lr_at(5) == pytest.approx(0.5) and cos.lr_at(10) == pytest.approx(1.0)
    assert cos.lr_at(55) == pytest.approx(0.55) and cos.lr_at(100) == pytest.approx(0.1)
    lin = LrSchedule(peak_lr=1.0, total_steps=100, warmup_steps=0, decay="linear")
    assert lin.lr_at(25) == pytest.approx(0.75) and lin.lr_at(100) == 0
    assert math.isclose(LrSchedule(2.0, 10, decay="constant").lr_at(7), 2.0)


def test_lr_is_set_every_step_and_logged(tmp_path):
    result = fit(_Linear(), _config(tmp_path, epochs=2, warmup_epochs=1))
    log = read_log(tmp_path / "log.jsonl")
    assert [r["step"] for r in log] == list(range(1, 17)) and result.step == 16
    sched = LrSchedule(peak_lr=0.05, total_steps=16, warmup_steps=8)
    assert [r["lr"] for r in log] == pytest.approx([sched.lr_at(s) for s in range(16)])
    assert result.export_path == tmp_path / "toy.pt" and result.export_path.is_file()


def test_accumulation_matches_a_larger_batch(tmp_path):
    fit(_Linear(), _config(tmp_path / "big", batch_size=8, accum=1))
    fit(_Linear(), _config(tmp_path / "acc", batch_size=2, accum=4))
    big, acc = _params(tmp_path / "big" / "checkpoint.pt"), _params(tmp_path / "acc" / "checkpoint.pt")
    for key in big:
        assert torch.allclose(big[key], acc[key], atol=1e-5), key


def test_resume_mid_epoch_continues_the_same_curve(tmp_path):
    fit(_Linear(), _config(tmp_path / "full"))
    stopped = fit(_Linear(), _config(tmp_path / "cut", max_steps=5))
    assert stopped.stopped_early and stopped.step == 5 and stopped.epoch == 0
    resumed = fit(_Linear(), _config(tmp_path / "cut", resume="auto"))
    assert resumed.step == 24 and not resumed.stopped_early
    full = read_log(tmp_path / "full" / "log.jsonl")
    cut = read_log(tmp_path / "cut" / "log.jsonl")
    assert [r["step"] for r in cut] == list(range(1, 25))
    assert [r["loss"] for r in cut] == [r["loss"] for r in full]
    a, b = _params(tmp_path / "full" / "checkpoint.pt"), _params(tmp_path / "cut" / "checkpoint.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_another_batch_or_task(tmp_path):
    fit(_Linear(), _config(tmp_path, epochs=1))
    with pytest.raises(TrainConfigError, match="effective batch"):
        fit(_Linear(), _config(tmp_path, batch_size=8, resume="auto"))
    other = _Linear()
    other.name = "other"
    with pytest.raises(CheckpointError, match="'other' training checkpoint"):
        fit(other, _config(tmp_path, resume="auto"))


def test_non_finite_loss_stops_clearly_and_keeps_the_checkpoint(tmp_path):
    fit(_Linear(), _config(tmp_path, epochs=1))
    before = _params(tmp_path / "checkpoint.pt")
    with pytest.raises(NonFiniteLossError, match="non-finite at epoch 1, optimiser step 11 "):
        fit(_Linear(nan_at_step=2), _config(tmp_path, epochs=2, resume="auto"))
    after = _params(tmp_path / "checkpoint.pt")
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert read_log(tmp_path / "log.jsonl")[-1]["step"] == 10  # the step the message names comes next


class _Crash(_Linear):
    """Interrupted (as by Ctrl-C) during the ``crash_at``-th step."""

    def __init__(self, crash_at: int) -> None:
        super().__init__()
        self.crash_at = crash_at

    def train_step(self, model, batch, device):
        if self.calls + 1 == self.crash_at:
            raise KeyboardInterrupt
        return super().train_step(model, batch, device)


def test_an_interrupt_checkpoints_the_last_step_and_resumes_onto_the_same_curve(tmp_path, capsys):
    fit(_Linear(), _config(tmp_path / "full"))
    with pytest.raises(KeyboardInterrupt):
        fit(_Crash(crash_at=7), _config(tmp_path / "cut", checkpoint_every=4))
    # interrupted during step 7: the checkpoint holds step 6 (not the regular one of step 4)
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"] == 6
    assert "--resume continues from step 6" in capsys.readouterr().err
    assert [r["step"] for r in read_log(tmp_path / "cut" / "log.jsonl")] == list(range(1, 7))
    fit(_Linear(), _config(tmp_path / "cut", resume="auto"))
    full = read_log(tmp_path / "full" / "log.jsonl")
    cut = read_log(tmp_path / "cut" / "log.jsonl")
    assert [r["step"] for r in cut] == list(range(1, 25))
    assert [r["loss"] for r in cut] == [r["loss"] for r in full]
    # a new run (no resume) in the same folder starts a new log
    fit(_Linear(), _config(tmp_path / "cut", epochs=1))
    assert [r["step"] for r in read_log(tmp_path / "cut" / "log.jsonl")] == list(range(1, 9))


def test_resume_without_a_checkpoint_says_so_and_a_folder_is_refused(tmp_path, capsys):
    result = fit(_Linear(), _config(tmp_path / "new", epochs=1, resume="auto"))
    assert result.step == 8
    assert "does not exist yet; starting a new run at step 0" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="is a folder; give the checkpoint file"):
        fit(_Linear(), _config(tmp_path / "other", resume=str(tmp_path / "new")))


class _Sized(_Linear):
    """The toy task with an ``encoder`` option that changes the model's shape."""

    def __init__(self, encoder: str) -> None:
        super().__init__()
        self.encoder = encoder

    def build_model(self) -> nn.Module:
        width = {"small": 8, "large": 16}[self.encoder]
        return nn.Sequential(nn.Linear(4, width), nn.Tanh(), nn.Linear(width, 2))

    def describe(self) -> dict:
        return {"task": self.name, "encoder": self.encoder}


def test_resume_with_another_encoder_names_the_one_trained(tmp_path):
    fit(_Sized("small"), _config(tmp_path, epochs=1))
    with pytest.raises(TrainConfigError) as caught:
        fit(_Sized("large"), _config(tmp_path, epochs=2, resume="auto"))
    message = str(caught.value)
    assert "this run was trained with --encoder small; resume with the same --encoder" in message
    assert len(message) < 300


def test_too_small_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(TrainConfigError, match="fewer than one optimiser step"):
        fit(_Linear(), _config(tmp_path, batch_size=16, accum=4))


def test_atomic_save_keeps_the_old_file_on_failure(tmp_path):
    path = atomic_torch_save({"a": torch.ones(2)}, tmp_path / "c.pt")

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_torch_save({"a": Unpicklable()}, path)
    assert torch.equal(load_checkpoint(path)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
    (tmp_path / "bad.pt").write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_checkpoint(tmp_path / "bad.pt")


def test_rng_states_round_trip(tmp_path):
    import random

    state = capture_rng_state()
    path = atomic_torch_save({"rng": state}, tmp_path / "r.pt")
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_state(load_checkpoint(path)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_sampler_order_does_not_depend_on_world_size_and_can_start_late():
    data = list(range(20))
    single = ResumableDistributedSampler(data, num_replicas=1, rank=0, seed=3)
    single.set_epoch(2)
    order = list(single)
    ranks = [ResumableDistributedSampler(data, num_replicas=2, rank=r, seed=3) for r in (0, 1)]
    for s in ranks:
        s.set_epoch(2)
    first_global_batch = list(ranks[0])[:3] + list(ranks[1])[:3]
    assert sorted(first_global_batch) == sorted(order[:6])
    ranks[0].set_start(3)
    assert len(ranks[0]) == 7
    ranks[0].set_epoch(2)
    full = list(ranks[0])
    ranks[0].set_start(3)
    assert list(ranks[0]) == full[3:]
