"""`efsam-studio weights list | download | import | path` end to end, against a local HTTP server."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from efficientsam_studio.cli.main import main
from efficientsam_studio.engine import weights
from efficientsam_studio.engine.download import Checksum
from efficientsam_studio.model import build_model
from tests.engine.weights_server import FileServer, git_blob_id

PAYLOAD = b"published weights stand-in " * 40_000  # about 1 MB


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EFSAM_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(weights, "DOWNLOAD_BACKOFF_S", 0.0)
    monkeypatch.setattr(weights, "DOWNLOAD_RETRIES", 1)
    return tmp_path / "home"


@pytest.fixture
def server(monkeypatch):
    srv = FileServer({"efficient_sam_vitt.pt": PAYLOAD})
    monkeypatch.setenv("EFSAM_WEIGHTS_URL", srv.url)
    entry = weights.CATALOGUE["vit_t"]
    remote = dataclasses.replace(
        entry.files[0], size=len(PAYLOAD), checksum=Checksum("git-blob-sha1", git_blob_id(PAYLOAD))
    )
    monkeypatch.setitem(weights.CATALOGUE, "vit_t", dataclasses.replace(entry, files=(remote,)))
    yield srv
    srv.close()


def test_list_shows_every_entry_with_size_and_state(capsys, home):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "INSTALLED", "WHERE"]
    assert lines[1].split() == ["vit_t", "41.0", "MB", "no", "-"]
    assert lines[2].split()[:3] == ["vit_s", "~105.7", "MB"]
    assert {line.split()[0] for line in lines[1:5]} == {"vit_t", "vit_s", "vit_t_onnx", "vit_s_onnx"}
    assert str(home / "weights") in out


def test_path_of_missing_weights_says_how_to_get_them(capsys):
    assert main(["weights", "path", "vit_t"]) == 1
    err = capsys.readouterr().err
    assert "efsam-studio weights download vit_t" in err and "--checkpoint PATH" in err


def test_download_then_path_and_list(capsys, server, home):
    assert main(["weights", "download", "vit_t"]) == 0
    captured = capsys.readouterr()
    installed = home / "weights" / "efficient_sam_vitt.pt"
    assert str(installed) in captured.out
    assert "vit_t" in captured.err  # the tqdm bar goes to stderr
    assert installed.read_bytes() == PAYLOAD

    assert main(["weights", "path", "vit_t"]) == 0
    assert capsys.readouterr().out.strip() == str(installed)
    assert main(["weights", "list"]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[0] == "vit_t" and row[3] == "yes" and row[4] == str(installed)

    assert main(["weights", "download", "vit_t"]) == 0  # already installed: nothing fetched
    assert "already installed" in capsys.readouterr().out
    assert len(server.behaviour.requests) == 1


def test_download_server_error_is_reported_without_traceback(capsys, server, home):
    server.behaviour.status = 503
    assert main(["weights", "download", "vit_t"]) == 2
    err = capsys.readouterr().err
    assert "efsam-studio weights: error:" in err and "HTTP 503" in err and "Traceback" not in err
    assert len(server.behaviour.requests) == 2  # the first attempt and one retry
    assert not (home / "weights" / "efficient_sam_vitt.pt").exists()


def test_download_unknown_name(capsys):
    assert main(["weights", "download", "vit_h"]) == 2
    assert "choose one of: vit_t, vit_s" in capsys.readouterr().err


def test_import_valid_and_invalid_files(capsys, tmp_path, home):
    good = tmp_path / "mine.pt"
    torch.manual_seed(0)
    torch.save({"model": build_model("vit_t").state_dict()}, good)
    assert main(["weights", "import", str(good)]) == 0
    out = capsys.readouterr().out
    assert "imported" in out and "as vit_t" in out
    assert (home / "weights" / "efficient_sam_vitt.pt").read_bytes() == good.read_bytes()

    bad = tmp_path / "half.pt"
    bad.write_bytes(good.read_bytes()[:1000])
    assert main(["weights", "import", str(bad), "--name", "vit_s"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "truncated or corrupt" in err
    assert not (home / "weights" / "efficient_sam_vits.pt").exists()


def test_import_of_an_onnx_file_says_how_to_use_it(capsys, tmp_path, home):
    encoder = tmp_path / "vit_t_encoder.onnx"
    encoder.write_bytes(b"\x08\x07\x12\x07pytorch")
    assert main(["weights", "import", str(encoder)]) == 2
    err = capsys.readouterr().err
    assert "ONNX" in err and f"--backend onnx --checkpoint {encoder}" in err
    assert "corrupt" not in err
    assert not (home / "weights").exists() or not list((home / "weights").iterdir())


def test_import_under_the_wrong_name_suggests_the_name_option(capsys, tmp_path, home):
    vit_t = tmp_path / "mine.pt"
    torch.save({"model": build_model("vit_t").state_dict()}, vit_t)
    assert main(["weights", "import", str(vit_t), "--name", "vit_s"]) == 2
    err = capsys.readouterr().err
    assert "--name vit_t" in err and "--model" not in err
    assert not (home / "weights" / "efficient_sam_vits.pt").exists()
