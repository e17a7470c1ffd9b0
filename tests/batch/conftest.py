"""Fixtures of the batch tests: a folder of synthetic images with known objects, and an open project."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from efficientsam_studio.annotations.project import Project

# objects of each synthetic image: (name, colour RGB, (x0, y0, x1, y1)) -- filled rectangles
SCENES = {
    "img1.png": [("cat", (255, 0, 0), (10, 10, 60, 50)), ("dog", (0, 255, 0), (80, 30, 150, 100))],
    "img2.png": [("cat", (0, 0, 255), (20, 60, 90, 110))],
    "img3.png": [("dog", (255, 255, 0), (100, 10, 150, 60)), ("cat", (255, 0, 255), (5, 70, 50, 115))],
}
SIZE = (120, 160)  # (H, W)


def scene_image(objects) -> np.ndarray:
    image = np.zeros((*SIZE, 3), dtype=np.uint8)
    for _, colour, (x0, y0, x1, y1) in objects:
        image[y0:y1, x0:x1] = colour
    return image


def box_mask(box) -> np.ndarray:
    x0, y0, x1, y1 = box
    mask = np.zeros(SIZE, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def write_scenes(folder: Path) -> Path:
    """The synthetic images of :data:`SCENES` written into a new ``folder``."""
    folder.mkdir()
    for name, objects in SCENES.items():
        cv2.imwrite(str(folder / name), cv2.cvtColor(scene_image(objects), cv2.COLOR_RGB2BGR))
    return folder


def write_boxes_csv(path: Path) -> Path:
    """A CSV of box prompts: every object of :data:`SCENES` with its label and score 0.9."""
    lines = ["image,x0,y0,x1,y1,label,score"]
    for name, objects in SCENES.items():
        lines += [f"{name},{x0},{y0},{x1},{y1},{label},0.9" for label, _, (x0, y0, x1, y1) in objects]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def image_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EFSAM_HOME", str(tmp_path / "home"))
    return write_scenes(tmp_path / "images")


@pytest.fixture
def project(image_folder: Path):
    project = Project.create(image_folder, "labels")
    yield project
    project.close()
