"""ONNX export and the ONNX Runtime backend: agreement with torch, file discovery, no torch import."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from efficientsam_studio.engine import load_predictor  # noqa: E402
from efficientsam_studio.engine.cache import predictor_model_key  # noqa: E402
from efficientsam_studio.engine.onnx_backend import (  # noqa: E402
    OnnxModelError,
    OnnxPredictor,
    export_dir_for,
    find_onnx_pair,
)


@pytest.fixture(scope="session")
def tiny_export(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint exported once (fp32 + int8) into a temporary folder."""
    from efficientsam_studio.engine.onnx_export import export_onnx
    from efficientsam_studio.model import load_model

    out = tmp_path_factory.mktemp("tiny_onnx")
    report = export_onnx(load_model("tiny", tiny_checkpoint), "tiny", out, quantize="int8")
    assert report.encoder_max_abs_diff < 1e-4 and report.logits_max_abs_diff < 1e-4
    return out


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    y, x = np.mgrid[0:90, 0:140]
    rgb = np.stack([x * 1.8, y * 2.5, (x + y) % 256], axis=-1)
    rgb[30:60, 40:90] = (250, 30, 20)
    return rgb.astype(np.uint8)


@pytest.fixture(scope="module")
def torch_predictor(tiny_checkpoint: Path):
    return load_predictor(model="tiny", checkpoint=tiny_checkpoint, device="cpu", backend="torch")


@pytest.fixture(scope="module")
def onnx_predictor(tiny_export: Path):
    return load_predictor(model="tiny", checkpoint=tiny_export, device="cpu", backend="onnx")


PROMPTS = [
    {"point_coords": np.array([[70.0, 45.0]]), "point_labels": np.array([1])},
    {"point_coords": np.array([[70.0, 45.0], [10.0, 80.0]]), "point_labels": np.array([1, 0])},
    {"box": np.array([35.0, 25.0, 95.0, 65.0])},
    {"box": np.array([35.0, 25.0, 95.0, 65.0]), "point_coords": np.array([[60, 40]]), "point_labels": [1]},
]


def test_onnx_embedding_matches_torch(torch_predictor, onnx_predictor, image):
    torch_predictor.set_image(image)
    onnx_predictor.set_image(image)
    reference = torch_predictor.get_image_embedding()
    actual = onnx_predictor.get_image_embedding()
    assert actual.shape == (1, 256, 64, 64) and actual.dtype == np.float32
    assert np.abs(actual - reference).max() < 1e-4


@pytest.mark.parametrize("prompt", PROMPTS, ids=["point", "pos+neg", "box", "box+point"])
@pytest.mark.parametrize("multimask", [True, False])
def test_onnx_predict_matches_torch(torch_predictor, onnx_predictor, image, prompt, multimask):
    torch_predictor.set_image(image)
    onnx_predictor.set_embedding(torch_predictor.get_image_embedding(), image.shape[:2])
    t_masks, t_scores, t_logits = torch_predictor.predict(**prompt, multimask_output=multimask)
    o_masks, o_scores, o_logits = onnx_predictor.predict(**prompt, multimask_output=multimask)
    k = 3 if multimask else 1
    assert o_masks.shape == (k, *image.shape[:2]) and o_masks.dtype == bool
    assert o_scores.shape == (k,) and o_logits.shape == (k, 256, 256)
    assert np.abs(o_scores - t_scores).max() < 1e-4
    assert np.abs(o_logits - t_logits).max() < 1e-3
    assert (o_masks == t_masks).mean() >= 0.999


def test_predict_batch_matches_single_prompts_and_torch(torch_predictor, onnx_predictor, image):
    onnx_predictor.set_image(image)
    torch_predictor.set_image(image)
    boxes = np.array([[35.0, 25.0, 95.0, 65.0], [0.0, 0.0, 60.0, 50.0], [80, 10, 139, 89]])
    batch = onnx_predictor.predict_batch(boxes=boxes)
    masks, scores, logits = batch
    assert masks.shape == (3, 3, *image.shape[:2]) and scores.shape == (3, 3)
    for i, box in enumerate(boxes):
        single = onnx_predictor.predict(box=box)
        assert np.abs(single[2] - logits[i]).max() < 1e-4
        assert (single[0] == masks[i]).all()
    reference = torch_predictor.predict_batch(boxes=boxes)
    assert type(reference) is type(batch)  # one result type for every backend
    assert np.abs(reference.low_res_logits - logits).max() < 1e-3
    no_masks = onnx_predictor.predict_batch(boxes=boxes, multimask_output=False, return_masks=False)
    assert no_masks.masks is None and no_masks.low_res_logits.shape == (3, 1, 256, 256)


def test_both_backends_raise_the_same_error_before_an_image_is_set(torch_predictor, onnx_predictor):
    from efficientsam_studio.engine import NoImageError

    for predictor in (torch_predictor, onnx_predictor):
        predictor.reset_image()
        with pytest.raises(NoImageError, match="no image is set"):
            predictor.predict(box=np.array([0.0, 0.0, 10.0, 10.0]))


def test_more_than_six_points_follow_the_same_policy(torch_predictor, onnx_predictor, image):
    torch_predictor.set_image(image)
    onnx_predictor.set_image(image)
    coords = np.array([[10 + 15 * i, 20 + 8 * i] for i in range(8)], dtype=float)
    labels = np.array([1, 0] * 4)
    with pytest.warns(UserWarning):
        _, _, t_logits = torch_predictor.predict(point_coords=coords, point_labels=labels)
    with pytest.warns(UserWarning):
        _, _, o_logits = onnx_predictor.predict(point_coords=coords, point_labels=labels)
    assert onnx_predictor.last_prompt_info.dropped_points == (0, 1)
    assert np.abs(o_logits - t_logits).max() < 1e-3


def test_onnx_and_torch_share_the_embedding_cache_key(torch_predictor, onnx_predictor):
    assert onnx_predictor.model_key == predictor_model_key(torch_predictor)
    assert onnx_predictor.model_key.endswith(":fp32")


def test_int8_encoder_is_a_distinct_cache_identity_and_close(tiny_export, onnx_predictor, image):
    int8 = load_predictor(model="tiny", checkpoint=tiny_export, device="cpu", backend="onnx-int8")
    assert int8.precision == "int8" and int8.model_key.endswith(":int8")
    assert int8.model_key != onnx_predictor.model_key
    int8.set_image(image)
    onnx_predictor.set_image(image)
    reference = onnx_predictor.get_image_embedding()
    assert np.abs(int8.get_image_embedding() - reference).max() < 0.1 * np.abs(reference).max()


def test_files_are_found_in_the_store_for_a_torch_checkpoint(
    tiny_checkpoint, tiny_export, monkeypatch, tmp_path
):
    monkeypatch.setenv("EFSAM_HOME", str(tmp_path))
    with pytest.raises(OnnxModelError, match="export-onnx --model tiny"):
        find_onnx_pair("tiny", tiny_checkpoint)
    store = export_dir_for("tiny", tiny_checkpoint)
    store.mkdir(parents=True)
    for f in tiny_export.glob("*.onnx"):
        (store / f.name).write_bytes(f.read_bytes())
    encoder, decoder = find_onnx_pair("tiny", tiny_checkpoint)
    assert encoder == store / "tiny_encoder.onnx" and decoder == store / "tiny_decoder.onnx"
    assert find_onnx_pair("tiny", tiny_checkpoint, "int8")[0].name == "tiny_encoder.int8.onnx"
    assert type(load_predictor("tiny", tiny_checkpoint, "cpu", backend="onnx")).__name__ == "OnnxPredictor"


def test_auto_takes_torch_where_installed(tiny_checkpoint, tiny_export, monkeypatch, tmp_path):
    monkeypatch.setenv("EFSAM_HOME", str(tmp_path))
    assert load_predictor("tiny", tiny_checkpoint, "cpu", backend="auto").backend == "torch"
    # ONNX files given as the checkpoint are read by ONNX Runtime
    onnx = load_predictor("tiny", tiny_export / "tiny_encoder.onnx", "cpu", backend="auto")
    assert type(onnx).__name__ == "OnnxPredictor"


def test_auto_takes_onnx_without_torch(tiny_checkpoint, tiny_export, monkeypatch, tmp_path):
    monkeypatch.setenv("EFSAM_HOME", str(tmp_path))
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(OnnxModelError, match="export-onnx --model tiny"):
        load_predictor("tiny", tiny_checkpoint, "cpu", backend="auto")
    store = export_dir_for("tiny", tiny_checkpoint)
    store.mkdir(parents=True)
    for f in tiny_export.glob("tiny_*.onnx"):
        (store / f.name).write_bytes(f.read_bytes())
    assert type(load_predictor("tiny", tiny_checkpoint, "cpu", backend="auto")).__name__ == "OnnxPredictor"


def test_a_file_that_is_not_an_efficientsam_pair_is_refused(tiny_export, tmp_path):
    with pytest.raises(OnnxModelError, match="not an EfficientSAM"):
        OnnxPredictor(tiny_export / "tiny_decoder.onnx", tiny_export / "tiny_encoder.onnx", device="cpu")
    broken = tmp_path / "broken_encoder.onnx"
    broken.write_bytes(b"not onnx")
    (tmp_path / "broken_decoder.onnx").write_bytes(b"not onnx")
    with pytest.raises(OnnxModelError, match="broken_encoder.onnx"):
        load_predictor("tiny", broken, "cpu", backend="onnx")


def test_onnx_backend_runs_without_importing_torch(tiny_export, image, tmp_path):
    np.save(tmp_path / "image.npy", image)
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np
        from efficientsam_studio.engine import load_predictor
        from efficientsam_studio.engine.cache import CachedPredictor, DiskCache, EmbeddingCache
        predictor = load_predictor("tiny", {str(tiny_export)!r}, "cpu", backend="onnx")
        cached = CachedPredictor(predictor, EmbeddingCache(disk=DiskCache({str(tmp_path / "cache")!r})))
        image = np.load({str(tmp_path / "image.npy")!r})
        sources = [cached.set_image(image), cached.set_image(image)]
        masks, scores, logits = cached.predict(point_coords=[[70, 45]], point_labels=[1])
        batch = predictor.predict_batch(boxes=[[35, 25, 95, 65], [0, 0, 60, 50]])
        print(json.dumps({{"torch": "torch" in sys.modules, "sources": sources,
                           "shape": list(masks.shape), "batch": list(batch.masks.shape)}}))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {
        "torch": False,
        "sources": ["computed", "memory"],
        "shape": [3, 90, 140],
        "batch": [2, 3, 90, 140],
    }


def test_exporting_the_decoder_leaves_its_eager_form_intact(tmp_path) -> None:
    """Weights built while tracing (the tracer's fake tensors) must not stay cached in the decoder."""
    import torch

    from efficientsam_studio.engine.onnx_export import DecoderGraph, export_decoder
    from efficientsam_studio.model import build_model

    torch.manual_seed(0)
    model = build_model("tiny").eval()
    example = _decoder_example((60, 90))
    with torch.no_grad():
        expected = DecoderGraph(model)(*example)
    graph = DecoderGraph(model)
    export_decoder(graph, example, tmp_path / "decoder.onnx")
    with torch.no_grad():
        logits, iou = graph(*example)
    assert type(logits) is torch.Tensor
    assert torch.allclose(logits, expected[0]) and torch.allclose(iou, expected[1])


def test_the_decoder_context_is_made_once_per_image(tiny_export, image) -> None:
    predictor = OnnxPredictor(
        tiny_export / "tiny_encoder.onnx", tiny_export / "tiny_decoder.onnx", device="cpu"
    )
    assert predictor.context_graph is not None  # a format 2 export: context in its own graph
    runs = []
    graph_run = predictor.context_graph.run
    predictor.context_graph.run = lambda *args: runs.append(1) or graph_run(*args)
    predictor.set_image(image)
    predictor.prepare_decoding()
    for prompt in PROMPTS:
        predictor.predict(**prompt)
    assert len(runs) == 1
    predictor.set_image(image[::-1].copy())
    predictor.predict(**PROMPTS[0])
    assert len(runs) == 2


def test_a_self_contained_decoder_of_format_1_still_loads(tiny_checkpoint, tiny_export, image, tmp_path):
    """Exports made before the context had its own graph: the decoder takes the image embedding."""
    import shutil

    from efficientsam_studio.engine.onnx_export import DecoderGraph, export_decoder
    from efficientsam_studio.model import load_model

    shutil.copy(tiny_export / "tiny_encoder.onnx", tmp_path / "tiny_encoder.onnx")
    example = _decoder_example((90, 140))
    export_decoder(DecoderGraph(load_model("tiny", tiny_checkpoint)), example, tmp_path / "tiny_decoder.onnx")
    old = OnnxPredictor(tmp_path / "tiny_encoder.onnx", tmp_path / "tiny_decoder.onnx", device="cpu")
    new = OnnxPredictor(tiny_export / "tiny_encoder.onnx", tiny_export / "tiny_decoder.onnx", device="cpu")
    assert old.context_graph is None and new.context_graph is not None
    old.set_image(image)
    new.set_image(image)
    for prompt in PROMPTS:
        _, old_scores, old_logits = old.predict(**prompt)
        _, new_scores, new_logits = new.predict(**prompt)
        assert np.abs(old_logits - new_logits).max() < 1e-4 * max(1.0, np.abs(new_logits).max())
        assert np.abs(old_scores - new_scores).max() < 1e-4


def test_a_format_2_decoder_without_its_context_is_refused(tiny_export, tmp_path) -> None:
    import shutil

    for name in ("tiny_encoder.onnx", "tiny_decoder.onnx"):
        shutil.copy(tiny_export / name, tmp_path / name)
    with pytest.raises(OnnxModelError, match="tiny_context.onnx"):
        OnnxPredictor(tmp_path / "tiny_encoder.onnx", tmp_path / "tiny_decoder.onnx", device="cpu")


def _decoder_example(size: tuple[int, int]) -> tuple:
    """One set of the self-contained decoder graph's inputs: two prompts of up to two points."""
    import torch

    return (
        torch.randn(1, 256, 64, 64),
        torch.tensor([[[50.0, 30.0], [10.0, 10.0]], [[5.0, 6.0], [-1.0, -1.0]]]),
        torch.tensor([[1.0, 0.0], [1.0, -1.0]]),
        torch.tensor(size),
    )
