"""The wheel carries every file of resources/ (as efficientsam_studio/_resources), the efsam-studio
command, and the runtime extras; built from a copy of the sources in tmp_path with pip's isolated build."""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("efficientsam_studio", "trainer", "resources", "setup.py", "pyproject.toml", "README.md")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    for name in SOURCES:
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(origin, source / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(work / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = (work / "dist").glob("efficientsam_studio-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def test_wheel_ships_every_resource_inside_the_package(wheel: zipfile.ZipFile) -> None:
    shipped = {n for n in wheel.namelist() if n.startswith("efficientsam_studio/_resources/")}
    expected = {
        "efficientsam_studio/_resources/" + p.relative_to(ROOT / "resources").as_posix()
        for p in (ROOT / "resources").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert expected and shipped == expected
    assert "efficientsam_studio/resources.py" in wheel.namelist()
    assert "efficientsam_studio/py.typed" in wheel.namelist()
    assert not [n for n in wheel.namelist() if n.startswith("resources/")]  # no stray top-level package


def test_wheel_provides_the_command_and_the_runtime_extras(wheel: zipfile.ZipFile) -> None:
    info = next(n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
    assert "efsam-studio = efficientsam_studio.cli.main:main" in wheel.read(info).decode()
    metadata = email.message_from_bytes(wheel.read(info.replace("entry_points.txt", "METADATA")))
    assert {"cpu", "gpu", "train"} <= set(metadata.get_all("Provides-Extra"))
    requires = metadata.get_all("Requires-Dist")
    base = [r for r in requires if "extra ==" not in r]
    assert not [r for r in base if r.startswith(("torch", "onnx"))]  # the base install has no runtime
    gpu = [r.split(";")[0].strip() for r in requires if 'extra == "gpu"' in r]
    assert any(r.startswith("onnxruntime-gpu") for r in gpu)
    assert not any(r.startswith("onnxruntime") and not r.startswith("onnxruntime-gpu") for r in gpu)
    train = [r for r in requires if 'extra == "train"' in r]
    assert any(r.startswith("torch") for r in train)
