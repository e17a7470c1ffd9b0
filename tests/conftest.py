"""Shared fixtures. GUI tests run offscreen; tests make their own tiny inputs."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``{"model": state_dict}`` file of the "tiny" config with random weights (seed 0)."""
    import torch

    from efficientsam_studio.model import build_model

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    model = build_model("tiny")
    torch.random.set_rng_state(generator_state)
    path = tmp_path_factory.mktemp("weights") / "efficientsam_tiny_random.pt"
    torch.save({"model": model.state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The conformance vectors: ``$EFSAM_REFERENCE_DIR``, default ``<repo>/../shared/reference``."""
    root = Path(os.environ.get("EFSAM_REFERENCE_DIR", REPO_ROOT.parent / "shared" / "reference"))
    if not (root / "cases.json").is_file():
        pytest.skip(f"reference vectors not found in {root} (set EFSAM_REFERENCE_DIR to the folder)")
    return root
