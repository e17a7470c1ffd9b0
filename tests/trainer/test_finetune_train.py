"""Finetuning on the shared loop: resume, two CPU processes, initialisation and export."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from efficientsam_studio.cli.main import main
from efficientsam_studio.model import build_model
from trainer.checkpoint import load_checkpoint
from trainer.finetune import synthetic
from trainer.finetune.export import InitError, export_weights, initialise, parse_init
from trainer.runlog import read_log


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    synthetic.write_sa1b_folder(root, 4, seed=9)
    return root


def _train(data, out, *extra):
    return [
        "train", "--preset", "tiny", "--data", str(data), "--out", str(out), "--epochs", "1",
        "--max-masks", "2", "--no-progress", *extra,
    ]  # fmt: skip


def test_resume_continues_onto_the_same_run(shapes, tmp_path):
    assert main(_train(shapes, tmp_path / "straight", "--max-steps", "3")) == 0
    assert main(_train(shapes, tmp_path / "resumed", "--max-steps", "1")) == 0
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["step"] == 1
    assert main(_train(shapes, tmp_path / "resumed", "--max-steps", "3", "--resume")) == 0
    straight = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    resumed = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert straight["step"] == resumed["step"] == 3
    for key, value in straight["model"].items():
        assert torch.allclose(value, resumed["model"][key], atol=1e-6), key
    losses = [r["loss"] for r in read_log(tmp_path / "straight" / "log.jsonl")]
    resumed_losses = [r["loss"] for r in read_log(tmp_path / "resumed" / "log.jsonl")]
    assert resumed_losses == pytest.approx(losses, rel=1e-5)


@pytest.mark.slow
def test_two_cpu_processes_match_one_process(shapes, tmp_path):
    # one corrective click per prompt, so the rank-independent click seeds are exercised too
    common = ("--iterative-clicks", "1", "--lr", "1e-4")
    assert main(_train(shapes, tmp_path / "one", "--batch-size", "2", *common)) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "efficientsam_studio", *_train(shapes, tmp_path / "two", "--batch-size", "1", *common),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    one = load_checkpoint(tmp_path / "one" / "checkpoint.pt")
    two = load_checkpoint(tmp_path / "two" / "checkpoint.pt")
    assert one["effective_batch"] == two["effective_batch"] == 2 and two["world_size"] == 2
    assert one["step"] == two["step"] == 2
    for key, value in one["model"].items():
        # parameters whose true gradient is ~0 (attention key biases) move by rounding noise times lr
        assert (value - two["model"][key]).abs().max() < 5e-5, key
    loss_one = [r["loss"] for r in read_log(tmp_path / "one" / "log.jsonl")]
    loss_two = [r["loss"] for r in read_log(tmp_path / "two" / "log.jsonl")]
    assert loss_two == pytest.approx(loss_one, rel=1e-4)
    assert (tmp_path / "two" / "efficientsam.pt").is_file()


def test_init_from_sami_encoder_and_from_efficientsam(tmp_path):
    torch.manual_seed(1)
    source = build_model("tiny")
    encoder_only = {f"image_encoder.{k}": v for k, v in source.image_encoder.state_dict().items()}
    torch.save({"model": encoder_only, "meta": {"task": "sami"}}, tmp_path / "encoder.pt")
    export_weights(source, tmp_path / "full.pt")
    model = build_model("tiny")
    info = initialise(model, "tiny", f"sami:{tmp_path / 'encoder.pt'}")
    assert info["init"] == "sami"
    assert torch.equal(model.image_encoder.pos_embed, source.image_encoder.pos_embed)
    assert not torch.equal(model.mask_decoder.iou_token.weight, source.mask_decoder.iou_token.weight)
    model = build_model("tiny")
    initialise(model, "tiny", f"efficientsam:{tmp_path / 'full.pt'}")
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert parse_init(None) == ("scratch", None)
    with pytest.raises(InitError, match="sami:PATH"):
        parse_init("imagenet:x.pt")
    with pytest.raises(InitError, match="no such file"):
        initialise(model, "tiny", f"sami:{tmp_path / 'missing.pt'}")
    with pytest.raises(Exception, match="image_encoder"):
        torch.save({"model": {"mask_decoder.x": torch.zeros(1)}}, tmp_path / "bad.pt")
        initialise(model, "tiny", f"sami:{tmp_path / 'bad.pt'}")


def test_export_is_the_published_format_and_imports(tmp_path, monkeypatch):
    monkeypatch.setenv("EFSAM_HOME", str(tmp_path / "home"))
    from trainer.finetune.losses import LossConfig
    from trainer.finetune.task import FinetuneModel, FinetuneTask

    model = FinetuneModel(build_model("vit_t"), LossConfig())
    task = FinetuneTask.__new__(FinetuneTask)
    task.config = type("C", (), {"encoder": "vit_t"})()
    task.describe = lambda: {"task": "finetune"}
    path = task.export(model, tmp_path / "run")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    assert set(saved) == {"model"}
    layout = {k: tuple(v.shape) for k, v in build_model("vit_t").state_dict().items()}
    assert {k: tuple(v.shape) for k, v in saved["model"].items()} == layout
    assert main(["weights", "import", str(path)]) == 0


def test_train_without_data_explains_the_layouts(capsys):
    assert main(["train", "--encoder", "vit_s"]) == 2
    err = capsys.readouterr().err
    for needle in ("sa_000000.tar", "sa_<id>.json", "--images", "make-synthetic", "COCO"):
        assert needle in err


def test_make_synthetic_stage_writes_every_layout(tmp_path):
    assert (
        main(["train", "--stage", "make-synthetic", "--out", str(tmp_path / "f"), "--num-images", "2"]) == 0
    )
    assert len(list((tmp_path / "f").glob("sa_*.json"))) == 2
    assert (
        main(
            ["train", "--stage", "make-synthetic", "--out", str(tmp_path / "t"), "--num-images", "2", "--tar"]
        )
        == 0
    )
    assert (tmp_path / "t" / "sa_000000.tar").is_file()
    assert (
        main(
            [
                "train",
                "--stage",
                "make-synthetic",
                "--out",
                str(tmp_path / "c"),
                "--num-images",
                "2",
                "--coco",
            ]
        )
        == 0
    )
    assert (tmp_path / "c" / "annotations.json").is_file()


def test_presets_and_options_reach_the_configs(tmp_path):
    from efficientsam_studio.cli.main import build_parser
    from trainer.finetune.cli import build_configs

    parser = build_parser()
    args = parser.parse_args(
        ["train", "--encoder", "vit_s", "--data", str(tmp_path), "--out", str(tmp_path / "r")]
    )
    finetune, train = build_configs(args)
    assert finetune.encoder == "vit_s" and train.lr == 4e-4 and train.weight_decay == 0.1
    assert train.betas == (0.9, 0.999) and train.decay == "linear" and train.epochs == 5
    assert train.batch_size * train.accum == 128 and finetune.loss.focal_weight == 20
    args = parser.parse_args([
        "train", "--preset", "tiny", "--data", str(tmp_path), "--out", str(tmp_path / "r"),
        "--focal-weight", "2", "--output-loss", "min", "--max-masks", "3", "--init", "scratch",
    ])  # fmt: skip
    finetune, train = build_configs(args)
    assert finetune.encoder == "tiny" and finetune.loss.focal_weight == 2
    assert finetune.loss.min_over_outputs and not finetune.loss.min_only_for_ambiguous
    assert finetune.data_config.max_masks == 3 and train.accum == 1
