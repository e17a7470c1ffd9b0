"""A resumed run keeps the settings its checkpoint was trained with, and does not go with --overwrite."""

from __future__ import annotations

import warnings

import pytest

from efficientsam_studio.cli.main import main
from trainer.checkpoint import load_checkpoint
from trainer.finetune import synthetic
from trainer.loop import TrainConfigError, fit
from trainer.runlog import read_log
from trainer.schedule import LrSchedule

from .test_loop import _config, _Linear


def test_resume_refuses_a_changed_schedule_naming_the_option_and_both_values(tmp_path):
    fit(_Linear(), _config(tmp_path, max_steps=3))
    for change, expected in [
        ({"lr": 0.2}, "trained with --lr 0.05, this command gives 0.2; resume with --lr 0.05"),
        ({"warmup_epochs": 0}, "trained with --warmup-epochs 1, this command gives 0"),
        ({"weight_decay": 0.1}, "trained with --weight-decay 0.05, this command gives 0.1"),
        ({"seed": 4}, "trained with --seed 0, this command gives 4"),
        ({"epochs": 2}, "trained for --epochs 3, this command gives 2"),
    ]:
        with pytest.raises(TrainConfigError) as caught:
            fit(_Linear(), _config(tmp_path, resume="auto", **change))
        assert expected in str(caught.value) and "\n" not in str(caught.value)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 3


class _Masked(_Linear):
    """The toy task with a recipe setting recorded by ``describe``."""

    option_names = {"mask_ratio": "--mask-ratio"}

    def __init__(self, mask_ratio: float) -> None:
        super().__init__()
        self.mask_ratio = mask_ratio

    def describe(self) -> dict:
        return {"task": self.name, "mask_ratio": self.mask_ratio}


def test_resume_refuses_a_changed_task_setting(tmp_path):
    fit(_Masked(0.75), _config(tmp_path, max_steps=2))
    with pytest.raises(TrainConfigError, match="trained with --mask-ratio 0.75, this command gives 0.5"):
        fit(_Masked(0.5), _config(tmp_path, resume="auto"))
    assert fit(_Masked(0.75), _config(tmp_path, resume="auto", max_steps=4)).step == 4


def test_more_epochs_extend_the_schedule_and_say_so(tmp_path, capsys):
    fit(_Linear(), _config(tmp_path, epochs=2, max_steps=12))
    fit(_Linear(), _config(tmp_path, epochs=4, resume="auto"))
    err = capsys.readouterr().err
    assert "--epochs 2 -> 4 extends the run" in err and "spans 32 steps instead of 16" in err
    log = read_log(tmp_path / "log.jsonl")
    extended = LrSchedule(peak_lr=0.05, total_steps=32, warmup_steps=8)
    assert [r["lr"] for r in log[12:]] == pytest.approx([extended.lr_at(s) for s in range(12, 32)])
    assert load_checkpoint(tmp_path / "checkpoint.pt")["config"]["epochs"] == 4


def test_resume_and_overwrite_contradict_each_other(tmp_path):
    with pytest.raises(TrainConfigError, match="--resume and --overwrite contradict each other"):
        fit(_Linear(), _config(tmp_path, resume="auto", overwrite=True))


def test_a_warmup_as_long_as_the_run_is_warned_about(tmp_path):
    with pytest.warns(UserWarning, match="--warmup-epochs 2 is not below --epochs 2: the run ends inside"):
        fit(_Linear(), _config(tmp_path / "long", epochs=2, warmup_epochs=2, max_steps=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit(_Linear(), _config(tmp_path / "short", epochs=2, warmup_epochs=1, max_steps=1))


def _sami(teacher, data, out, *extra):
    return [
        "train", "--stage", "sami", "--preset", "tiny", "--teacher", str(teacher), "--data", str(data),
        "--out", str(out), "--no-progress", "--batch-size", "4", *extra,
    ]  # fmt: skip


def test_sami_cli_refuses_a_resume_with_another_mask_ratio_and_overwrite_starts_over(
    teacher_ckpt, image_dir, tmp_path, capsys
):
    run = tmp_path / "run"
    assert main(_sami(teacher_ckpt, image_dir, run, "--max-steps", "1")) == 0
    capsys.readouterr()
    assert main(_sami(teacher_ckpt, image_dir, run, "--resume", "--mask-ratio", "0.5")) == 2
    err = capsys.readouterr().err
    assert "trained with --mask-ratio 0.75, this command gives 0.5" in err and err.count("\n") == 1
    assert main(_sami(teacher_ckpt, image_dir, run, "--resume", "--overwrite")) == 2
    err = capsys.readouterr().err
    assert "--resume and --overwrite contradict each other" in err and err.count("\n") == 1
    assert main(_sami(teacher_ckpt, image_dir, run, "--overwrite", "--max-steps", "1")) == 0
    (previous,) = run.glob("previous-*")
    assert {"checkpoint.pt", "encoder.pt", "log.jsonl"} <= {p.name for p in previous.iterdir()}
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 1


def test_finetune_resume_without_the_original_lr_is_refused(tmp_path, capsys):
    synthetic.write_sa1b_folder(tmp_path / "shapes", 2, seed=9)
    args = ["train", "--preset", "tiny", "--data", str(tmp_path / "shapes"), "--out", str(tmp_path / "run"),
            "--epochs", "1", "--max-masks", "2", "--no-progress"]  # fmt: skip
    assert main([*args, "--lr", "1e-4", "--max-steps", "1"]) == 0
    capsys.readouterr()
    assert main([*args, "--resume", "--max-steps", "2"]) == 2
    err = capsys.readouterr().err
    assert "trained with --lr 0.0001, this command gives 0.0003; resume with --lr 0.0001" in err
    assert main([*args, "--resume", "--lr", "1e-4", "--output-loss", "min", "--max-steps", "2"]) == 2
    assert "trained with --output-loss ambiguous-min, this command gives min" in capsys.readouterr().err
    log = read_log(tmp_path / "run" / "log.jsonl")
    assert len(log) == 1 and {"miou", "miou_best_of_3"} <= log[0].keys()
