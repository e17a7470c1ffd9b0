"""``efsam-studio segment``: mask PNG, scores, JSON, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from efficientsam_studio.cli.main import main


@pytest.fixture()
def image_path(tmp_path: Path) -> Path:
    rgb = np.zeros((40, 64, 3), np.uint8)
    rgb[8:30, 10:40] = (30, 200, 60)
    path = tmp_path / "leaf.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_writes_best_mask_and_prints_json(
    image_path: Path, tiny_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    output = tmp_path / "mask.png"
    code, out, _ = _run(
        capsys,
        "segment", str(image_path), "--point", "20,15", "--point", "60,35,0", "--box", "5,5,45,35",
        "--model", "tiny", "--checkpoint", str(tiny_checkpoint), "--device", "cpu",
        "--output", str(output), "--json",
    )  # fmt: skip
    assert code == 0
    result = json.loads(out)
    mask = cv2.imread(str(output), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (40, 64) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 255}
    assert result["best"]["area"] == int((mask == 255).sum())
    scores = [c["score"] for c in result["candidates"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert result["prompt"] == {
        "points": [[20.0, 15.0], [60.0, 35.0]],
        "labels": [1, 0],
        "box": [5, 5, 45, 35],
    }
    assert result["prompt_note"] is None and result["size"] == [40, 64]
    if result["best"]["area"]:
        ys, xs = np.nonzero(mask)
        assert result["best"]["bbox"] == [xs.min(), ys.min(), xs.max(), ys.max()]


def test_text_output_and_default_mask_name(
    image_path, tiny_checkpoint, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = _run(
        capsys, "segment", str(image_path), "--box", "5,5,45,35", "--model", "tiny",
        "--checkpoint", str(tiny_checkpoint), "--device", "cpu",
    )  # fmt: skip
    assert code == 0
    assert (tmp_path / "leaf_mask.png").is_file()
    assert "rank" in out and "best mask written to leaf_mask.png  (encode" in out


def test_too_many_points_are_reported(image_path, tiny_checkpoint, tmp_path, capsys) -> None:
    points = [arg for i in range(7) for arg in ("--point", f"{i * 5 + 1},{i * 4 + 1}")]
    code, out, _ = _run(
        capsys, "segment", str(image_path), *points, "--model", "tiny", "--checkpoint", str(tiny_checkpoint),
        "--device", "cpu", "--output", str(tmp_path / "m.png"), "--json",
    )  # fmt: skip
    assert code == 0
    result = json.loads(out)
    assert result["dropped_points"] == [0]
    assert "most recent points" in result["prompt_note"]


def test_without_weights_says_how_to_get_them(image_path, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("EFSAM_HOME", str(tmp_path / "home"))
    code, _, err = _run(
        capsys, "segment", str(image_path), "--point", "5,5", "--output", str(tmp_path / "m.png")
    )
    assert code == 2
    assert "efsam-studio weights download vit_t" in err and "--checkpoint" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "at least one --point"),
        (["--point", "500,5"], "outside the 64x40 image"),
        (["--point=-50,-50,0"], "--point -50,-50: point (-50, -50) lies outside the 64x40 image"),
        (["--box", "100,50,200,90"], "--box 100,50,200,90: box (100, 50, 200, 90) lies outside the 64x40"),
        (["--point", "5,5", "--output", "mask.jpg"], "ending in .png"),
    ],
)
def test_bad_prompts_and_outputs(image_path, tiny_checkpoint, capsys, args, message) -> None:
    code, _, err = _run(
        capsys, "segment", str(image_path), "--model", "tiny", "--checkpoint", str(tiny_checkpoint), *args
    )
    assert code == 2
    assert message in err


def _best_mask(capsys, image_path, checkpoint, output, *prompts: str) -> np.ndarray:
    code, _, err = _run(
        capsys, "segment", str(image_path), *prompts, "--model", "tiny", "--checkpoint", str(checkpoint),
        "--device", "cpu", "--output", str(output), "--json",
    )  # fmt: skip
    assert code == 0, err
    return cv2.imread(str(output), cv2.IMREAD_UNCHANGED)


def test_prompts_follow_the_engine_rule_for_the_image(image_path, tiny_checkpoint, tmp_path, capsys) -> None:
    def best(*prompts: str) -> np.ndarray:
        return _best_mask(capsys, image_path, tiny_checkpoint, tmp_path / "m.png", *prompts)

    # a box partly outside is clipped; corners in either order
    np.testing.assert_array_equal(best("--box", "30,20,100,60"), best("--box", "30,20,64,40"))
    np.testing.assert_array_equal(best("--box", "64,40,30,20"), best("--box", "30,20,64,40"))
    # points on the far edges, or within a pixel outside, are moved onto the edge
    np.testing.assert_array_equal(best("--point", "64.5,-0.5"), best("--point", "64,0"))
    # background points alone are a prompt
    assert best("--point", "20,15,0", "--point", "60,35,0").shape == (40, 64)


def test_unparsable_point_is_an_argument_error(image_path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["segment", str(image_path), "--point", "5;5"])
    assert info.value.code == 2
    assert "--point X,Y[,LABEL]" in capsys.readouterr().err


def test_unreadable_image_is_named(tmp_path, tiny_checkpoint, capsys) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    code, _, err = _run(
        capsys,
        "segment",
        str(broken),
        "--point",
        "1,1",
        "--model",
        "tiny",
        "--checkpoint",
        str(tiny_checkpoint),
    )
    assert code == 2 and "broken.png" in err


def test_wrong_checkpoint_is_named(image_path, tmp_path, capsys) -> None:
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"\x00" * 100)
    code, _, err = _run(
        capsys, "segment", str(image_path), "--point", "1,1", "--checkpoint", str(bad),
        "--output", str(tmp_path / "m.png"),
    )  # fmt: skip
    assert code == 2 and "weights.pt" in err


@pytest.fixture(scope="module")
def tiny_onnx(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint exported to ONNX (fp32) in a temporary folder."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from efficientsam_studio.engine.onnx_export import export_onnx
    from efficientsam_studio.model import load_model

    out = tmp_path_factory.mktemp("tiny_onnx_segment")
    export_onnx(load_model("tiny", tiny_checkpoint), "tiny", out)
    return out


def test_onnx_backend_gives_the_torch_mask(image_path, tiny_checkpoint, tiny_onnx, tmp_path, capsys) -> None:
    prompt = ("--point", "20,15", "--box", "5,5,45,35", "--model", "tiny", "--device", "cpu", "--json")
    results, masks = {}, {}
    for backend, checkpoint in (("torch", tiny_checkpoint), ("onnx", tiny_onnx)):
        output = tmp_path / f"{backend}.png"
        code, out, _ = _run(
            capsys, "segment", str(image_path), *prompt, "--backend", backend,
            "--checkpoint", str(checkpoint), "--output", str(output),
        )  # fmt: skip
        assert code == 0
        results[backend] = json.loads(out)
        masks[backend] = cv2.imread(str(output), cv2.IMREAD_UNCHANGED)
    assert results["onnx"]["backend"] == "onnx" and results["onnx"]["device"] == "onnx CPU"
    assert results["torch"]["backend"] == "torch" and results["torch"]["device"] == "cpu"
    assert (masks["onnx"] == masks["torch"]).mean() >= 0.99
    torch_scores = [c["score"] for c in results["torch"]["candidates"]]
    onnx_scores = [c["score"] for c in results["onnx"]["candidates"]]
    assert np.allclose(onnx_scores, torch_scores, atol=1e-3)


def test_unknown_backend_is_an_argument_error(image_path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["segment", str(image_path), "--point", "20,15", "--backend", "tensorrt"])
    assert "tensorrt" in capsys.readouterr().err
