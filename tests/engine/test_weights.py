"""Weights manager against a local HTTP server: download, resume, retries, checksums, zip, import."""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
import threading
import zipfile
from pathlib import Path

import platformdirs
import pytest
import torch

from efficientsam_studio import paths
from efficientsam_studio.engine import weights
from efficientsam_studio.engine.checkpoints import load_state_dict_file
from efficientsam_studio.engine.download import Checksum, file_checksum
from efficientsam_studio.errors import CheckpointError, StudioError
from efficientsam_studio.model import build_model

from .weights_server import FileServer, git_blob_id, sha256

PAYLOAD = bytes(range(256)) * 12_000  # 3 MB: several 1 MiB chunks


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EFSAM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EFSAM_WEIGHTS_URL", raising=False)
    return tmp_path / "home"


@pytest.fixture
def server():
    srv = FileServer({"efficient_sam_vitt.pt": PAYLOAD})
    yield srv
    srv.close()


def _patch_file(monkeypatch, name: str, **changes) -> weights.WeightsEntry:
    """Replace the first file of catalogue entry ``name`` with ``changes`` applied."""
    entry = weights.CATALOGUE[name]
    files = (dataclasses.replace(entry.files[0], **changes), *entry.files[1:])
    patched = dataclasses.replace(entry, files=files)
    monkeypatch.setitem(weights.CATALOGUE, name, patched)
    return patched


def _serve_as_vit_t(monkeypatch, data: bytes = PAYLOAD) -> None:
    _patch_file(monkeypatch, "vit_t", size=len(data), checksum=Checksum("git-blob-sha1", git_blob_id(data)))


def _no_leftovers(home: Path) -> list[str]:
    folder = home / "weights"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- checksums and catalogue -----------------------------------------------------------------------------


def test_git_blob_id_matches_git_hash_object(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(PAYLOAD[:1000])
    if shutil.which("git"):
        expected = subprocess.run(
            ["git", "hash-object", str(path)], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert file_checksum(path, "git-blob-sha1") == expected
    assert file_checksum(path, "git-blob-sha1") == git_blob_id(PAYLOAD[:1000])
    assert file_checksum(path, "sha256") == sha256(PAYLOAD[:1000])


def test_catalogue_records_the_published_facts():
    entries = weights.catalogue()
    assert list(entries) == ["vit_t", "vit_s", "vit_t_onnx", "vit_s_onnx"]
    vit_t = entries["vit_t"].files[0]
    assert (vit_t.filename, vit_t.size) == ("efficient_sam_vitt.pt", 40_999_911)
    assert vit_t.checksum == Checksum("git-blob-sha1", "af883c49e33c68f01107be52df0ecad26a48355f")
    assert vit_t.url == "https://github.com/yformer/EfficientSAM/raw/main/weights/efficient_sam_vitt.pt"
    vit_s = entries["vit_s"].files[0]
    assert (vit_s.filename, vit_s.unpack) == ("efficient_sam_vits.pt.zip", "efficient_sam_vits.pt")
    assert vit_s.checksum is None and vit_s.size is None  # nothing was published: none is invented
    onnx = entries["vit_t_onnx"].files
    assert [f.filename for f in onnx] == [
        "efficient_sam_vitt_encoder.onnx",
        "efficient_sam_vitt_decoder.onnx",
    ]
    assert all(f.checksum.kind == "sha256" and len(f.checksum.value) == 64 for f in onnx)


def test_unknown_name_lists_the_choices():
    with pytest.raises(weights.WeightsError, match="vit_t, vit_s, vit_t_onnx, vit_s_onnx"):
        weights.installed_path("vit_x")


# --- paths ---------------------------------------------------------------------------------------------


def test_efsam_home_relocates_every_folder(home):
    assert paths.home_dir() == home
    assert paths.weights_dir() == home / "weights"
    assert paths.cache_dir() == home / "cache"
    assert paths.config_dir() == home / "config"


def test_without_efsam_home_the_platform_folders_are_used(monkeypatch):
    monkeypatch.delenv("EFSAM_HOME")
    data = Path(platformdirs.user_data_dir("efficientsam-studio", appauthor=False))
    assert paths.weights_dir() == data / "weights"
    assert paths.cache_dir() == Path(platformdirs.user_cache_dir("efficientsam-studio", appauthor=False))


# --- downloads -----------------------------------------------------------------------------------------


def test_download_with_progress_installs_under_efsam_home(monkeypatch, server, home):
    _serve_as_vit_t(monkeypatch)
    assert weights.installed_path("vit_t") is None
    seen: list[tuple[int, int | None]] = []
    path = weights.download(
        "vit_t", progress=lambda done, total: seen.append((done, total)), base_url=server.url
    )
    assert path == home / "weights" / "efficient_sam_vitt.pt"
    assert path.read_bytes() == PAYLOAD
    assert weights.installed_path("vit_t") == path
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert [done for done, _ in seen] == sorted(done for done, _ in seen) and len(seen) >= 3
    assert _no_leftovers(home) == ["efficient_sam_vitt.pt"]


def test_base_url_from_the_environment(monkeypatch, server):
    _serve_as_vit_t(monkeypatch)
    monkeypatch.setenv("EFSAM_WEIGHTS_URL", server.url + "/")
    assert weights.download("vit_t").read_bytes() == PAYLOAD
    assert server.behaviour.requests[0][0] == "/efficient_sam_vitt.pt"


def test_installed_weights_are_not_downloaded_again(monkeypatch, server):
    _serve_as_vit_t(monkeypatch)
    first = weights.download("vit_t", base_url=server.url)
    again = weights.download("vit_t", base_url=server.url)
    assert first == again and len(server.behaviour.requests) == 1


def test_dropped_connection_is_resumed_with_a_range_request(monkeypatch, server, home):
    _serve_as_vit_t(monkeypatch)
    server.behaviour.drop_after = 1_500_000
    path = weights.download("vit_t", base_url=server.url, backoff=0)
    ranges = server.range_requests()
    assert len(ranges) == 1 and ranges[0].startswith("bytes=") and ranges[0] != "bytes=0-"
    resumed_from = int(ranges[0][len("bytes=") : -1])
    assert 0 < resumed_from <= 1_500_000
    assert path.read_bytes() == PAYLOAD  # and the checksum verified, or download() would have raised
    assert _no_leftovers(home) == ["efficient_sam_vitt.pt"]


def test_server_that_ignores_range_restarts_cleanly(monkeypatch, server, home):
    _serve_as_vit_t(monkeypatch)
    store = home / "weights"
    store.mkdir(parents=True)
    (store / "efficient_sam_vitt.pt.part").write_bytes(b"stale bytes that must not be kept" * 10)
    server.behaviour.ignore_range = True
    path = weights.download("vit_t", base_url=server.url, backoff=0)
    assert server.range_requests() == ["bytes=330-"]
    assert path.read_bytes() == PAYLOAD


def test_server_answering_another_range_restarts_cleanly(monkeypatch, server, home):
    _serve_as_vit_t(monkeypatch)
    store = home / "weights"
    store.mkdir(parents=True)
    (store / "efficient_sam_vitt.pt.part").write_bytes(PAYLOAD[:1000])
    server.behaviour.wrong_range = True
    path = weights.download("vit_t", base_url=server.url, backoff=0)
    assert [r for _, r in server.behaviour.requests] == ["bytes=1000-", None]
    assert path.read_bytes() == PAYLOAD


def test_complete_partial_file_is_installed_without_downloading_again(monkeypatch, server, home):
    _serve_as_vit_t(monkeypatch)
    store = home / "weights"
    store.mkdir(parents=True)
    (store / "efficient_sam_vitt.pt.part").write_bytes(PAYLOAD)  # finished, but not yet renamed
    path = weights.download("vit_t", base_url=server.url, backoff=0)
    assert server.range_requests() == [f"bytes={len(PAYLOAD)}-"]  # answered 416: nothing left to send
    assert path.read_bytes() == PAYLOAD


def test_stale_partial_file_from_another_version_is_replaced(monkeypatch, server, home):
    _serve_as_vit_t(monkeypatch)
    store = home / "weights"
    store.mkdir(parents=True)
    (store / "efficient_sam_vitt.pt.part").write_bytes(b"x" * 1000)  # resumes fine, checksum fails
    path = weights.download("vit_t", base_url=server.url, backoff=0)
    assert [r for _, r in server.behaviour.requests] == ["bytes=1000-", None]
    assert path.read_bytes() == PAYLOAD


def test_wrong_checksum_is_a_clear_error_and_leaves_nothing_installed(monkeypatch, server, home):
    _patch_file(monkeypatch, "vit_t", size=len(PAYLOAD), checksum=Checksum("git-blob-sha1", "0" * 40))
    with pytest.raises(weights.DownloadError) as info:
        weights.download("vit_t", base_url=server.url, backoff=0)
    message = str(info.value)
    assert "efficient_sam_vitt.pt" in message and "git-blob-sha1" in message and "removed" in message
    assert weights.installed_path("vit_t") is None
    assert _no_leftovers(home) == []


def test_wrong_size_is_refused_before_downloading(monkeypatch, server, home):
    _patch_file(monkeypatch, "vit_t", size=len(PAYLOAD) + 5, checksum=None)
    with pytest.raises(weights.DownloadError, match="the server offers a file of 3,072,000 bytes") as info:
        weights.download("vit_t", base_url=server.url, backoff=0, retries=1)
    assert f"{len(PAYLOAD) + 5:,}" in str(info.value)
    assert len(server.behaviour.requests) == 1
    assert _no_leftovers(home) == []


def test_body_shorter_than_the_published_size_is_not_installed(monkeypatch, server, home):
    # Without a Content-Length header, the known size tells that the body stopped early.
    _patch_file(monkeypatch, "vit_t", size=len(PAYLOAD), checksum=None)
    server.behaviour.omit_length = True
    server.files["efficient_sam_vitt.pt"] = PAYLOAD[:-10]
    with pytest.raises(weights.DownloadError, match="closed after 3,071,990 of 3,072,000 bytes"):
        weights.download("vit_t", base_url=server.url, backoff=0, retries=0)
    assert weights.installed_path("vit_t") is None


def test_persistent_server_error_fails_after_the_retries(monkeypatch, server, home):
    _serve_as_vit_t(monkeypatch)
    server.behaviour.status = 500
    with pytest.raises(weights.DownloadError) as info:
        weights.download("vit_t", base_url=server.url, retries=2, backoff=0)
    assert "after 3 failed attempts" in str(info.value) and "HTTP 500" in str(info.value)
    assert len(server.behaviour.requests) == 3
    assert isinstance(info.value, StudioError)
    assert weights.installed_path("vit_t") is None


def test_missing_file_on_the_server_is_not_retried(monkeypatch, server):
    _serve_as_vit_t(monkeypatch)
    server.files.clear()
    with pytest.raises(weights.DownloadError, match="HTTP 404"):
        weights.download("vit_t", base_url=server.url, retries=3, backoff=0)
    assert len(server.behaviour.requests) == 1


def test_unreachable_server_is_a_clear_error(monkeypatch):
    _serve_as_vit_t(monkeypatch)
    srv = FileServer({})
    url = srv.url
    srv.close()  # nothing listens on the port any more
    with pytest.raises(weights.DownloadError, match="check the network connection"):
        weights.download("vit_t", base_url=url, retries=1, backoff=0, timeout=5)


def test_cancellation_keeps_the_partial_file_for_a_resume(monkeypatch, server, home):
    _serve_as_vit_t(monkeypatch)
    cancel = threading.Event()

    def progress(done: int, total: int | None) -> None:
        if done > 0:
            cancel.set()  # as the GUI's Cancel button would, after the first chunk

    with pytest.raises(weights.DownloadCancelled):
        weights.download("vit_t", progress=progress, cancel=cancel, base_url=server.url)
    part = home / "weights" / "efficient_sam_vitt.pt.part"
    assert weights.installed_path("vit_t") is None
    kept = part.stat().st_size
    assert 0 < kept < len(PAYLOAD)
    path = weights.download("vit_t", cancel=lambda: False, base_url=server.url)
    assert server.range_requests() == [f"bytes={kept}-"]
    assert path.read_bytes() == PAYLOAD and not part.exists()


def test_onnx_pair_downloads_both_files(monkeypatch, server, home):
    encoder, decoder = b"encoder bytes" * 100, b"decoder bytes" * 50
    server.files.update(
        {"efficient_sam_vitt_encoder.onnx": encoder, "efficient_sam_vitt_decoder.onnx": decoder}
    )
    entry = weights.CATALOGUE["vit_t_onnx"]
    files = tuple(
        dataclasses.replace(f, checksum=Checksum("sha256", sha256(data)))
        for f, data in zip(entry.files, (encoder, decoder), strict=True)
    )
    monkeypatch.setitem(weights.CATALOGUE, "vit_t_onnx", dataclasses.replace(entry, files=files))
    assert weights.installed_onnx("vit_t") is None
    seen: list[tuple[int, int | None]] = []
    weights.download("vit_t_onnx", progress=lambda d, t: seen.append((d, t)), base_url=server.url)
    pair = weights.installed_onnx("vit_t")
    assert pair is not None and pair == weights.installed_onnx("vit_t_onnx")
    assert [p.read_bytes() for p in pair] == [encoder, decoder]
    assert seen[-1] == (len(encoder) + len(decoder), len(encoder) + len(decoder))
    with pytest.raises(weights.WeightsError, match="installed_onnx"):
        weights.installed_path("vit_t_onnx")


# --- the zipped vit_s ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_bytes() -> bytes:
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.save({"model": build_model("tiny").state_dict()}, buffer)
    return buffer.getvalue()


def _zip_of(member: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # CRC-32 checked all the same
        archive.writestr(member, data)
    return buffer.getvalue()


def _vit_s_as_tiny(monkeypatch) -> None:
    # The test checkpoint is the small "tiny" architecture; the real vit_s is 26M parameters.
    monkeypatch.setitem(
        weights.CATALOGUE, "vit_s", dataclasses.replace(weights.CATALOGUE["vit_s"], model="tiny")
    )


def test_zipped_vit_s_is_unpacked_validated_and_loadable(monkeypatch, server, home, tiny_bytes):
    server.files["efficient_sam_vits.pt.zip"] = _zip_of("weights/efficient_sam_vits.pt", tiny_bytes)
    _vit_s_as_tiny(monkeypatch)
    seen: list[tuple[int, int | None]] = []
    path = weights.download("vit_s", progress=lambda d, t: seen.append((d, t)), base_url=server.url)
    assert path == weights.installed_path("vit_s") == home / "weights" / "efficient_sam_vits.pt"
    assert path.read_bytes() == tiny_bytes
    assert _no_leftovers(home) == ["efficient_sam_vits.pt"]  # the zip is gone
    assert seen[-1][0] == seen[-1][1] == len(server.files["efficient_sam_vits.pt.zip"])  # from Content-Length
    assert len(load_state_dict_file(path, "tiny")) > 0


def test_zip_without_a_checkpoint_is_rejected(monkeypatch, server, home):
    server.files["efficient_sam_vits.pt.zip"] = _zip_of("efficient_sam_vits.pt", b"not a checkpoint")
    _vit_s_as_tiny(monkeypatch)
    with pytest.raises(weights.DownloadError, match="not a usable tiny checkpoint"):
        weights.download("vit_s", base_url=server.url)
    assert weights.installed_path("vit_s") is None and _no_leftovers(home) == []


def test_damaged_zip_is_rejected(monkeypatch, server, home, tiny_bytes):
    data = bytearray(_zip_of("efficient_sam_vits.pt", tiny_bytes))
    data[5000:5060] = bytes(60)  # inside the member's data: the CRC-32 no longer matches
    server.files["efficient_sam_vits.pt.zip"] = bytes(data)
    _vit_s_as_tiny(monkeypatch)
    with pytest.raises(weights.DownloadError, match="damaged"):
        weights.download("vit_s", base_url=server.url)
    assert weights.installed_path("vit_s") is None and _no_leftovers(home) == []


# --- import --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vit_t_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "my_vitt.pt"
    torch.save({"model": build_model("vit_t").state_dict()}, path)
    return path


def test_import_detects_and_installs_a_valid_checkpoint(vit_t_file, home):
    installed = weights.import_weights(vit_t_file)
    assert installed == home / "weights" / "efficient_sam_vitt.pt" == weights.installed_path("vit_t")
    assert installed.read_bytes() == vit_t_file.read_bytes()
    assert not weights.matches_published(installed, "vit_t")  # random weights, not the published file
    assert _no_leftovers(home) == ["efficient_sam_vitt.pt"]


def test_import_of_a_zip_holding_the_checkpoint(vit_t_file, tmp_path, home):
    archive = tmp_path / "efficient_sam_vitt.pt.zip"
    archive.write_bytes(_zip_of("efficient_sam_vitt.pt", vit_t_file.read_bytes()))
    installed = weights.import_weights(archive, name="vit_t")
    assert installed.read_bytes() == vit_t_file.read_bytes()


def test_import_under_the_wrong_name_says_which_model_it_is(vit_t_file, home):
    with pytest.raises(CheckpointError, match="holds an EfficientSAM vit_t checkpoint"):
        weights.import_weights(vit_t_file, name="vit_s")
    assert _no_leftovers(home) == []


def test_import_of_a_truncated_checkpoint(vit_t_file, tmp_path, home):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(vit_t_file.read_bytes()[: vit_t_file.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as info:
        weights.import_weights(cut)
    assert str(cut) in str(info.value)
    assert weights.installed_path("vit_t") is None


def test_import_of_a_corrupt_file(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x80\x04 this is not a checkpoint" * 50)
    with pytest.raises(CheckpointError) as info:
        weights.import_weights(junk)
    assert str(junk) in str(info.value)


def test_import_of_a_sam_checkpoint_names_it(tmp_path, home):
    sam = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save(
        {
            "image_encoder.pos_embed": torch.zeros(1, 4, 4, 768),
            "image_encoder.blocks.0.attn.rel_pos_h": torch.zeros(27, 64),
            "prompt_encoder.not_a_point_embed.weight": torch.zeros(1, 256),
        },
        sam,
    )
    with pytest.raises(CheckpointError, match="SAM ViT-B checkpoint, not EfficientSAM"):
        weights.import_weights(sam)
    assert _no_leftovers(home) == []


def test_import_of_the_tiny_test_model_is_refused(tmp_path, tiny_bytes):
    path = tmp_path / "tiny.pt"
    path.write_bytes(tiny_bytes)
    with pytest.raises(CheckpointError, match="looks like: tiny"):
        weights.import_weights(path)


def test_missing_weights_message_gives_the_three_ways(home):
    message = weights.missing_weights_message("vit_t")
    assert "efsam-studio weights download vit_t" in message
    assert "efsam-studio weights import PATH" in message
    assert "--checkpoint PATH" in message
    assert str(home / "weights") in message


def test_installed_weights_are_what_load_predictor_uses(vit_t_file, home):
    from efficientsam_studio.engine import load_predictor, resolve_checkpoint

    installed = weights.import_weights(vit_t_file)
    assert resolve_checkpoint("vit_t", None) == installed
    predictor = load_predictor(model="vit_t", device="cpu")
    assert predictor is not None


def test_loader_explains_models_without_published_weights():
    from efficientsam_studio.engine import resolve_checkpoint

    with pytest.raises(CheckpointError, match="no published weights"):
        resolve_checkpoint("tiny", None)
    with pytest.raises(CheckpointError, match="efsam-studio weights download vit_t"):
        resolve_checkpoint("vit_t", None)
