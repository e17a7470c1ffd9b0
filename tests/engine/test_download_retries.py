"""A download that waits to try again says so: ``on_retry`` in the engine, a line on the command line and
the progress dialog's text in the app."""

from __future__ import annotations

import dataclasses

import pytest

from efficientsam_studio.cli.main import main
from efficientsam_studio.engine import weights
from efficientsam_studio.engine.download import Checksum

from .weights_server import FileServer, git_blob_id

PAYLOAD = bytes(range(256)) * 8_000  # 2 MB: the first body can be cut after its first chunk


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EFSAM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EFSAM_WEIGHTS_URL", raising=False)
    return tmp_path / "home"


@pytest.fixture
def server(monkeypatch):
    srv = FileServer({"efficient_sam_vitt.pt": PAYLOAD})
    entry = weights.CATALOGUE["vit_t"]
    remote = dataclasses.replace(
        entry.files[0], size=len(PAYLOAD), checksum=Checksum("git-blob-sha1", git_blob_id(PAYLOAD))
    )
    monkeypatch.setitem(weights.CATALOGUE, "vit_t", dataclasses.replace(entry, files=(remote,)))
    yield srv
    srv.close()


def test_each_retry_is_announced_with_its_attempt_and_delay(server):
    server.behaviour.status = 503
    seen = []
    with pytest.raises(weights.DownloadError, match="after 3 failed attempts"):
        weights.download(
            "vit_t", base_url=server.url, retries=2, backoff=0.01, on_retry=lambda *a: seen.append(a)
        )
    assert [call[:3] for call in seen] == [(2, 3, 0.01), (3, 3, 0.02)]
    assert all("HTTP 503" in reason for *_, reason in seen)


def test_a_dropped_connection_is_announced_and_the_download_goes_on(server):
    server.behaviour.drop_after = 1_500_000
    seen = []
    path = weights.download("vit_t", base_url=server.url, backoff=0, on_retry=lambda *a: seen.append(a))
    assert path.read_bytes() == PAYLOAD and len(seen) == 1 and seen[0][:2] == (2, 5)


def test_the_command_line_prints_a_line_for_each_retry(capsys, server, monkeypatch):
    monkeypatch.setattr(weights, "DOWNLOAD_BACKOFF_S", 0.0)
    monkeypatch.setenv("EFSAM_WEIGHTS_URL", server.url)
    server.behaviour.drop_after = 1_500_000
    assert main(["weights", "download", "vit_t"]) == 0
    err = capsys.readouterr().err
    assert "connection failed (" in err and "trying again now (attempt 2 of 5)" in err
