"""The weights store under failure: bad downloads, two downloads at once, full disks, damaged files."""

from __future__ import annotations

import dataclasses
import errno
import io
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from efficientsam_studio.cli.main import main
from efficientsam_studio.engine import download as download_module
from efficientsam_studio.engine import weights
from efficientsam_studio.engine.download import Checksum, fetch_file
from efficientsam_studio.errors import CheckpointError
from efficientsam_studio.model import build_model

from .weights_server import FileServer, git_blob_id

PAYLOAD = bytes(range(256)) * 12_000  # 3 MB: several 1 MiB chunks
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EFSAM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EFSAM_WEIGHTS_URL", raising=False)
    monkeypatch.setattr(weights, "DOWNLOAD_BACKOFF_S", 0.0)
    monkeypatch.setattr(weights, "DOWNLOAD_RETRIES", 1)
    return tmp_path / "home"


@pytest.fixture
def server():
    srv = FileServer({"efficient_sam_vitt.pt": PAYLOAD})
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def tiny_bytes() -> bytes:
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.save({"model": build_model("tiny").state_dict()}, buffer)
    return buffer.getvalue()


def _patch_entry(monkeypatch, name: str, model: str | None = None, **changes) -> None:
    entry = weights.CATALOGUE[name]
    files = (dataclasses.replace(entry.files[0], **changes), *entry.files[1:])
    monkeypatch.setitem(
        weights.CATALOGUE, name, dataclasses.replace(entry, files=files, model=model or entry.model)
    )


def _serve_as_vit_t(monkeypatch, data: bytes = PAYLOAD) -> None:
    _patch_entry(monkeypatch, "vit_t", size=len(data), checksum=Checksum("git-blob-sha1", git_blob_id(data)))


def _zip_of(member: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(member, data)
    return buffer.getvalue()


def _store_files(home: Path) -> list[str]:
    folder = home / "weights"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- a bad download never costs the installed weights ---------------------------------------------------


def test_forced_download_of_a_bad_archive_keeps_the_installed_vit_s(monkeypatch, server, home, tiny_bytes):
    _patch_entry(monkeypatch, "vit_s", model="tiny")  # the test checkpoint is the small architecture
    server.files["efficient_sam_vits.pt.zip"] = _zip_of("efficient_sam_vits.pt", tiny_bytes)
    installed = weights.download("vit_s", base_url=server.url)
    server.files["efficient_sam_vits.pt.zip"] = _zip_of("efficient_sam_vits.pt", b"\x80\x04 junk" * 100)
    with pytest.raises(weights.DownloadError, match="not a usable tiny checkpoint") as info:
        weights.download("vit_s", base_url=server.url, force=True)
    assert f"the installed {installed} was left as it was" in str(info.value)
    assert installed.read_bytes() == tiny_bytes
    assert weights.installed_path("vit_s") == installed
    assert _store_files(home) == ["efficient_sam_vits.pt"]  # the bad zip and its checkpoint are gone


def test_forced_download_of_a_bad_unzipped_checkpoint_keeps_the_installed_one(
    monkeypatch, server, home, tiny_bytes
):
    _patch_entry(monkeypatch, "vit_t", model="tiny", size=None, checksum=None)  # only loading checks it
    server.files["efficient_sam_vitt.pt"] = tiny_bytes
    installed = weights.download("vit_t", base_url=server.url)
    server.files["efficient_sam_vitt.pt"] = b"\x80\x04 junk" * 100
    with pytest.raises(weights.DownloadError, match="not a usable tiny checkpoint"):
        weights.download("vit_t", base_url=server.url, force=True)
    assert installed.read_bytes() == tiny_bytes
    assert _store_files(home) == ["efficient_sam_vitt.pt"]


# --- one download of a file at a time --------------------------------------------------------------------


def test_a_second_download_of_the_same_file_is_refused_while_it_runs(monkeypatch, server, home, capsys):
    _serve_as_vit_t(monkeypatch)
    monkeypatch.setenv("EFSAM_WEIGHTS_URL", server.url)
    store = home / "weights"
    store.mkdir(parents=True)
    script = (
        "import sys; from pathlib import Path\n"
        "from efficientsam_studio.engine.download import DownloadLock\n"
        "with DownloadLock(Path(sys.argv[1])):\n    print('held', flush=True); sys.stdin.readline()"
    )
    holder = subprocess.Popen(  # another process holding the download lock of the file
        [sys.executable, "-c", script, str(store / "efficient_sam_vitt.pt")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(weights.DownloadInProgress, match="efficient_sam_vitt.pt .* is already running"):
            weights.download("vit_t")
        assert main(["weights", "download", "vit_t"]) == 2
        assert "is already running" in capsys.readouterr().err
        assert server.behaviour.requests == []  # the running download's .part was not touched
    finally:
        holder.communicate("\n", timeout=30)
    assert weights.download("vit_t").read_bytes() == PAYLOAD
    assert _store_files(home) == ["efficient_sam_vitt.pt"]  # the lock file is removed afterwards


def test_fetch_file_holds_the_lock_and_releases_it(server, tmp_path):
    dest = tmp_path / "efficient_sam_vitt.pt"
    lock = download_module.DownloadLock(dest)
    with lock, pytest.raises(download_module.DownloadInProgress, match="already running"):
        fetch_file(f"{server.url}/efficient_sam_vitt.pt", dest, retries=0, backoff=0)
    assert fetch_file(f"{server.url}/efficient_sam_vitt.pt", dest, retries=0, backoff=0) == dest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["efficient_sam_vitt.pt"]


# --- a complete archive kept by a failed unpack is reused ------------------------------------------------


def test_archive_kept_after_a_full_disk_is_unpacked_without_downloading_again(
    monkeypatch, server, home, tiny_bytes
):
    _patch_entry(monkeypatch, "vit_s", model="tiny")
    server.files["efficient_sam_vits.pt.zip"] = _zip_of("efficient_sam_vits.pt", tiny_bytes)

    def disk_full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(weights, "shutil", SimpleNamespace(copyfileobj=disk_full))
        with pytest.raises(weights.DownloadError) as info:
            weights.download("vit_s", base_url=server.url)
    archive = home / "weights" / "efficient_sam_vits.pt.zip"
    message = str(info.value)
    assert "the disk is full" in message and f"archive {archive} (" in message and "is kept" in message
    assert "without downloading it again" in message and "MB free" in message
    assert _store_files(home) == ["efficient_sam_vits.pt.zip"]

    seen: list[tuple[int, int | None]] = []
    path = weights.download("vit_s", base_url=server.url, progress=lambda d, t: seen.append((d, t)))
    assert path.read_bytes() == tiny_bytes
    assert len(server.behaviour.requests) == 1  # only the first run downloaded
    assert seen[-1] == (archive_size := len(server.files["efficient_sam_vits.pt.zip"]), archive_size)
    assert _store_files(home) == ["efficient_sam_vits.pt"]


# --- damaged installed files -----------------------------------------------------------------------------


def test_a_file_of_another_size_is_damaged_listed_so_and_replaced(monkeypatch, server, home, capsys):
    _serve_as_vit_t(monkeypatch)
    monkeypatch.setenv("EFSAM_WEIGHTS_URL", server.url)
    cut = home / "weights" / "efficient_sam_vitt.pt"
    cut.parent.mkdir(parents=True)
    cut.write_bytes(PAYLOAD[:1000])
    assert weights.installed_path("vit_t") is None
    assert weights.damaged_files("vit_t") == [(cut, 1000, len(PAYLOAD))]
    assert "are damaged (efficient_sam_vitt.pt has 1,000 bytes instead of" in weights.missing_weights_message(
        "vit_t"
    )
    assert main(["weights", "list"]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[0] == "vit_t" and row[3] == "damaged" and row[4] == str(cut)

    assert main(["weights", "download", "vit_t"]) == 0
    assert "already installed" not in capsys.readouterr().out
    assert cut.read_bytes() == PAYLOAD and weights.installed_path("vit_t") == cut


@pytest.mark.parametrize(
    "name, file", [("vit_s", "efficient_sam_vits.pt"), ("vit_t_onnx", "efficient_sam_vitt_encoder.onnx")]
)
def test_an_empty_file_whose_size_is_not_published_is_called_empty(home, name, file):
    empty = home / "weights" / file
    empty.parent.mkdir(parents=True)
    empty.write_bytes(b"")
    assert weights.damaged_files(name) == [(empty, 0, None)]
    message = weights.missing_weights_message(name)
    assert f"{file} is empty" in message and "instead of" not in message


def test_a_truncated_store_checkpoint_says_how_to_download_it_again(home):
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.save({"model": build_model("vit_t").state_dict()}, buffer)
    cut = home / "weights" / "efficient_sam_vitt.pt"
    cut.parent.mkdir(parents=True)
    cut.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    from efficientsam_studio.engine import load_predictor
    from efficientsam_studio.engine.checkpoints import read_checkpoint

    with pytest.raises(CheckpointError) as info:
        read_checkpoint(cut)
    message = str(info.value)
    assert "truncated or corrupt" in message and "efsam-studio weights download vit_t --force" in message
    assert "internal" not in message and "If you are seeing this error" not in message
    with pytest.raises(CheckpointError, match="installed vit_t weights .* are damaged"):
        load_predictor(model="vit_t", device="cpu", backend="torch")


# --- messages --------------------------------------------------------------------------------------------


def test_persistent_server_error_mentions_no_kept_bytes_when_none_came(monkeypatch, server, home):
    _serve_as_vit_t(monkeypatch)
    server.behaviour.status = 500
    with pytest.raises(weights.DownloadError, match="HTTP 500") as info:
        weights.download("vit_t", base_url=server.url)
    assert "kept" not in str(info.value) and ".part" not in str(info.value)


class _FillingDisk:
    """A file handle on a disk that fills up after ``room`` bytes."""

    def __init__(self, handle, room: int) -> None:
        self.handle, self.room = handle, room

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.handle.write(data)

    def __getattr__(self, name: str):
        return getattr(self.handle, name)

    def __enter__(self) -> _FillingDisk:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.handle.close()


def test_full_disk_during_download_keeps_the_part_for_a_resume(monkeypatch, server, home):
    _serve_as_vit_t(monkeypatch)
    part = home / "weights" / "efficient_sam_vitt.pt.part"

    def opener(path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)  # noqa: SIM115 (closed by the caller)
        return _FillingDisk(handle, 1 << 20) if "w" in mode or "a" in mode else handle

    with monkeypatch.context() as patch:
        patch.setattr(download_module, "open", opener, raising=False)
        with pytest.raises(weights.DownloadError) as info:
            weights.download("vit_t", base_url=server.url)
    message = str(info.value)
    assert "the disk is full" in message and "No space left" not in message
    assert f"the 1,048,576 bytes received so far are kept in {part}" in message and "resumes" in message
    assert part.stat().st_size == 1 << 20
    assert weights.download("vit_t", base_url=server.url).read_bytes() == PAYLOAD
    assert server.range_requests() == [f"bytes={1 << 20}-"]


def test_interrupted_cli_download_says_the_next_run_resumes(monkeypatch, home, capsys):
    part = home / "weights" / "efficient_sam_vitt.pt.part"

    def interrupted(*args: object, **kwargs: object) -> None:
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(b"x" * 1234)
        raise KeyboardInterrupt

    monkeypatch.setattr(weights, "download", interrupted)
    assert main(["weights", "download", "vit_t"]) == 130
    err = capsys.readouterr().err
    assert f"the 1,234 bytes downloaded so far are kept in {part}" in err
    assert "efsam-studio weights download vit_t resumes from there" in err and "interrupted" in err
