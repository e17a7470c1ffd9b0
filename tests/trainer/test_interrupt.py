"""Ctrl+C (a real SIGINT to this process): atomic saves finish or are abandoned whole, and an interrupted
run keeps an exactly resumable checkpoint at its last optimiser step."""

from __future__ import annotations

import collections
import os
import signal

import pytest
import torch

from trainer.checkpoint import atomic_torch_save, load_checkpoint
from trainer.interrupt import hold_sigint
from trainer.loop import _Run, fit
from trainer.runlog import read_log

from .test_loop import _config, _Crash, _Linear


@pytest.fixture(autouse=True)
def ctrl_c_raises():
    """Python's own Ctrl+C handler, whatever this process inherited: a shell starts background jobs with
    SIGINT ignored, and then Python installs none (``hold_sigint`` leaves such a process as it is)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


class _Sigint:
    """Pickled inside a ``torch.save``: presses Ctrl+C there, in the middle of the write."""

    def __init__(self, when=lambda: True) -> None:
        self.when = when

    def __reduce__(self):
        if self.when():
            os.kill(os.getpid(), signal.SIGINT)
        return (collections.OrderedDict, ())


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_ctrl_c_during_an_atomic_save_is_held_until_the_file_is_complete(tmp_path, capsys):
    path = atomic_torch_save({"a": torch.zeros(2)}, tmp_path / "c.pt")
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"a": torch.ones(2), "probe": _Sigint(), "b": torch.ones(3)}, path)
    assert torch.equal(load_checkpoint(path)["b"], torch.ones(3))  # the new file, whole
    assert _leftovers(tmp_path) == []
    assert "Ctrl+C again abandons it" in capsys.readouterr().err


def test_a_second_ctrl_c_abandons_the_save_and_keeps_the_previous_file(tmp_path):
    path = atomic_torch_save({"a": torch.zeros(2)}, tmp_path / "c.pt")
    with pytest.raises(KeyboardInterrupt):  # not the RuntimeError of torch's interrupted zip writer
        atomic_torch_save({"a": torch.ones(2), "p": _Sigint(), "q": _Sigint(), "b": torch.ones(3)}, path)
    assert torch.equal(load_checkpoint(path)["a"], torch.zeros(2))
    assert _leftovers(tmp_path) == []


def test_an_abandoned_block_ends_in_keyboard_interrupt_whatever_it_raised():
    with pytest.raises(KeyboardInterrupt), hold_sigint():
        os.kill(os.getpid(), signal.SIGINT)  # held
        try:
            os.kill(os.getpid(), signal.SIGINT)  # abandons the block
        except KeyboardInterrupt:
            # what torch.save's zip writer raises when an interrupt cuts a record short
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos") from None
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


class _Probe(_Crash):
    """The toy task, interrupted during step ``crash_at`` and/or pressing Ctrl+C while checkpoint number
    ``sigint_at_save`` (1-based) is being written (its ``describe`` is part of every checkpoint)."""

    def __init__(self, crash_at: int = 0, sigint_at_save: int = 0) -> None:
        super().__init__(crash_at)
        self.sigint_at_save = sigint_at_save
        self.saves = 0

    def _count_save(self) -> bool:
        self.saves += 1
        return self.saves == self.sigint_at_save

    def describe(self) -> dict:
        return {"task": self.name, "probe": _Sigint(self._count_save)}


def test_ctrl_c_during_a_checkpoint_write_finishes_it_then_stops_resumably(tmp_path, capsys):
    fit(_Linear(), _config(tmp_path / "full"))
    with pytest.raises(KeyboardInterrupt):
        fit(_Probe(sigint_at_save=1), _config(tmp_path / "cut", checkpoint_every=4))
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"] == 4
    assert "--resume continues from step 4" in capsys.readouterr().err
    fit(_Linear(), _config(tmp_path / "cut", resume="auto"))
    full, cut = read_log(tmp_path / "full" / "log.jsonl"), read_log(tmp_path / "cut" / "log.jsonl")
    assert [r["loss"] for r in cut] == [r["loss"] for r in full]


def test_a_second_ctrl_c_during_the_interrupt_checkpoint_keeps_the_previous_one(tmp_path, capsys):
    with pytest.raises(KeyboardInterrupt):
        fit(_Probe(crash_at=7, sigint_at_save=2), _config(tmp_path, checkpoint_every=4))
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 4
    assert _leftovers(tmp_path) == []
    err = capsys.readouterr().err
    assert "interrupted again while writing the checkpoint of step 6" in err and "holds step 4" in err


def test_ctrl_c_during_an_optimiser_step_is_taken_once_the_step_is_logged(tmp_path, monkeypatch):
    original = _Run._optimizer_step
    calls = []

    def step_then_press(run):
        calls.append(run.step)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of the update of step 5
        original(run)

    monkeypatch.setattr(_Run, "_optimizer_step", step_then_press)
    with pytest.raises(KeyboardInterrupt):
        fit(_Linear(), _config(tmp_path))
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 5
    assert [r["step"] for r in read_log(tmp_path / "log.jsonl")] == [1, 2, 3, 4, 5]
