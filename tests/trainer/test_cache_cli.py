"""Teacher cache (exact replay, resumable build), SAMI through the CLI, resume mid-epoch, corrupt images."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from efficientsam_studio.cli.main import main
from trainer.cache import TeacherCache, TeacherCacheError, build_teacher_cache
from trainer.data import CropConfig, apply_crop, to_tensor
from trainer.runlog import read_log
from trainer.sami_task import CachedSamiDataset
from trainer.teacher import load_sam_teacher

from .conftest import write_images


def test_cache_replays_the_recorded_views_exactly(teacher_ckpt, tmp_path):
    data = tmp_path / "data"
    write_images(data, 5)
    index = build_teacher_cache(
        data, teacher_ckpt, tmp_path / "cache", input_size=64, views=2, crop=CropConfig(size=64),
        shard_size=4, batch_size=3, progress=False,
    )  # fmt: skip
    meta = json.loads(index.read_text())
    assert meta["complete"] and meta["samples"] == 10 and meta["grid"] == 4 and meta["channels"] == 32
    cache = TeacherCache.open(tmp_path / "cache")
    paths = [data / rel for rel in cache.plan["images"]]  # sorted by folder, then naturally
    assert len(sorted((tmp_path / "cache").glob("shard_*.npy"))) == 3
    teacher = load_sam_teacher(teacher_ckpt)
    from efficientsam_studio.annotations.images import load_image

    for k in (0, 3, 9):
        image = load_image(paths[cache.image_of[k]])
        pixels = to_tensor(apply_crop(image, cache.crops[k], bool(cache.flips[k]), 64))[None]
        with torch.no_grad():
            expected = teacher(pixels).flatten(2).transpose(1, 2)[0]
        stored = torch.from_numpy(np.asarray(cache.features(k), dtype=np.float32))
        assert cache.features(k).dtype == np.float16
        assert torch.allclose(stored, expected, atol=1e-2, rtol=1e-2)
    assert cache.view_of.tolist() == [0, 1] * 5
    assert not np.array_equal(cache.crops[0], cache.crops[1])

    dataset = CachedSamiDataset(cache, seed=0)
    dataset.set_epoch(1)  # epoch 1 replays view 1
    item = dataset[2]
    k = 2 * 2 + 1
    assert torch.equal(item["target"], torch.from_numpy(np.asarray(cache.features(k), dtype=np.float32)))
    image = load_image(paths[2])
    assert torch.equal(item["image"], to_tensor(apply_crop(image, cache.crops[k], bool(cache.flips[k]), 64)))


def test_cache_build_resumes_and_refuses_other_settings(teacher_ckpt, tmp_path):
    data = tmp_path / "data"
    write_images(data, 6)
    out = tmp_path / "cache"
    kwargs = dict(input_size=64, crop=CropConfig(size=64), shard_size=2, progress=False)
    build_teacher_cache(data, teacher_ckpt, out, **kwargs)
    first = {p.name: p.stat().st_mtime_ns for p in out.glob("shard_*")}
    reference = np.load(out / "shard_00002.npy")
    for name in ("shard_00002.json", "shard_00002.npy", "index.json"):
        (out / name).unlink()
    with pytest.raises(TeacherCacheError, match="not finished"):
        TeacherCache.open(out)
    build_teacher_cache(data, teacher_ckpt, out, **kwargs)
    again = {p.name: p.stat().st_mtime_ns for p in out.glob("shard_*")}
    assert again["shard_00000.npy"] == first["shard_00000.npy"]
    assert np.array_equal(np.load(out / "shard_00002.npy"), reference)
    with pytest.raises(TeacherCacheError, match="input_size"):
        build_teacher_cache(
            data, teacher_ckpt, out, **{**kwargs, "input_size": 32, "crop": CropConfig(size=32)}
        )


def _sami(teacher, data, out, *extra):
    return [
        "train", "--stage", "sami", "--preset", "tiny", "--teacher", str(teacher), "--data", str(data),
        "--out", str(out), "--no-progress", *extra,
    ]  # fmt: skip


def test_cli_cache_then_train_from_the_cache(teacher_ckpt, image_dir, tmp_path, capsys):
    cache = tmp_path / "cache"
    code = main(["train", "--stage", "sami-cache", "--preset", "tiny", "--data", str(image_dir),
                 "--teacher", str(teacher_ckpt), "--out", str(cache), "--no-progress"])  # fmt: skip
    assert code == 0 and (cache / "index.json").is_file()
    assert main(_sami(cache, image_dir, tmp_path / "run", "--epochs", "1")) == 0
    assert "encoder weights" in capsys.readouterr().out
    state = torch.load(tmp_path / "run" / "encoder.pt", weights_only=True)
    assert state["meta"]["teacher_source"] == "cache"


def test_sami_killed_mid_epoch_resumes_onto_the_same_curve(teacher_ckpt, image_dir, tmp_path):
    args = ("--batch-size", "4", "--epochs", "2")
    assert main(_sami(teacher_ckpt, image_dir, tmp_path / "full", *args)) == 0
    assert main(_sami(teacher_ckpt, image_dir, tmp_path / "cut", *args, "--max-steps", "3")) == 0
    assert len(read_log(tmp_path / "cut" / "log.jsonl")) == 3
    assert main(_sami(teacher_ckpt, image_dir, tmp_path / "cut", *args, "--resume")) == 0
    full = read_log(tmp_path / "full" / "log.jsonl")
    cut = read_log(tmp_path / "cut" / "log.jsonl")
    assert [r["step"] for r in cut] == list(range(1, 9))
    assert [r["loss"] for r in cut] == [r["loss"] for r in full]
    a = torch.load(tmp_path / "full" / "encoder.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / "encoder.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_corrupt_images_are_skipped_and_counted(teacher_ckpt, image_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(image_dir, data)
    (data / "class_0" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (data / "class_1" / "empty.png").write_bytes(b"")
    with pytest.warns(UserWarning, match="skipping unreadable training image"):
        assert main(_sami(teacher_ckpt, data, tmp_path / "run", "--epochs", "1", "--batch-size", "6")) == 0
    log = read_log(tmp_path / "run" / "log.jsonl")
    assert log[-1]["corrupt_images_total"] == 2  # 18 files, 3 steps of 6: each broken file is met once


def test_cli_errors_are_user_errors(tmp_path, capsys):
    assert main(["train", "--stage", "sami", "--out", str(tmp_path)]) == 2
    assert "--teacher" in capsys.readouterr().err
    assert main(["train", "--stage", "nope"]) == 2
    assert "unknown --stage" in capsys.readouterr().err
    code = main(["train", "--stage", "sami", "--teacher", str(tmp_path / "x.pth"), "--data", str(tmp_path),
                 "--out", str(tmp_path / "run")])  # fmt: skip
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_cached_dataset_counts_each_unreadable_image_once(teacher_ckpt, tmp_path):
    data = tmp_path / "data"
    write_images(data, 4)
    build_teacher_cache(data, teacher_ckpt, tmp_path / "cache", input_size=64, crop=CropConfig(size=64),
                        progress=False)  # fmt: skip
    dataset = CachedSamiDataset(TeacherCache.open(tmp_path / "cache"), seed=0)
    for index in (1, 2):  # two neighbours become unreadable after the cache was built
        dataset.paths[dataset.images[index]].write_bytes(b"not an image")
    with pytest.warns(UserWarning, match="unreadable"):
        counts = [dataset[i]["corrupt_images"] for i in range(len(dataset))]
    assert counts == [0, 1, 1, 0]
