"""Smoke check of the desktop bundle built by ``packaging/build.sh`` (``make package`` runs it).

Runs the bundled program offscreen (``QT_QPA_PLATFORM=offscreen``), outside the source tree, with
``EFSAM_HOME`` pointing at a scratch folder, and checks that it:

1. holds no torch, onnx/onnxscript, trainer or weights files;
2. answers ``--version`` with the source checkout's version;
3. looks for weights in the same place as a pip install (``weights path`` agrees with the source
   checkout's, with and without ``EFSAM_HOME``);
4. finds its bundled sample images (``samples --copy``);
5. imports a hand-made COCO file into a project (no model needed);
6. opens a sample image in the app and, with ``tiny`` ONNX files exported by the source checkout into
   the weights store, loads the model on the ONNX backend and encodes the image (``gui --smoke-test``);
7. labels images from box prompts with the ONNX engine (``label --boxes --overwrite``, which keeps the
   imported hand-made instance);
8. exports the project as COCO, which pycocotools loads with the expected annotations.

Steps 6-7 need the source checkout's interpreter with torch (``--source-python``) to write a random
``tiny`` checkpoint and ``efsam-studio export-onnx`` it; ``--skip-onnx`` leaves them out (step 6 then only
opens the image).

Usage::

    .venv/bin/python packaging/smoke_check.py [--bundle dist/efsam-studio] [--source-python .venv/bin/python]
                                              [--work DIR] [--skip-onnx]

Prints one line per step and exits 0 when every step passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("torch", "libtorch", "libc10", "onnxscript", "onnx_ir", "trainer")
WEIGHT_SUFFIXES = (".pt", ".pth", ".onnx", ".safetensors", ".ckpt")
BOXES_CSV = "image,x0,y0,x1,y1,label\nchelsea.png,50,20,400,290,cat\ncoffee.png,100,50,500,350,cup\n"
SEED_CHECKPOINT = """
import sys, torch
from efficientsam_studio.model import build_model
torch.manual_seed(0)
torch.save({"model": build_model("tiny").state_dict()}, sys.argv[1])
"""


class StepFailed(Exception):
    """A check did not hold; the message says what was seen."""


class Smoke:
    """The state shared by the steps: paths, environments and the helpers that run programs."""

    def __init__(self, bundle: Path, source_python: Path, work: Path, skip_onnx: bool) -> None:
        self.bundle = bundle
        self.program = bundle / ("efsam-studio.exe" if os.name == "nt" else "efsam-studio")
        self.source_python = source_python
        self.work = work
        self.skip_onnx = skip_onnx
        self.home = work / "home"
        self.checkpoint = work / "tiny.pt"
        self.project = work / "label_images" / "label_images.efsam.json"  # what import makes for the folder
        self.env = self._clean_env()
        self.env.update(QT_QPA_PLATFORM="offscreen", EFSAM_HOME=str(self.home))

    @staticmethod
    def _clean_env() -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        venv = os.environ.get("VIRTUAL_ENV")
        if venv:
            env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if venv not in p)
        return env

    def run(self, *args: str, env: dict[str, str] | None = None, source: bool = False) -> str:
        """Run the bundled program (or, with ``source``, the source interpreter) in the work folder;
        returns stdout, raises StepFailed on a non-zero exit status."""
        command = [str(self.source_python), *args] if source else [str(self.program), *args]
        done = subprocess.run(
            command, cwd=self.work, env=self.env if env is None else env, capture_output=True, text=True
        )
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
            raise StepFailed(f"{' '.join(command)} exited {done.returncode}:\n    " + "\n    ".join(tail))
        return done.stdout

    def source_cli(self, *args: str, env: dict[str, str] | None = None) -> str:
        return self.run("-m", "efficientsam_studio", *args, env=env, source=True)


# ----- the steps -----
def check_contents(s: Smoke) -> str:
    found = []
    for path in s.bundle.rglob("*"):
        name = path.name.lower()
        if any(name.startswith(f) for f in FORBIDDEN) or (path.is_file() and name.endswith(WEIGHT_SUFFIXES)):
            found.append(str(path.relative_to(s.bundle)))
    if found:
        raise StepFailed("the bundle holds files it must not: " + ", ".join(sorted(found)[:10]))
    size = sum(p.stat().st_size for p in s.bundle.rglob("*") if p.is_file() and not p.is_symlink())
    return f"no torch/onnx/trainer/weights files; {size / 2**20:.0f} MiB"


def check_version(s: Smoke) -> str:
    got = s.run("--version").strip()
    expected = (
        "efsam-studio "
        + s.run("-c", "import efficientsam_studio as e; print(e.__version__)", source=True).strip()
    )
    if got != expected:
        raise StepFailed(f"--version printed {got!r}, the source checkout is {expected!r}")
    return got


def _store(listing: str) -> str:
    """The ``store: PATH`` line of ``weights list``."""
    lines = [line for line in listing.splitlines() if line.startswith("store:")]
    if not lines:
        raise StepFailed(f"weights list printed no store line:\n{listing}")
    return lines[-1].split("store:", 1)[1].split("  (", 1)[0].strip()


def check_weights_location(s: Smoke) -> str:
    without_home = {k: v for k, v in s.env.items() if k != "EFSAM_HOME"}
    stores = []
    for env, label in ((s.env, "with EFSAM_HOME"), (without_home, "platformdirs")):
        bundled = _store(s.run("weights", "list", env=env))
        installed = _store(s.source_cli("weights", "list", env=env))
        if bundled != installed:
            raise StepFailed(f"{label}: the bundle looks in {bundled}, a pip install in {installed}")
        stores.append(bundled)
    if stores[0] != str(s.home / "weights"):
        raise StepFailed(f"EFSAM_HOME={s.home} but the store is {stores[0]}")
    return f"same store as the pip install: {stores[0]} (EFSAM_HOME), {stores[1]} (platformdirs)"


def check_samples(s: Smoke) -> str:
    for folder in ("gui_images", "label_images"):
        s.run("samples", "--copy", str(s.work / folder))
    images = sorted(p.name for p in (s.work / "gui_images").iterdir())
    if "chelsea.png" not in images or "coffee.png" not in images:
        raise StepFailed(f"samples --copy gave {images}")
    return f"{len(images)} sample images: {', '.join(images)}"


def check_import(s: Smoke) -> str:
    coco = {
        "images": [{"id": 1, "file_name": "chelsea.png", "width": 451, "height": 300}],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "area": 24000.0,
                "bbox": [100, 60, 200, 120],
                "segmentation": [[100, 60, 300, 60, 300, 180, 100, 180]],
            }
        ],
    }
    source = s.work / "hand_made.json"
    source.write_text(json.dumps(coco))
    out = s.run("import", str(s.project.parent), "--format", "coco", "--from", str(source))
    if not s.project.is_file():
        raise StepFailed(f"import did not create {s.project}:\n{out}")
    return out.strip().splitlines()[-1]


def prepare_onnx(s: Smoke) -> str:
    env = {**s.env, "PYTHONPATH": str(ROOT)}
    s.run("-c", SEED_CHECKPOINT, str(s.checkpoint), env=env, source=True)
    out = s.source_cli("export-onnx", "--model", "tiny", "--checkpoint", str(s.checkpoint), env=env)
    onnx_files = sorted(p.relative_to(s.home).as_posix() for p in s.home.rglob("*.onnx"))
    if len(onnx_files) < 2:
        raise StepFailed(f"export-onnx wrote {onnx_files}:\n{out}")
    return "exported by the source checkout: " + ", ".join(onnx_files)


def check_gui(s: Smoke) -> str:
    args = ["gui", str(s.work / "gui_images" / "chelsea.png"), "--smoke-test"]
    if not s.skip_onnx:
        args += ["--model", "tiny", "--backend", "onnx", "--checkpoint", str(s.checkpoint)]
    report = json.loads(s.run(*args))
    if report["image"] is None or not report["image"].endswith("chelsea.png"):
        raise StepFailed(f"the app did not show chelsea.png: {report}")
    if s.skip_onnx:
        return f"opened {report['opened']} ({report['images']} images); model: {report['model_error']}"
    model = report["model"] or {}
    if model.get("backend") != "onnx" or not report["encoded"]:
        raise StepFailed(f"the app did not encode the image with the ONNX backend: {report}")
    return f"opened {report['image']}, model tiny on {model['backend']}, image encoded"


def check_label(s: Smoke) -> str:
    boxes = s.work / "boxes.csv"
    boxes.write_text(BOXES_CSV)
    out = s.run(
        "label",
        str(s.project.parent),
        "--out",
        str(s.project),
        "--boxes",
        str(boxes),
        "--model",
        "tiny",
        "--backend",
        "onnx",
        "--checkpoint",
        str(s.checkpoint),
        "--no-cache",
        "--overwrite",  # the imported image holds a hand-made instance: kept, and AI masks added beside it
    )
    summary = [line for line in out.splitlines() if line.startswith(("images:", "instances:"))]
    if not any(line.startswith("instances: 2 added") for line in summary):
        raise StepFailed(f"expected 2 instances from 2 boxes:\n{out}")
    return "; ".join(summary)


def check_export(s: Smoke) -> str:
    target = s.work / "coco.json"
    s.run("export", str(s.project), "--format", "coco", "--out", str(target))
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco = COCO(str(target))
    expected = 1 if s.skip_onnx else 3
    names = sorted(c["name"] for c in coco.loadCats(coco.getCatIds()))
    if len(coco.getAnnIds()) != expected:
        raise StepFailed(f"{target} has {len(coco.getAnnIds())} annotations, expected {expected}")
    for ann in coco.loadAnns(coco.getAnnIds()):
        if coco.annToMask(ann).sum() == 0:
            raise StepFailed(f"annotation {ann['id']} of {target} decodes to an empty mask")
    return f"{target.name}: {expected} annotations ({', '.join(names)}) loaded by pycocotools"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "dist" / "efsam-studio")
    parser.add_argument(
        "--source-python",
        type=Path,
        default=ROOT / ".venv" / "bin" / "python",
        help="interpreter of the source checkout (with torch, for the ONNX export)",
    )
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--skip-onnx", action="store_true", help="leave out the ONNX model steps")
    args = parser.parse_args(argv)
    bundle = args.bundle.resolve()
    if not (bundle / "efsam-studio").exists() and not (bundle / "efsam-studio.exe").exists():
        print(f"error: no built program in {bundle}; run make package first", file=sys.stderr)
        return 1
    work = Path(args.work or tempfile.mkdtemp(prefix="efsam-smoke-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    smoke = Smoke(bundle, args.source_python.absolute(), work, args.skip_onnx)
    steps: list[tuple[str, Callable[[Smoke], str]]] = [
        ("bundle contents", check_contents),
        ("--version", check_version),
        ("weights location", check_weights_location),
        ("sample images", check_samples),
        ("import COCO", check_import),
    ]
    if not args.skip_onnx:
        steps.append(("tiny ONNX model", prepare_onnx))
    steps.append(("open in the app", check_gui))
    if not args.skip_onnx:
        steps.append(("label with ONNX", check_label))
    steps.append(("export COCO", check_export))
    failed = 0
    started = time.perf_counter()
    for name, step in steps:
        t0 = time.perf_counter()
        try:
            detail, ok = step(smoke), True
        except StepFailed as exc:
            detail, ok = str(exc), False
        failed += not ok
        print(
            f"{'PASS' if ok else 'FAIL'}  {name:<18} {time.perf_counter() - t0:6.1f} s  {detail}", flush=True
        )
        if not ok and name in ("sample images", "tiny ONNX model"):
            print("      (later steps need this one; stopping)")
            break
    total = time.perf_counter() - started
    outcome = "passed" if not failed else f"FAILED ({failed} steps)"
    print(f"smoke check {outcome} in {total:.1f} s; bundle {bundle}")
    if args.work is None and not failed:
        shutil.rmtree(work, ignore_errors=True)
    elif failed:
        print(f"work files kept in {work}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
