"""``efsam-studio export-onnx`` given ONNX files instead of the torch checkpoint they came from."""

from __future__ import annotations

import pytest

from efficientsam_studio.cli.main import main

pytest.importorskip("torch")


def test_an_onnx_checkpoint_is_refused_with_advice_that_fits_the_command(tmp_path, capsys):
    onnx = tmp_path / "tiny_encoder.onnx"
    onnx.write_bytes(b"\x08\x08\x12\x07pytorch\x1a\x032.0" + bytes(64))  # an ONNX ModelProto's first fields
    out = tmp_path / "out"
    assert main(["export-onnx", "--model", "tiny", "--checkpoint", str(onnx), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert f"--checkpoint {onnx} is already ONNX: export-onnx starts from the torch checkpoint" in err
    assert "--backend onnx --checkpoint" in err and not out.exists()
