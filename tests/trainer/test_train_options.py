"""``efsam-studio train`` refuses bad options, paths, teachers and data settings in one line, before work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest
import torch

from efficientsam_studio.cli.main import main
from efficientsam_studio.model import build_model
from trainer.cache import build_teacher_cache
from trainer.data import CropConfig
from trainer.finetune import synthetic
from trainer.finetune.export import export_weights
from trainer.runlog import read_log

from .conftest import write_images


def _sami(teacher, data, out, *extra):
    return [
        "train", "--stage", "sami", "--preset", "tiny", "--teacher", str(teacher), "--data", str(data),
        "--out", str(out), "--no-progress", *extra,
    ]  # fmt: skip


def _finetune(data, out, *extra):
    return [
        "train", "--preset", "tiny", "--data", str(data), "--out", str(out), "--epochs", "1",
        "--max-masks", "2", "--no-progress", *extra,
    ]  # fmt: skip


SAMI_OPTIONS = {
    "negative lr": (["--lr", "-1"], "--lr must be above 0; got -1.0"),
    "nan lr": (["--lr", "nan"], "--lr must be above 0; got nan"),
    "mask ratio 1": (["--mask-ratio", "1.0"], "--mask-ratio must be at least 0 and below 1; got 1.0"),
    "decoder width": (["--decoder-width", "65"], "--decoder-width must be a multiple of 4"),
    "negative epochs": (["--epochs", "-1"], "--epochs must be at least 1; got -1"),
    "negative seed": (["--seed", "-3"], "--seed must be at least 0"),
    "input size": (["--input-size", "70"], "--input-size must be a multiple of 16"),
    "unknown device": (["--device", "tpu"], "unknown device 'tpu'"),
    "unknown encoder": (["--encoder", "vit_x"], "--encoder 'vit_x': SAMI trains vit_t, vit_s, vit_b, tiny"),
    "resume and overwrite": (["--resume", "--overwrite"], "--resume and --overwrite contradict each other"),
}


@pytest.mark.parametrize("case", SAMI_OPTIONS)
def test_bad_sami_options_end_in_one_line_before_any_work(case, teacher_ckpt, image_dir, tmp_path, capsys):
    extra, expected = SAMI_OPTIONS[case]
    assert main(_sami(teacher_ckpt, image_dir, tmp_path / "run", *extra)) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_refused_as_eval_refuses_it(teacher_ckpt, image_dir, tmp_path, capsys):
    assert main(_sami(teacher_ckpt, image_dir, tmp_path / "run", "--device", "cuda")) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and "--device cpu or auto" in err and err.count("\n") == 1


FINETUNE_OPTIONS = {
    "box probability": (["--box-probability", "2"], "--box-probability must be at least 0 and at most 1"),
    "too many points": (["--max-points", "4", "--iterative-clicks", "3"], "must be at most 6"),
    "no masks": (["--max-masks", "0"], "--max-masks must be at least 1"),
    "unknown encoder": (["--encoder", "vit_x"], "--encoder 'vit_x': finetuning trains"),
}


@pytest.mark.parametrize("case", FINETUNE_OPTIONS)
def test_bad_finetune_options_end_in_one_line(case, tmp_path, capsys):
    extra, expected = FINETUNE_OPTIONS[case]
    synthetic.write_sa1b_folder(tmp_path / "shapes", 1, seed=3)
    assert main(_finetune(tmp_path / "shapes", tmp_path / "run", *extra)) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_paths_of_the_wrong_kind_are_named_with_their_cause(teacher_ckpt, image_dir, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(_sami(teacher_ckpt, image_dir, tmp_path / "afile")) == 2
    assert f"--out {tmp_path / 'afile'} is a file, not a folder" in capsys.readouterr().err
    assert main(_sami(image_dir, image_dir, tmp_path / "run")) == 2
    assert "is a folder but not a teacher cache" in capsys.readouterr().err
    run = tmp_path / "run"
    run.mkdir()
    assert main(_sami(teacher_ckpt, image_dir, run, "--resume", str(run))) == 2
    assert f"--resume {run} is a folder; give the checkpoint file" in capsys.readouterr().err
    efficientsam = export_weights(build_model("tiny"), tmp_path / "tiny.pt")
    assert main(_sami(efficientsam, image_dir, tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert f"teacher checkpoint {efficientsam} is not a SAM image encoder" in err
    assert "out of range" not in err


def test_init_of_another_size_names_the_encoder_option(tmp_path, capsys):
    synthetic.write_sa1b_folder(tmp_path / "shapes", 1, seed=3)
    tiny = export_weights(build_model("tiny"), tmp_path / "tiny.pt")
    args = _finetune(
        tmp_path / "shapes", tmp_path / "run", "--encoder", "vit_t", "--init", f"efficientsam:{tiny}"
    )
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "use --encoder tiny" in err and "--model" not in err


def test_a_cache_target_is_used_and_recorded_and_another_is_refused(teacher_ckpt, tmp_path, capsys):
    data = tmp_path / "data"
    write_images(data, 4)
    cache = tmp_path / "cache"
    build_teacher_cache(
        data, teacher_ckpt, cache, input_size=64, crop=CropConfig(size=64), target="backbone", progress=False
    )
    assert main(_sami(cache, data, tmp_path / "neck", "--target", "neck")) == 2
    err = capsys.readouterr().err
    assert "--target neck: the teacher cache" in err and "holds the teacher's backbone features" in err
    assert main(_sami(cache, data, tmp_path / "run", "--max-steps", "1", "--batch-size", "4")) == 0
    meta = torch.load(tmp_path / "run" / "encoder.pt", weights_only=True)["meta"]
    assert meta["target"] == "backbone" and meta["teacher_source"] == "cache"


def test_make_synthetic_refuses_a_non_empty_folder_unless_overwrite(tmp_path, capsys):
    base = ["train", "--stage", "make-synthetic", "--out", str(tmp_path / "f")]
    assert main([*base, "--num-images", "4"]) == 0
    assert main([*base, "--num-images", "2"]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert len(list((tmp_path / "f").glob("sa_*.json"))) == 4
    assert main([*base, "--num-images", "2", "--overwrite"]) == 0
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == [
        "sa_1.jpg",
        "sa_1.json",
        "sa_2.jpg",
        "sa_2.json",
    ]
    assert main([*base, "--num-images", "0"]) == 2


def test_invalid_coco_annotations_are_skipped_and_counted_in_the_summary(tmp_path, capsys):
    annotations = synthetic.write_coco(tmp_path / "ann.json", tmp_path / "images", 2, seed=4)
    coco = json.loads(annotations.read_text())
    coco["annotations"].append({**coco["annotations"][0], "id": 999, "segmentation": [[10, 20, 30]]})
    annotations.write_text(json.dumps(coco))
    args = _finetune(annotations, tmp_path / "run", "--images", str(tmp_path / "images"), "--max-steps", "2")
    with pytest.warns(UserWarning, match="ann.json: annotation 999: a polygon has 3 coordinates"):
        assert main(args) == 0
    assert f"skipped 1 invalid annotations of {annotations}" in capsys.readouterr().out


def test_warnings_print_as_one_line_messages():
    from efficientsam_studio.cli.train import warnings_as_messages

    with warnings_as_messages():
        line = warnings.formatwarning(
            "skipped x", UserWarning, "/torch/utils/data/fetch.py", 52, "data = ..."
        )
    assert line == "efsam-studio train: warning: skipped x\n"
    assert "fetch.py" in warnings.formatwarning("x", UserWarning, "/torch/utils/data/fetch.py", 52)


def test_unreadable_image_is_replaced_and_reported_once_as_a_message(tmp_path):
    synthetic.write_sa1b_folder(tmp_path / "shapes", 3, seed=6)
    (tmp_path / "shapes" / "sa_1.jpg").write_bytes(b"not a jpeg")
    command = [sys.executable, "-m", "efficientsam_studio", *_finetune(tmp_path / "shapes", tmp_path / "run")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if "sa_1.jpg" in line or "warn" in line.lower()]
    assert len(lines) == 1 and lines[0].startswith("efsam-studio train: warning: skipped an unreadable")
    log = read_log(tmp_path / "run" / "log.jsonl")
    assert len(log) == 3 and all(record["masks"] > 0 for record in log)
    assert log[-1]["corrupt_images_total"] == 1


def test_a_new_run_refuses_the_folder_of_an_earlier_run(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"the earlier run")
    assert main(_finetune(tmp_path / "data", out)) == 2
    err = capsys.readouterr().err
    assert "holds a run already" in err and "--resume" in err and "--overwrite" in err
    assert err.count("\n") == 1
    assert (out / "checkpoint.pt").read_bytes() == b"the earlier run"
    # --overwrite gets past this check (and stops at the missing data here)
    assert main(_finetune(tmp_path / "data", out, "--overwrite")) == 2
    err = capsys.readouterr().err
    assert "holds a run already" not in err and str(tmp_path / "data") in err
