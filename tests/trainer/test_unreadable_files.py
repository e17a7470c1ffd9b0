"""A checkpoint or teacher file that cannot be read is named in one line, without torch's advice."""

from __future__ import annotations

import pytest

from efficientsam_studio.cli.main import main
from efficientsam_studio.errors import CheckpointError
from trainer.checkpoint import atomic_torch_save, load_checkpoint
from trainer.finetune import synthetic
from trainer.teacher import load_sam_teacher

#: text of torch's own errors that must not reach the user
TORCH_NOTES = ("weights_only", "file an issue", "miniz", "Re-running")


def _unreadable_files(folder, teacher_ckpt):
    garbage = folder / "garbage.pt"
    garbage.write_bytes(b"garbage\n")
    truncated = folder / "truncated.pt"
    truncated.write_bytes(teacher_ckpt.read_bytes()[:1000])
    return garbage, truncated


def test_unreadable_checkpoints_and_teachers_are_one_line_errors(tmp_path, teacher_ckpt):
    for path in _unreadable_files(tmp_path, teacher_ckpt):
        for load, what in ((load_checkpoint, "checkpoint"), (load_sam_teacher, "teacher checkpoint")):
            with pytest.raises(CheckpointError) as caught:
                load(path)
            message = str(caught.value)
            assert message.startswith(f"{what} {path}: is ") and "corrupt" in message
            assert message.endswith("download or copy it again") and "\n" not in message
            assert not any(note in message for note in TORCH_NOTES)


def test_a_pickle_of_python_objects_is_named_as_such(tmp_path):
    import torch

    path = tmp_path / "objects.pt"
    torch.save({"config": tmp_path}, path)  # a PosixPath: not loaded with weights_only
    with pytest.raises(CheckpointError, match="holds Python objects besides tensors") as caught:
        load_checkpoint(path)
    assert not any(note in str(caught.value) for note in TORCH_NOTES)


def test_cli_names_an_unreadable_resume_checkpoint_and_teacher_in_one_line(
    tmp_path, teacher_ckpt, image_dir, capsys
):
    garbage, truncated = _unreadable_files(tmp_path, teacher_ckpt)
    synthetic.write_sa1b_folder(tmp_path / "shapes", 1, seed=3)
    finetune = ["train", "--preset", "tiny", "--data", str(tmp_path / "shapes"), "--no-progress"]
    assert main([*finetune, "--out", str(tmp_path / "ft"), "--resume", str(truncated)]) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {truncated}: is truncated or corrupt and cannot be read as a torch checkpoint" in err
    assert err.count("\n") == 1
    sami = ["train", "--stage", "sami", "--preset", "tiny", "--data", str(image_dir), "--no-progress"]
    assert main([*sami, "--out", str(tmp_path / "sami"), "--teacher", str(garbage)]) == 2
    err = capsys.readouterr().err
    assert f"teacher checkpoint {garbage}: is corrupt, not a readable checkpoint" in err
    assert err.count("\n") == 1 and not any(note in err for note in TORCH_NOTES)
    atomic_torch_save({"format": "x"}, tmp_path / "ok.pt")  # a readable file still reads
    assert load_checkpoint(tmp_path / "ok.pt") == {"format": "x"}
