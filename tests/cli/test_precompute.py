"""``efsam-studio precompute``: fills the disk cache, skips cached images, resumes, reports bad files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from efficientsam_studio.cli.main import main
from efficientsam_studio.engine.cache_disk import SUFFIX
from efficientsam_studio.engine.torch_backend import TorchPredictor


def _make_folder(folder: Path, count: int = 4) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        image = rng.integers(0, 255, size=(40 + i, 50, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"img{i}.png"), image)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("not an image, not listed")
    return folder


@pytest.fixture
def encodes(monkeypatch):
    """Counts encoder runs; ``encodes["interrupt_after"] = k`` raises KeyboardInterrupt on run k + 1."""
    state = {"count": 0, "interrupt_after": None}
    original = TorchPredictor._encode

    def counting(self, image):
        if state["interrupt_after"] is not None and state["count"] >= state["interrupt_after"]:
            raise KeyboardInterrupt
        state["count"] += 1
        return original(self, image)

    monkeypatch.setattr(TorchPredictor, "_encode", counting)
    return state


def _run(folder: Path, cache: Path, checkpoint: Path, *options: str) -> int:
    return main(
        ["precompute", str(folder), "--model", "tiny", "--checkpoint", str(checkpoint), "--backend", "torch",
         "--device", "cpu", "--cache-dir", str(cache), *options]
    )  # fmt: skip


def _entries(cache: Path) -> list[Path]:
    return sorted((cache / "embeddings").glob(f"*{SUFFIX}"))


def test_precompute_caches_every_readable_image_and_reports_bad_ones(
    tmp_path, tiny_checkpoint, encodes, capsys
):
    folder = _make_folder(tmp_path / "images")
    cache = tmp_path / "cache"
    assert _run(folder, cache, tiny_checkpoint) == 1  # one unreadable image
    out = capsys.readouterr().out
    assert "5 images: 4 encoded, 0 already cached, 1 unreadable" in out
    assert "broken.jpg" in out
    assert encodes["count"] == 4 and len(_entries(cache)) == 4

    assert _run(folder, cache, tiny_checkpoint) == 1
    assert "0 encoded, 4 already cached" in capsys.readouterr().out
    assert encodes["count"] == 4


def test_interrupted_precompute_resumes_with_only_the_rest(tmp_path, tiny_checkpoint, encodes, capsys):
    folder = _make_folder(tmp_path / "images", count=5)
    cache = tmp_path / "cache"
    encodes["interrupt_after"] = 2
    assert _run(folder, cache, tiny_checkpoint) == 130
    out = capsys.readouterr().out
    assert "interrupted" in out and "2 encoded" in out
    assert len(_entries(cache)) == 2
    assert not list((cache / "embeddings").glob(".tmp-*"))

    encodes["interrupt_after"] = None
    assert _run(folder, cache, tiny_checkpoint) == 1
    assert "3 encoded, 2 already cached, 1 unreadable" in capsys.readouterr().out
    assert encodes["count"] == 5 and len(_entries(cache)) == 5


def test_corrupt_entry_is_recomputed_by_the_next_run(tmp_path, tiny_checkpoint, encodes, capsys):
    folder = _make_folder(tmp_path / "images", count=2)
    cache = tmp_path / "cache"
    _run(folder, cache, tiny_checkpoint)
    victim = _entries(cache)[0]
    victim.write_bytes(victim.read_bytes()[:1000])  # truncated
    capsys.readouterr()
    _run(folder, cache, tiny_checkpoint)
    assert "1 encoded, 1 already cached" in capsys.readouterr().out
    assert encodes["count"] == 3


def test_missing_or_empty_folder_is_a_clear_error(tmp_path, tiny_checkpoint, capsys):
    assert _run(tmp_path / "nowhere", tmp_path / "cache", tiny_checkpoint) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert _run(tmp_path / "empty", tmp_path / "cache", tiny_checkpoint) == 2
    assert "no images in" in capsys.readouterr().err


def _readable_folder(folder: Path, count: int) -> Path:
    _make_folder(folder, count)
    (folder / "broken.jpg").unlink()
    return folder


def test_an_entry_with_a_damaged_image_size_is_recomputed(tmp_path, tiny_checkpoint, encodes, capsys):
    folder = _readable_folder(tmp_path / "images", count=1)  # 40 x 50
    cache = tmp_path / "cache"
    assert _run(folder, cache, tiny_checkpoint) == 0
    (victim,) = _entries(cache)
    data = victim.read_bytes()
    victim.write_bytes(data.replace(b'"image_size": [40, 50]', b'"image_size": [90, 50]'))  # same length
    capsys.readouterr()
    assert _run(folder, cache, tiny_checkpoint) == 0
    assert "1 encoded, 0 already cached" in capsys.readouterr().out
    assert encodes["count"] == 2 and victim.read_bytes() == data


@pytest.mark.parametrize("limit", ["0", "-1", "nan", "inf"])
def test_a_cache_limit_that_is_not_a_positive_number_is_refused(
    tmp_path, tiny_checkpoint, encodes, capsys, limit
):
    folder = _readable_folder(tmp_path / "images", count=1)
    assert _run(folder, tmp_path / "cache", tiny_checkpoint, f"--max-cache-gb={limit}") == 2
    assert "must be a positive number of GB" in capsys.readouterr().err
    assert encodes["count"] == 0


def test_embeddings_evicted_at_once_count_as_not_stored(tmp_path, tiny_checkpoint, encodes, capsys):
    folder = _readable_folder(tmp_path / "images", count=3)
    assert _run(folder, tmp_path / "cache", tiny_checkpoint, "--max-cache-gb", "0.001") == 1
    captured = capsys.readouterr()
    assert "3 images: 0 encoded, 0 already cached, 0 unreadable, 3 not stored" in captured.out
    assert "cache limit of 1.0 MB leaves no room for them (one embedding takes about 2.2 MB)" in captured.out
    assert "need about 6.6 MB but the cache is limited to 1.0 MB" in captured.err
    assert _entries(tmp_path / "cache") == []


def test_embeddings_evicted_later_in_the_run_make_it_fail(tmp_path, tiny_checkpoint, encodes, capsys):
    folder = _readable_folder(tmp_path / "images", count=3)
    assert _run(folder, tmp_path / "cache", tiny_checkpoint, "--max-cache-gb", "0.005") == 1  # room for 2
    out = capsys.readouterr().out
    assert "3 images: 3 encoded, 0 already cached, 0 unreadable, 1 not stored" in out
    assert "1 embeddings were evicted later in the run" in out
    assert len(_entries(tmp_path / "cache")) == 2


def test_the_images_are_those_the_app_lists(tmp_path, tiny_checkpoint, encodes, capsys):
    folder = _readable_folder(tmp_path / "images", count=1)
    assert cv2.imwrite(str(folder / "palette.gif"), np.full((8, 8, 3), 40, dtype=np.uint8))
    (folder / "._img0.JPG").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    (folder / "scan.jp2").write_bytes(b"\x00\x00\x00\x0cjP  \r\n\x87\n not decodable here")
    assert _run(folder, tmp_path / "cache", tiny_checkpoint) == 0
    assert "2 images: 2 encoded, 0 already cached, 0 unreadable, 0 not stored" in capsys.readouterr().out
    assert encodes["count"] == 2


def test_an_interrupted_run_counts_the_finished_images_of_the_whole_folder(
    tmp_path, tiny_checkpoint, encodes, capsys
):
    folder = _make_folder(tmp_path / "images", count=5)  # broken.jpg and img0..img4.png
    encodes["interrupt_after"] = 2
    assert _run(folder, tmp_path / "cache", tiny_checkpoint) == 130
    out = capsys.readouterr().out
    assert (
        "3 of 6 images: 2 encoded, 0 already cached, 1 unreadable, 0 not stored "
        "(interrupted: run the same command again to continue)"
    ) in out


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path, tiny_checkpoint, encodes, capsys):
    folder = _readable_folder(tmp_path / "images", count=2)
    assert _run(folder, tmp_path / "cache", tiny_checkpoint) == 0
    captured = capsys.readouterr()
    assert "2 images: 2 encoded" in captured.out
    assert captured.err == ""


def test_the_model_is_one_of_the_models(tmp_path, tiny_checkpoint, capsys):
    folder = _readable_folder(tmp_path / "images", count=1)
    with pytest.raises(SystemExit):
        _run(folder, tmp_path / "cache", tiny_checkpoint, "--model", "vit_x")
    assert "invalid choice: 'vit_x'" in capsys.readouterr().err
