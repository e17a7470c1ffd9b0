"""``efsam-studio precompute FOLDER``: fill the disk embedding cache for every image of a folder.

Resumable: images whose embedding is already cached (same pixels, same weights, same engine version)
are skipped, so a run that was interrupted (Ctrl+C) continues where it stopped. Each entry is written
atomically, so an interruption never leaves a corrupt entry. Unreadable images are reported and
skipped. A cache folder that cannot be written is reported before any image is encoded. Exit status: 0
when every image is cached, 1 when some could not be read or stored, 2 for a usage error, 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from efficientsam_studio.cli.segment import BACKEND_CHOICES, BACKEND_HELP

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pgm", ".ppm"}


@dataclass
class PrecomputeSummary:
    """What a precompute run did; paths of unreadable images with the reason."""

    total: int = 0
    computed: int = 0
    cached: int = 0
    not_stored: int = 0
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    interrupted: bool = False
    store_failure: str | None = None

    def lines(self) -> list[str]:
        out = [
            f"{self.total} images: {self.computed} encoded, {self.cached} already cached, "
            f"{len(self.unreadable)} unreadable, {self.not_stored} not stored"
            + (" (interrupted: run the same command again to continue)" if self.interrupted else "")
        ]
        out += [f"  unreadable: {path}: {reason}" for path, reason in self.unreadable]
        if self.not_stored:
            cause = f" ({self.store_failure})" if self.store_failure else ""
            out.append(
                f"  some embeddings could not be written to the cache{cause}: "
                "fix the cache folder or choose another with --cache-dir"
            )
        return out


def _store_failure(warning: warnings.WarningMessage) -> str:
    """The file and the cause of a cache write failure, from its ``CacheWriteWarning``."""
    text = str(warning.message)
    match = re.search(r"could not write (.+?); the embedding", text)
    return f"could not write {match.group(1)}" if match else text


def find_images(folder: Path, recursive: bool = False) -> list[Path]:
    """Image files of ``folder`` (by suffix, case-insensitive), sorted by path."""
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def precompute_images(
    paths: Iterable[Path],
    predictor: Any,
    load_image: Callable[[Path], Any],
    progress: Any = None,
) -> PrecomputeSummary:
    """Cache the embedding of every image in ``paths`` with ``predictor`` (a CachedPredictor).

    ``load_image(path) -> (H, W, 3) uint8`` raises ``StudioError`` for unreadable files.
    ``progress``: an object with ``update(n)`` and ``set_postfix_str(s)`` (a tqdm bar) or None.
    A ``KeyboardInterrupt`` stops the run and is reported in the summary (``interrupted``).
    """
    from efficientsam_studio.engine.cache import CacheWriteWarning, image_hash
    from efficientsam_studio.errors import StudioError

    summary = PrecomputeSummary()
    try:
        for path in paths:
            summary.total += 1
            try:
                image = load_image(path)
            except StudioError as exc:
                summary.unreadable.append((path, str(exc)))
            else:
                key = image_hash(image)
                if predictor.cache.contains(predictor.key_for(key=key), on_disk=True):
                    summary.cached += 1
                else:
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always", CacheWriteWarning)
                        predictor.set_image(image, key=key)
                    failures = [w for w in caught if issubclass(w.category, CacheWriteWarning)]
                    if failures:
                        summary.not_stored += 1
                        summary.store_failure = summary.store_failure or _store_failure(failures[0])
                    else:
                        summary.computed += 1
            if progress is not None:
                progress.update(1)
                progress.set_postfix_str(path.name[-30:])
    except KeyboardInterrupt:
        summary.interrupted = True
    return summary


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "precompute",
        help="compute and cache the image embeddings of a folder (resumable)",
        description="Encode every image of FOLDER once and store the embeddings in the disk cache, so "
        "that opening them later in the app or in batch labelling is instant. Already cached images "
        "are skipped; interrupt with Ctrl+C and run again to continue.",
    )
    p.add_argument("folder", type=Path, help="folder of images")
    p.add_argument("--model", default="vit_t", help="model name: vit_t (default), vit_s")
    p.add_argument("--checkpoint", type=Path, default=None, help="weights file (default: installed weights)")
    p.add_argument(
        "--backend",
        default="auto",
        choices=BACKEND_CHOICES,
        help=BACKEND_HELP,
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="device")
    p.add_argument("-r", "--recursive", action="store_true", help="include images in subfolders")
    p.add_argument("--cache-dir", type=Path, default=None, help="cache folder (default: the user cache)")
    p.add_argument("--max-cache-gb", type=float, default=None, help="size limit of the disk cache in GB")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from efficientsam_studio.annotations.images import load_image
    from efficientsam_studio.annotations.storage import output_problem
    from efficientsam_studio.cli.main import CommandError
    from efficientsam_studio.engine import load_predictor
    from efficientsam_studio.engine.cache import CachedPredictor, EmbeddingCache, MemoryCache
    from efficientsam_studio.engine.cache_disk import DEFAULT_MAX_BYTES, DiskCache

    folder: Path = args.folder
    if not folder.is_dir():
        raise CommandError(f"{folder} is not a folder: give the folder that holds the images")
    paths = find_images(folder, args.recursive)
    if not paths:
        raise CommandError(
            f"no images in {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}"
            + ("" if args.recursive else "; use --recursive to include subfolders")
            + ")"
        )
    max_bytes = DEFAULT_MAX_BYTES if args.max_cache_gb is None else int(args.max_cache_gb * 1e9)
    disk = DiskCache(args.cache_dir / "embeddings" if args.cache_dir else None, max_bytes=max_bytes)
    problem = output_problem(disk.root, folder=True)
    if problem is not None:
        if args.cache_dir:
            raise CommandError(f"--cache-dir {args.cache_dir}: {problem}")
        raise CommandError(f"embedding cache {disk.root}: {problem}; choose another folder with --cache-dir")
    if disk.max_bytes < len(paths) * 2.2e6:
        print(
            f"note: {len(paths)} embeddings need about {len(paths) * 2.2e6 / 1e9:.1f} GB but the cache "
            f"is limited to {disk.max_bytes / 1e9:.1f} GB: the oldest will be evicted (see --max-cache-gb)",
            file=sys.stderr,
        )
    predictor = load_predictor(
        model=args.model, checkpoint=args.checkpoint, device=args.device, backend=args.backend
    )
    cached = CachedPredictor(predictor, EmbeddingCache(MemoryCache(0), disk))
    with tqdm(total=len(paths), unit="img", desc="precompute", file=sys.stderr) as bar:
        summary = precompute_images(paths, cached, load_image, progress=bar)
    for line in summary.lines():
        print(line)
    print(f"cache: {disk.root}")
    if summary.interrupted:
        return 130
    return 1 if summary.unreadable or summary.not_stored else 0
