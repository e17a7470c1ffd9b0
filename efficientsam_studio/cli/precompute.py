"""``efsam-studio precompute FOLDER``: fill the disk embedding cache for every image of a folder.

Images are the files :func:`~efficientsam_studio.annotations.images.list_images` finds, the same set
the app and ``label`` see. Resumable: images whose embedding is already cached (same pixels, same weights,
same engine version) are skipped, so a run that was interrupted (Ctrl+C) continues where it stopped. Each
entry is written atomically, so an interruption never leaves a corrupt entry. Unreadable images are
reported and skipped. A cache folder that cannot be written is reported before any image is encoded, and
so is a ``--max-cache-gb`` that is not a positive number. Embeddings that the size limit evicts, at once
or later in the run, are reported as not stored. Exit status: 0 when every image is cached at the end, 1
when some could not be read or stored, 2 for a usage error, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from efficientsam_studio.cli.segment import BACKEND_CHOICES, BACKEND_HELP, DEVICE_CHOICES, MODEL_CHOICES

ENTRY_BYTES = 2.2e6
"""About the size of one cached embedding on disk (float16 ``(1, 256, 64, 64)`` and its header)."""


@dataclass
class PrecomputeSummary:
    """What a precompute run did: ``total`` images to do, how each finished image ended, and the paths
    of unreadable images with the reason. An image the run was working on when interrupted counts in
    none of them."""

    total: int = 0
    computed: int = 0
    cached: int = 0
    not_stored: int = 0
    evicted: int = 0
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    interrupted: bool = False
    store_failure: str | None = None
    limit_bytes: int | None = None

    @property
    def complete(self) -> bool:
        """Every image read and its embedding in the cache at the end of the run."""
        return not (self.unreadable or self.not_stored or self.evicted or self.interrupted)

    @property
    def finished(self) -> int:
        """Images the run finished with: encoded, found cached, unreadable or not stored."""
        return self.computed + self.cached + len(self.unreadable) + self.not_stored

    def lines(self) -> list[str]:
        counts = (
            f"{self.computed} encoded, {self.cached} already cached, "
            f"{len(self.unreadable)} unreadable, {self.not_stored + self.evicted} not stored"
        )
        if self.interrupted:
            out = [
                f"{self.finished} of {self.total} images: {counts} "
                "(interrupted: run the same command again to continue)"
            ]
        else:
            out = [f"{self.total} images: {counts}"]
        out += [f"  unreadable: {path}: {reason}" for path, reason in self.unreadable]
        if self.store_failure:
            out.append(
                f"  some embeddings could not be written to the cache ({self.store_failure}): "
                "fix the cache folder or choose another with --cache-dir"
            )
        limit = "" if self.limit_bytes is None else f" of {size_text(self.limit_bytes)}"
        if self.not_stored and not self.store_failure:
            out.append(
                f"  {self.not_stored} embeddings were evicted as soon as they were written: the cache "
                f"limit{limit} leaves no room for them (one embedding takes about {size_text(ENTRY_BYTES)}); "
                "raise --max-cache-gb"
            )
        if self.evicted:
            out.append(
                f"  {self.evicted} embeddings were evicted later in the run to keep the cache under its limit"
                f"{limit}: raise --max-cache-gb or precompute fewer images"
            )
        return out


def size_text(n_bytes: float) -> str:
    """A byte count for people: ``"512 kB"``, ``"8.8 MB"``, ``"4.3 GB"`` (decimal units, as the option)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes / 1e3:.0f} kB"


def cache_limit_bytes(max_cache_gb: float | None, default: int) -> int:
    """``--max-cache-gb`` in bytes (``default`` when not given); StudioError unless a positive number."""
    from efficientsam_studio.errors import StudioError

    if max_cache_gb is None:
        return default
    if not math.isfinite(max_cache_gb) or max_cache_gb <= 0:
        raise StudioError(
            f"--max-cache-gb {max_cache_gb:g}: the cache size limit must be a positive number of GB "
            f"(one embedding takes about {size_text(ENTRY_BYTES)})"
        )
    return max(1, int(max_cache_gb * 1e9))


def precompute_images(
    paths: Sequence[Path],
    predictor: Any,
    load_image: Callable[[Path], Any],
    progress: Any = None,
) -> PrecomputeSummary:
    """Cache the embedding of every image in ``paths`` with ``predictor`` (a CachedPredictor).

    ``load_image(path) -> (H, W, 3) uint8`` raises ``StudioError`` for unreadable files.
    ``progress``: an object with ``update(n)`` and ``set_postfix_str(s, refresh=False)`` (a tqdm bar) or None.
    A ``KeyboardInterrupt`` stops the run and is reported in the summary (``interrupted``).
    An embedding whose entry is gone right after it was written (the size limit evicted it) counts as
    not stored; one that was stored or already cached but is gone at the end of the run counts as
    ``evicted``.
    """
    from efficientsam_studio.engine.cache import CacheWriteWarning, image_hash
    from efficientsam_studio.errors import StudioError

    summary = PrecomputeSummary(total=len(paths))
    disk = predictor.cache.disk
    summary.limit_bytes = getattr(disk, "max_bytes", None)
    in_cache = []
    try:
        for path in paths:
            try:
                image = load_image(path)
            except StudioError as exc:
                summary.unreadable.append((path, str(exc)))
            else:
                cache_key = predictor.key_for(key=image_hash(image))
                if predictor.cache.contains(cache_key, on_disk=True, image_size=image.shape[:2]):
                    summary.cached += 1
                    in_cache.append(cache_key)
                else:
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always", CacheWriteWarning)
                        predictor.set_image(image, key=cache_key.image)
                    failures = [w for w in caught if issubclass(w.category, CacheWriteWarning)]
                    if failures:
                        summary.not_stored += 1
                        failure = failures[0].message  # the CacheWriteWarning: its file and cause
                        summary.store_failure = summary.store_failure or (
                            f"could not write {failure.path} ({failure.cause})"
                        )
                    elif not disk.path_for(cache_key).is_file():
                        summary.not_stored += 1
                    else:
                        summary.computed += 1
                        in_cache.append(cache_key)
            if progress is not None:
                progress.set_postfix_str(path.name[-30:], refresh=False)
                progress.update(1)
    except KeyboardInterrupt:
        summary.interrupted = True
    summary.evicted = sum(1 for cache_key in in_cache if not disk.path_for(cache_key).is_file())
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
    p.add_argument("--model", choices=MODEL_CHOICES, default="vit_t", help="model (default: vit_t)")
    p.add_argument("--checkpoint", type=Path, default=None, help="weights file (default: installed weights)")
    p.add_argument(
        "--backend",
        default="auto",
        choices=BACKEND_CHOICES,
        help=BACKEND_HELP,
    )
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="default: auto")
    p.add_argument("-r", "--recursive", action="store_true", help="include images in subfolders")
    p.add_argument("--cache-dir", type=Path, default=None, help="cache folder (default: the user cache)")
    p.add_argument(
        "--max-cache-gb",
        type=float,
        default=None,
        help="size limit of the disk cache in GB, a positive number (default 4.3, that is 4 GiB)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from efficientsam_studio.annotations.images import IMAGE_EXTENSIONS, list_images, load_image
    from efficientsam_studio.annotations.storage import output_problem
    from efficientsam_studio.cli.main import CommandError
    from efficientsam_studio.engine import load_predictor
    from efficientsam_studio.engine.cache import CachedPredictor, EmbeddingCache, MemoryCache
    from efficientsam_studio.engine.cache_disk import DEFAULT_MAX_BYTES, DiskCache

    folder: Path = args.folder
    if not folder.is_dir():
        raise CommandError(f"{folder} is not a folder: give the folder that holds the images")
    max_bytes = cache_limit_bytes(args.max_cache_gb, DEFAULT_MAX_BYTES)
    paths = list_images(folder, args.recursive)
    if not paths:
        raise CommandError(
            f"no images in {folder} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}"
            + ("" if args.recursive else "; use --recursive to include subfolders")
            + ")"
        )
    disk = DiskCache(args.cache_dir / "embeddings" if args.cache_dir else None, max_bytes=max_bytes)
    problem = output_problem(disk.root, folder=True)
    if problem is not None:
        if args.cache_dir:
            raise CommandError(f"--cache-dir {args.cache_dir}: {problem}")
        raise CommandError(f"embedding cache {disk.root}: {problem}; choose another folder with --cache-dir")
    if disk.max_bytes < len(paths) * ENTRY_BYTES:
        print(
            f"note: {len(paths)} embeddings need about {size_text(len(paths) * ENTRY_BYTES)} but the cache "
            f"is limited to {size_text(disk.max_bytes)}: the oldest will be evicted (see --max-cache-gb)",
            file=sys.stderr,
        )
    predictor = load_predictor(
        model=args.model, checkpoint=args.checkpoint, device=args.device, backend=args.backend
    )
    cached = CachedPredictor(predictor, EmbeddingCache(MemoryCache(0), disk))
    # drawn only when stderr is a terminal, as export's: a log gets the summary and no redraws
    with tqdm(total=len(paths), unit="img", desc="precompute", file=sys.stderr, disable=None) as bar:
        summary = precompute_images(paths, cached, load_image, progress=bar)
    for line in summary.lines():
        print(line)
    print(f"cache: {disk.root}")
    if summary.interrupted:
        return 130
    return 0 if summary.complete else 1
