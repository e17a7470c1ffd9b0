"""Teacher feature cache for SAMI: teacher outputs computed once, stored as fp16 shards, replayed exactly.

Layout of ``CACHE_DIR``::

    plan.json          what is cached: data root, image list, views per image, input size, crop settings,
                       seed, teacher (file, configuration, output), token grid and channels
    shard_00000.npy    float16 (n, L, C): teacher tokens (row-major ``y * g + x``) of samples k..k+n-1
    shard_00000.json   one record per sample of that shard: image, view, crop box, flip, ok
    index.json         plan.json + ``"complete": true`` and counts; written when every shard is done

Sample ``k`` is view ``k % views`` of image ``k // views``; its crop box ``(x0, y0, w, h)`` (pixels of the
upright image) and flip are drawn from ``numpy.random.default_rng([seed, view, image])`` and recorded, so
training replays them exactly. Building is resumable: a shard counts as done once its ``.json`` exists
(written after its ``.npy``, both atomically), so a rerun with the same arguments computes only the rest.
Unreadable images are recorded with ``ok: false`` (zero features) and counted.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from efficientsam_studio.errors import StudioError
from trainer.data import (
    CropConfig,
    apply_crop,
    find_training_images,
    load_first_readable,
    sample_crop,
    sample_rng,
    to_tensor,
)
from trainer.teacher import OUTPUTS, load_sam_teacher, sam_config_name

CACHE_FORMAT = "efsam-sami-teacher-cache"
CACHE_VERSION = 1


class TeacherCacheError(StudioError):
    """A teacher cache folder is incomplete, of another dataset or settings, or unreadable."""


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_json(path: Path, obj: Any) -> None:
    _atomic_write(path, lambda h: h.write(json.dumps(obj, indent=1, sort_keys=True).encode()))


def is_teacher_cache(path: str | Path) -> bool:
    """True if ``path`` is a folder made by :func:`build_teacher_cache` (finished or not)."""
    path = Path(path)
    return path.is_dir() and (path / "plan.json").is_file()


class _CacheViews(Dataset):
    """Samples ``start..stop-1`` of a cache plan as teacher inputs plus their recorded augmentation."""

    def __init__(self, paths: list[Path], plan: dict, start: int, stop: int) -> None:
        self.paths, self.plan, self.start, self.stop = paths, plan, start, stop
        self.crop = CropConfig(
            plan["input_size"],
            tuple(plan["crop"]["scale"]),
            tuple(plan["crop"]["ratio"]),
            plan["crop"]["hflip"],
        )

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, j: int) -> dict[str, Any]:
        k = self.start + j
        views = self.plan["views"]
        image_index, view = divmod(k, views)
        size = self.crop.size
        _, image, skipped = load_first_readable([self.paths[image_index]], 0)
        if image is None:
            record = {"image": image_index, "view": view, "crop": [0, 0, 0, 0], "flip": False, "ok": False}
            return {"image": torch.zeros(3, size, size), "record": json.dumps(record)}
        rng = sample_rng(self.plan["seed"], view, image_index)
        box = sample_crop(image.shape[0], image.shape[1], rng, self.crop.scale, self.crop.ratio)
        flip = bool(rng.random() < self.crop.hflip)
        record = {"image": image_index, "view": view, "crop": list(box), "flip": flip, "ok": True}
        return {"image": to_tensor(apply_crop(image, box, flip, size)), "record": json.dumps(record)}


def build_teacher_cache(
    data: str | Path,
    teacher: str | Path,
    out: str | Path,
    *,
    input_size: int = 224,
    views: int = 1,
    crop: CropConfig | None = None,
    target: str = "neck",
    seed: int = 0,
    shard_size: int = 256,
    batch_size: int = 32,
    device: str = "auto",
    workers: int = 0,
    progress: bool = True,
) -> Path:
    """Compute the teacher's features of ``views`` augmented views of every image under ``data``.

    Returns the path of ``index.json``. Resumes a partly built cache made with the same arguments and
    refuses (TeacherCacheError) a folder holding a cache of other data or settings.
    """
    from trainer.distributed import resolve_device

    if target not in OUTPUTS:
        raise TeacherCacheError(f"--target must be one of {OUTPUTS}, got {target!r}")
    if input_size % 16:
        raise TeacherCacheError(f"--input-size {input_size} is not a multiple of 16 (the patch size)")
    crop = crop or CropConfig(size=input_size)
    data, out = Path(data).resolve(), Path(out)
    paths = find_training_images(data)
    dev = resolve_device(device)
    encoder = load_sam_teacher(teacher).to(dev)
    grid = input_size // 16
    plan = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "data_root": str(data),
        "images": [p.relative_to(data).as_posix() for p in paths],
        "views": int(views),
        "input_size": int(input_size),
        "grid": grid,
        "channels": encoder.feature_channels(target),
        "target": target,
        "seed": int(seed),
        "crop": {**asdict(crop), "size": int(input_size)},
        "shard_size": int(shard_size),
        "teacher": {
            "file": str(Path(teacher).resolve()),
            "bytes": Path(teacher).stat().st_size,
            "config": sam_config_name(encoder.config),
        },
    }
    plan = json.loads(json.dumps(plan))  # tuples become lists, as when read back
    out.mkdir(parents=True, exist_ok=True)
    plan_path = out / "plan.json"
    if plan_path.is_file():
        previous = json.loads(plan_path.read_text())
        if previous != plan:
            changed = sorted(k for k in plan if previous.get(k) != plan[k])
            raise TeacherCacheError(
                f"{out} holds a teacher cache made with other settings ({', '.join(changed)} differ); "
                "give a new --out folder, or the same arguments to finish that cache"
            )
    else:
        _write_json(plan_path, plan)
    total = len(paths) * views
    shards = (total + shard_size - 1) // shard_size
    todo = [s for s in range(shards) if not (out / f"shard_{s:05d}.json").is_file()]
    pbar = None
    if progress:
        from tqdm import tqdm

        pbar = tqdm(
            total=total,
            initial=total - sum(min(shard_size, total - s * shard_size) for s in todo),
            unit="view",
            desc="teacher cache",
        )
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else None
    try:
        for s in todo:
            start, stop = s * shard_size, min((s + 1) * shard_size, total)
            loader = DataLoader(
                _CacheViews(paths, plan, start, stop), batch_size=batch_size, num_workers=workers
            )
            feats, records = [], []
            for batch in loader:
                with torch.no_grad(), autocast or torch.autocast("cpu", enabled=False):
                    y = encoder(batch["image"].to(dev), output=target)
                batch_records = [json.loads(r) for r in batch["record"]]
                ok = torch.tensor([r["ok"] for r in batch_records], device=y.device)
                y = torch.where(ok[:, None, None, None], y.float(), torch.zeros((), device=y.device))
                feats.append(y.flatten(2).transpose(1, 2).to(torch.float16).cpu().numpy())
                records.extend(batch_records)
                if pbar is not None:
                    pbar.update(len(batch_records))
            array = np.concatenate(feats)
            _atomic_write(out / f"shard_{s:05d}.npy", lambda h, a=array: np.save(h, a))
            _write_json(out / f"shard_{s:05d}.json", {"start": start, "samples": records})
    finally:
        if pbar is not None:
            pbar.close()
    cache = TeacherCache.collect(out, plan)
    index = {**plan, "complete": True, "samples": total, "corrupt_samples": int((~cache.ok).sum())}
    _write_json(out / "index.json", index)
    return out / "index.json"


class TeacherCache:
    """A finished teacher cache: per-sample records and memory-mapped fp16 features."""

    def __init__(self, folder: Path, plan: dict, records: list[dict]) -> None:
        self.folder = folder
        self.plan = plan
        self.views = plan["views"]
        self.image_of = np.array([r["image"] for r in records], dtype=np.int64)
        self.view_of = np.array([r["view"] for r in records], dtype=np.int64)
        self.crops = np.array([r["crop"] for r in records], dtype=np.int64).reshape(-1, 4)
        self.flips = np.array([r["flip"] for r in records], dtype=bool)
        self.ok = np.array([r["ok"] for r in records], dtype=bool)
        self._shards: dict[int, np.ndarray] = {}

    @classmethod
    def collect(cls, folder: Path, plan: dict) -> TeacherCache:
        total = len(plan["images"]) * plan["views"]
        shards = (total + plan["shard_size"] - 1) // plan["shard_size"]
        records: list[dict] = []
        for s in range(shards):
            meta = folder / f"shard_{s:05d}.json"
            if not meta.is_file():
                raise TeacherCacheError(
                    f"teacher cache {folder} is not finished (shard {s} of {shards} missing); rerun "
                    "`efsam-studio train --stage sami-cache` with the same arguments to finish it"
                )
            records.extend(json.loads(meta.read_text())["samples"])
        return cls(folder, plan, records)

    @classmethod
    def open(cls, folder: str | Path) -> TeacherCache:
        """Open ``folder``; TeacherCacheError if it is not a finished cache."""
        folder = Path(folder)
        index = folder / "index.json"
        if not index.is_file():
            if is_teacher_cache(folder):
                raise TeacherCacheError(
                    f"teacher cache {folder} is not finished; rerun `efsam-studio train --stage sami-cache` "
                    "with the same arguments to finish it"
                )
            raise TeacherCacheError(f"{folder} is not a teacher cache (no index.json)")
        plan = json.loads(index.read_text())
        if plan.get("format") != CACHE_FORMAT or plan.get("version") != CACHE_VERSION:
            raise TeacherCacheError(f"{index} is not a version-{CACHE_VERSION} teacher cache index")
        return cls.collect(folder, plan)

    def features(self, k: int) -> np.ndarray:
        """Teacher tokens of sample ``k``: float16 ``(L, C)`` (a view into the memory-mapped shard)."""
        shard, row = divmod(int(k), self.plan["shard_size"])
        if shard not in self._shards:
            self._shards[shard] = np.load(self.folder / f"shard_{shard:05d}.npy", mmap_mode="r")
        return self._shards[shard][row]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_shards"] = {}
        return state
