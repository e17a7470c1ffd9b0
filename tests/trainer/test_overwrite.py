"""--overwrite moves the files the new run writes into a previous-* folder, and never a file it reads."""

from __future__ import annotations

import pytest

from efficientsam_studio.cli.main import main
from trainer.checkpoint import load_checkpoint
from trainer.finetune import synthetic
from trainer.loop import TrainConfigError, fit
from trainer.runlog import read_log

from .test_loop import _config, _Linear


class _Reads(_Linear):
    """The toy task reading a file (as ``--init`` does)."""

    def __init__(self, path) -> None:
        super().__init__()
        self.path = path

    def input_paths(self) -> dict:
        return {"--init": self.path}


def test_overwrite_moves_the_files_of_this_run_aside_and_keeps_the_rest(tmp_path, capsys):
    fit(_Linear(), _config(tmp_path, epochs=1, warmup_epochs=0))
    earlier = (tmp_path / "checkpoint.pt").read_bytes()
    (tmp_path / "efficientsam.pt").write_bytes(b"the export of another stage")
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "notes.txt").write_text("the user's own file")
    capsys.readouterr()
    fit(_Linear(), _config(tmp_path, epochs=1, warmup_epochs=0, max_steps=2, overwrite=True))
    (previous,) = tmp_path.glob("previous-*")
    err = capsys.readouterr().err
    moved = "checkpoint.pt, log.jsonl, tensorboard, toy.pt"
    assert err == f"--overwrite: moved the earlier run's {moved} to {previous}\n"
    assert sorted(p.name for p in previous.iterdir()) == [
        "checkpoint.pt",
        "log.jsonl",
        "tensorboard",
        "toy.pt",
    ]
    assert (previous / "checkpoint.pt").read_bytes() == earlier
    names = sorted(p.name for p in tmp_path.iterdir() if p != previous)
    assert names == ["checkpoint.pt", "efficientsam.pt", "log.jsonl", "notes.txt", "toy.pt"]
    assert (tmp_path / "efficientsam.pt").read_bytes() == b"the export of another stage"
    assert [r["step"] for r in read_log(tmp_path / "log.jsonl")] == [1, 2]
    # a second start-over in the same second gets a folder of its own
    fit(_Linear(), _config(tmp_path, epochs=1, warmup_epochs=0, max_steps=1, overwrite=True))
    assert len(list(tmp_path.glob("previous-*"))) == 2
    assert (previous / "checkpoint.pt").read_bytes() == earlier


def test_overwrite_refuses_to_move_a_file_the_run_reads(tmp_path):
    fit(_Linear(), _config(tmp_path, epochs=1, warmup_epochs=0))
    before = sorted(p.name for p in tmp_path.iterdir())
    for read in (tmp_path / "toy.pt", tmp_path / "tensorboard" / "events"):
        with pytest.raises(TrainConfigError) as caught:
            fit(_Reads(read), _config(tmp_path, epochs=1, warmup_epochs=0, overwrite=True))
        message = str(caught.value)
        assert message.startswith(f"--init {read} is a file of the earlier run in --out {tmp_path}")
        assert "copy it out of" in message and "\n" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    fit(_Reads(tmp_path / "elsewhere.pt"), _config(tmp_path, epochs=1, warmup_epochs=0, overwrite=True))


def _train(*args):
    return main(["train", "--preset", "tiny", "--no-progress", "--batch-size", "4", *args])


def test_sami_then_finetune_in_the_same_folder_keeps_the_sami_encoder(
    teacher_ckpt, image_dir, tmp_path, capsys
):
    run = tmp_path / "runs" / "x"
    sami = ["--stage", "sami", "--teacher", str(teacher_ckpt), "--data", str(image_dir), "--out", str(run)]
    assert _train(*sami, "--max-steps", "1") == 0
    encoder = (run / "encoder.pt").read_bytes()
    synthetic.write_sa1b_folder(tmp_path / "shapes", 2, seed=5)
    finetune = ["--data", str(tmp_path / "shapes"), "--out", str(run), "--epochs", "1", "--max-masks", "2",
                "--batch-size", "1", "--max-steps", "1", "--init", f"sami:{run / 'encoder.pt'}"]  # fmt: skip
    capsys.readouterr()
    assert _train(*finetune) == 2  # the folder holds a run: --resume or --overwrite
    assert "holds a run already" in capsys.readouterr().err
    assert _train(*finetune, "--overwrite") == 0
    assert (run / "encoder.pt").read_bytes() == encoder
    assert (run / "efficientsam.pt").is_file() and (run / "efficientsam.json").is_file()
    assert load_checkpoint(run / "checkpoint.pt")["task"] == "finetune"
    (previous,) = run.glob("previous-*")
    assert load_checkpoint(previous / "checkpoint.pt")["task"] == "sami"
    assert not (previous / "encoder.pt").exists()
    # continuing to finetune the exported weights in place would move them aside: refused, nothing moved
    exported = (run / "efficientsam.pt").read_bytes()
    capsys.readouterr()
    again = [*finetune[:-2], "--init", f"efficientsam:{run / 'efficientsam.pt'}", "--overwrite"]
    assert _train(*again) == 2
    err = capsys.readouterr().err
    assert f"--init {run / 'efficientsam.pt'} is a file of the earlier run" in err and err.count("\n") == 1
    assert (run / "efficientsam.pt").read_bytes() == exported
    assert len(list(run.glob("previous-*"))) == 1
