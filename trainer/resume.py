"""What ``--resume`` continues, and the checks that a resumed run is the run its checkpoint was written by.

A resume continues the same run: the same task, encoder, effective batch and steps per epoch, the same
learning-rate schedule (peak lr, warmup, decay), optimiser settings and seed, and the same task recipe
(:meth:`trainer.task.TrainTask.resume_settings`: SAMI's mask ratio and decoder, finetuning's prompts and
loss, ...). A setting that differs from the checkpoint's is refused with one line naming the option and
both values, so that an option left out of the resuming command (its preset's value then applies) never
changes a run silently. The one exception is a larger ``--epochs``: the run is extended, its schedule is
stretched to the new length from the resume point on, and a notice says so. Options that do not change
what is trained (``--max-steps``, ``--checkpoint-every``, ``--workers``, ``--device``, ``--precision``,
data and teacher file locations) may differ.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from efficientsam_studio.engine.checkpoints import TRAINER_CHECKPOINT_FORMAT as CHECKPOINT_FORMAT
from efficientsam_studio.errors import CheckpointError
from trainer.config import TrainConfigError
from trainer.run_folder import CHECKPOINT_NAME
from trainer.schedule import LrSchedule
from trainer.task import TrainTask


def resume_path(resume: str | None, checkpoint_path: Path, is_main: bool) -> Path | None:
    """The checkpoint ``resume`` names: ``"auto"`` is ``checkpoint_path`` when it exists (a notice says
    when it does not, and None starts a new run), any other value a checkpoint file."""
    if not resume:
        return None
    if resume == "auto":
        if checkpoint_path.is_file():
            return checkpoint_path
        if is_main:
            print(
                f"--resume: {checkpoint_path} does not exist yet; starting a new run at step 0",
                file=sys.stderr,
            )
        return None
    path = Path(resume)
    if path.is_dir():
        raise CheckpointError(
            f"--resume {path} is a folder; give the checkpoint file of that run "
            f"({path / CHECKPOINT_NAME}), or --resume alone to continue the run in --out"
        )
    return path


def loop_settings(config: dict[str, Any], schedule: dict[str, Any]) -> dict[str, Any]:
    """The loop's settings a resume keeps, keyed by option, from a ``TrainConfig.to_plain()`` dict and an
    ``LrSchedule.state_dict()`` (entries missing from either are left out)."""
    pairs = [
        ("--lr", schedule, "peak_lr"),
        ("--warmup-epochs", config, "warmup_epochs"),
        ("--weight-decay", config, "weight_decay"),
        ("--clip-grad", config, "clip_grad"),
        ("--seed", config, "seed"),
        ("decay", schedule, "decay"),
        ("min_lr", schedule, "min_lr"),
        ("betas", config, "betas"),
    ]
    return {option: source[key] for option, source, key in pairs if key in source}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool | type(None)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    return a == b


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ",".join(_show(v) for v in value)
    return str(value)


def differences(saved: dict[str, Any], current: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(option, saved value, current value)`` for every option both hold with different values."""
    return [
        (key, saved[key], value)
        for key, value in current.items()
        if key in saved and not _same(saved[key], value)
    ]


def check_resume(
    path: Path,
    state: dict[str, Any],
    task: TrainTask,
    config: dict[str, Any],
    schedule: LrSchedule,
    effective_batch: int,
    steps_per_epoch: int,
    is_main: bool,
) -> None:
    """Refuse ``state`` (a checkpoint read from ``path``) unless this run continues it; see the module.

    ``config``: this run's ``TrainConfig.to_plain()``; ``schedule``: its learning-rate schedule. On rank 0
    (``is_main``) a notice says when a larger ``--epochs`` extends the run.
    """
    if state.get("format") != CHECKPOINT_FORMAT or state.get("task") != task.name:
        raise CheckpointError(
            f"{path} is not a '{task.name}' training checkpoint of this trainer; "
            "resume from RUN_DIR/checkpoint.pt of a run of the same stage"
        )
    trained = state.get("describe") or {}
    wanted = task.describe()
    if trained.get("encoder") and wanted.get("encoder") and trained["encoder"] != wanted["encoder"]:
        raise TrainConfigError(
            f"{path}: this run was trained with --encoder {trained['encoder']}; "
            "resume with the same --encoder"
        )
    if state["effective_batch"] != effective_batch or state["steps_per_epoch"] != steps_per_epoch:
        raise TrainConfigError(
            f"{path} was trained with an effective batch of {state['effective_batch']} and "
            f"{state['steps_per_epoch']} steps per epoch; this run has {effective_batch} and "
            f"{steps_per_epoch}: resume with the same batch size x accumulation x processes and data"
        )
    saved_config = state.get("config") or {}
    saved_schedule = state.get("schedule") or {}
    changed = differences(
        {**loop_settings(saved_config, saved_schedule), **task.resume_settings(trained)},
        {**loop_settings(config, schedule.state_dict()), **task.resume_settings(wanted)},
    )
    if len(changed) == 1:
        option, old, new = changed[0]
        raise TrainConfigError(
            f"{path}: the run was trained with {option} {_show(old)}, this command gives {_show(new)}; "
            f"resume with {option} {_show(old)} (a resumed run keeps the settings it was trained with)"
        )
    if changed:
        trained = ", ".join(f"{option} {_show(old)}" for option, old, _ in changed)
        given = ", ".join(f"{option} {_show(new)}" for option, _, new in changed)
        raise TrainConfigError(
            f"{path}: the run was trained with {trained}; this command gives {given}; resume with the "
            "settings the run was trained with"
        )
    old_epochs = saved_config.get("epochs")
    if old_epochs is None or old_epochs == config["epochs"]:
        return
    if config["epochs"] < old_epochs:
        raise TrainConfigError(
            f"{path}: the run was trained for --epochs {old_epochs}, this command gives {config['epochs']}; "
            f"resume with --epochs {old_epochs} (or more, to extend the run); --max-steps stops a run early"
        )
    if is_main and saved_schedule:
        step = int(state["step"])
        before = LrSchedule(**saved_schedule).lr_at(step)
        print(
            f"--resume: --epochs {old_epochs} -> {config['epochs']} extends the run: its learning-rate "
            f"schedule now spans {schedule.total_steps} steps instead of {saved_schedule['total_steps']} "
            f"(lr at step {step + 1}: {schedule.lr_at(step):.3g} instead of {before:.3g})",
            file=sys.stderr,
        )
