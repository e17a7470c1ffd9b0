"""Batch labelling and automatic masks import no torch (the ONNX backend ships without it)."""

import subprocess
import sys
from pathlib import Path

CODE = """
import sys
import numpy as np
import efficientsam_studio.batch as batch
import efficientsam_studio.cli.label
from efficientsam_studio.engine.automatic import AutomaticMaskGenerator, AutomaticMaskParams
from tests.batch.fake_predictor import ShapesPredictor
image = np.zeros((60, 80, 3), np.uint8)
image[10:40, 10:50] = (255, 0, 0)
masks = AutomaticMaskGenerator(ShapesPredictor(), AutomaticMaskParams(points_per_side=4)).generate(image)
assert len(masks) == 1, masks
print("torch" in sys.modules, "PySide6" in sys.modules)
"""


def test_batch_and_automatic_masks_run_without_importing_torch_or_qt():
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", CODE], cwd=root, capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.split() == ["False", "False"], out.stderr
