"""Files of the wrong kind: ONNX models given to torch, ONNX pairs of another size, tiny checkpoints."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from efficientsam_studio.cli.main import main
from efficientsam_studio.engine import weights
from efficientsam_studio.engine.checkpoints import read_checkpoint
from efficientsam_studio.errors import CheckpointError

ONNX_HEAD = b"\x08\x0a\x12\x07pytorch\x1a\x0a2.13.0+cpu:" + bytes(200)  # how torch.onnx.export files start


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EFSAM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


# --- an ONNX model given as a torch checkpoint ----------------------------------------------------------


@pytest.mark.parametrize("name", ["vit_t_encoder.onnx", "renamed.pt"])
def test_an_onnx_model_given_as_a_torch_checkpoint_is_named_as_such(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(ONNX_HEAD)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    assert str(info.value) == f"{path} is an ONNX model, not a torch checkpoint: use --backend onnx"


def test_the_torch_backend_names_an_onnx_checkpoint(tmp_path):
    from efficientsam_studio.engine import load_predictor

    path = tmp_path / "model.pt"
    path.write_bytes(ONNX_HEAD)
    with pytest.raises(CheckpointError, match="is an ONNX model, not a torch checkpoint: use --backend onnx"):
        load_predictor(model="vit_t", checkpoint=path, device="cpu", backend="torch")


def test_torch_files_do_not_look_like_onnx(tiny_checkpoint):
    from efficientsam_studio.engine.checkpoints import looks_like_onnx

    assert not looks_like_onnx(tiny_checkpoint.read_bytes()[:16])  # zip
    assert not looks_like_onnx(b"\x80\x02\x8a\x0alz\xfc\x9cF\xf9 j\xa8P")  # legacy pickle
    assert looks_like_onnx(ONNX_HEAD[:16])


# --- checkpoints of the tiny model are used in place, not imported ---------------------------------------


def test_import_of_a_tiny_checkpoint_says_how_to_use_it(tiny_checkpoint, home):
    for name in (None, "vit_t"):
        with pytest.raises(CheckpointError) as info:
            weights.import_weights(tiny_checkpoint, name=name)
        message = str(info.value)
        assert f"--model tiny --checkpoint {tiny_checkpoint}" in message
        assert "--name" not in message and "choose model" not in message
    assert not (home / "weights").exists() or not list((home / "weights").iterdir())


def test_cli_import_of_a_tiny_checkpoint_points_to_an_option_that_exists(tiny_checkpoint, capsys):
    for extra in ([], ["--name", "vit_t"], ["--name", "vit_s"]):
        assert main(["weights", "import", str(tiny_checkpoint), *extra]) == 2
        err = capsys.readouterr().err
        assert f"--model tiny --checkpoint {tiny_checkpoint}" in err
        assert "--name tiny" not in err and "pass --name" not in err


# --- the ONNX backend checks the model size the files record ---------------------------------------------


@pytest.fixture(scope="module")
def tiny_export(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from efficientsam_studio.engine.onnx_export import export_onnx
    from efficientsam_studio.model import load_model

    out = tmp_path_factory.mktemp("tiny_onnx")
    export_onnx(load_model("tiny", tiny_checkpoint), "tiny", out)
    return out


def test_an_export_of_another_size_is_refused(tiny_export):
    from efficientsam_studio.engine import load_predictor
    from efficientsam_studio.engine.onnx_backend import OnnxModelError

    encoder = tiny_export / "tiny_encoder.onnx"
    with pytest.raises(OnnxModelError) as info:
        load_predictor(model="vit_s", checkpoint=encoder, device="cpu", backend="onnx")
    assert str(info.value) == (
        f"{encoder}: holds an EfficientSAM tiny ONNX model, but model 'vit_s' was requested; "
        "choose model 'tiny' (e.g. --model tiny)"
    )
    assert load_predictor(model="tiny", checkpoint=encoder, device="cpu", backend="onnx").model_name == "tiny"


def test_the_torch_backend_names_a_real_onnx_file_renamed_pt(tiny_export, tmp_path):
    renamed = tmp_path / "weights.pt"
    shutil.copyfile(tiny_export / "tiny_encoder.onnx", renamed)
    with pytest.raises(CheckpointError, match="is an ONNX model, not a torch checkpoint"):
        read_checkpoint(renamed)


def test_published_onnx_files_tell_their_model_by_digest_or_name(tmp_path):
    from efficientsam_studio.engine.onnx_backend import published_model

    vits = weights.CATALOGUE["vit_s_onnx"].files[0].checksum.value
    assert published_model(tmp_path / "encoder.onnx", vits) == "vit_s"  # the digest wins over any name
    assert published_model(tmp_path / "efficient_sam_vitt_encoder.onnx", vits) == "vit_s"
    assert published_model(tmp_path / "efficient_sam_vitt_encoder.onnx", "0" * 64) == "vit_t"
    assert published_model(tmp_path / "encoder.onnx", "0" * 64) is None  # unknown: no guess
