"""On-disk store of image embeddings: one self-checking file per (image, model, engine version).

File format (little endian), one file per entry, named ``<blake2b of the key>.emb``::

    bytes 0..7      magic  b"EFSAMEMB"
    bytes 8..11     uint32 length L of the header
    bytes 12..12+L  UTF-8 JSON header: {"format": 2, "key": {"image", "model", "engine"},
                    "dtype": "float16", "shape": [1, 256, 64, 64], "image_size": [H, W],
                    "payload_bytes": N, "entry_blake2b": hex digest}
    then N bytes    the embedding, C order, float16

``entry_blake2b`` is the digest of the header's other fields (as sorted-key JSON) followed by the
payload, so a changed byte anywhere in the file, the stored image size included, is detected. An
entry is trusted only when the magic, the format, the full key, the dtype and shape, the file length
and that checksum all match, and, when the caller gives the size of the image it has in hand, the
stored image size equals it; anything else (a corrupt, truncated, foreign or stale file, or an entry
of format 1, whose checksum covered the payload only) is deleted and reported as a miss, so the
caller recomputes it. Writes go to a temporary file in the same folder, are flushed and fsynced, then
renamed over the final name (atomic on POSIX and Windows), so an interrupted or failed write never
leaves a partial entry under a real name. A write that fails (full disk, read-only folder) emits
:class:`CacheWriteWarning` and leaves nothing behind.

Eviction: the store keeps its total size under ``max_bytes`` by deleting the least recently used
entries. "Used" is the file's modification time, which :meth:`DiskCache.get` refreshes on every hit
(file access times are unreliable: many systems mount with ``noatime``/``relatime``).

Storage is float16 (2 MiB per embedding instead of 4 MiB). The rounding changes decoder logits by
about 1e-3 of their range; the measured effect on masks is recorded in ``benchmarks/README.md``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MAGIC = b"EFSAMEMB"
FORMAT = 2
SUFFIX = ".emb"
_TMP_PREFIX = ".tmp-"
_STALE_TMP_SECONDS = 3600.0
DEFAULT_MAX_BYTES = 4 * 1024**3


class CacheWriteWarning(UserWarning):
    """An embedding could not be written to the disk cache (the result is still returned).

    ``path``: the entry that was not written; ``cause``: the ``OSError`` that stopped it.
    """

    def __init__(self, path: Path, cause: OSError) -> None:
        super().__init__(
            f"embedding cache: could not write {path} ({cause}); the embedding is used but not stored. "
            "Free disk space or point EFSAM_HOME to a writable folder."
        )
        self.path, self.cause = path, cause


@dataclass(frozen=True)
class CacheKey:
    """Identity of one cached embedding.

    ``image``: content hash of the decoded pixels (:func:`efficientsam_studio.engine.cache.image_hash`);
    ``model``: checksum of the weights plus the encoder variant (for example ``vit_t:<sha>:fp32``);
    ``engine``: version of the embedding computation (preprocessing and encoder semantics).
    """

    image: str
    model: str
    engine: str

    def as_dict(self) -> dict[str, str]:
        return {"image": self.image, "model": self.model, "engine": self.engine}

    def filename(self) -> str:
        """File name of the entry: a digest of the whole key, so names stay short and flat."""
        text = json.dumps(self.as_dict(), sort_keys=True).encode()
        return hashlib.blake2b(text, digest_size=20).hexdigest() + SUFFIX


_DIGEST_FIELD = "entry_blake2b"


def _entry_digest(header: dict, payload: bytes | memoryview) -> str:
    """Digest of a header (every field but the digest itself, as sorted-key JSON) and the payload."""
    fields = {name: value for name, value in header.items() if name != _DIGEST_FIELD}
    digest = hashlib.blake2b(digest_size=20)
    digest.update(json.dumps(fields, sort_keys=True).encode())
    digest.update(payload)
    return digest.hexdigest()


def encode_entry(key: CacheKey, embedding: np.ndarray, image_size: tuple[int, int]) -> bytes:
    """Serialise ``embedding`` (any float dtype, any shape) as float16 with a header carrying ``key``."""
    payload = np.ascontiguousarray(embedding, dtype=np.float16).tobytes()
    header = {
        "format": FORMAT,
        "key": key.as_dict(),
        "dtype": "float16",
        "shape": list(embedding.shape),
        "image_size": [int(image_size[0]), int(image_size[1])],
        "payload_bytes": len(payload),
    }
    header[_DIGEST_FIELD] = _entry_digest(header, payload)
    head = json.dumps(header, sort_keys=True).encode()
    return MAGIC + struct.pack("<I", len(head)) + head + payload


def decode_entry(
    data: bytes, key: CacheKey, image_size: tuple[int, int] | None = None
) -> tuple[np.ndarray, tuple[int, int]] | None:
    """Parse and validate an entry; returns ``(float32 embedding, (H, W))`` or None when anything is off
    (``image_size``: the ``(H, W)`` the stored size must equal, when given)."""
    if len(data) < 12 or data[:8] != MAGIC:
        return None
    (head_len,) = struct.unpack("<I", data[8:12])
    if head_len > 65536 or 12 + head_len > len(data):
        return None
    try:
        header = json.loads(data[12 : 12 + head_len].decode())
        shape = tuple(int(s) for s in header["shape"])
        size = (int(header["image_size"][0]), int(header["image_size"][1]))
        n_bytes = int(header["payload_bytes"])
        digest = str(header[_DIGEST_FIELD])
        ok = header["format"] == FORMAT and header["key"] == key.as_dict() and header["dtype"] == "float16"
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
    payload = memoryview(data)[12 + head_len :]
    if not ok or len(payload) != n_bytes or n_bytes != 2 * int(np.prod(shape)) or min(size) <= 0:
        return None
    if image_size is not None and size != (int(image_size[0]), int(image_size[1])):
        return None
    if _entry_digest(header, payload) != digest:
        return None
    return np.frombuffer(payload, dtype=np.float16).reshape(shape).astype(np.float32), size


class DiskCache:
    """Embeddings on disk under ``root`` (default: ``efficientsam_studio.paths.cache_dir()/embeddings``).

    Thread- and process-safe in the sense that matters here: readers never see a partial file, and two
    writers of the same key write identical content. Every method swallows I/O errors: a cache must
    never make a computation fail.
    """

    def __init__(self, root: str | os.PathLike | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if root is None:
            from efficientsam_studio.paths import cache_dir

            root = Path(cache_dir()) / "embeddings"
        self.root = Path(root)
        self.max_bytes = int(max_bytes)

    def path_for(self, key: CacheKey) -> Path:
        return self.root / key.filename()

    def get(
        self, key: CacheKey, image_size: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, tuple[int, int]] | None:
        """The valid entry for ``key`` as ``(float32 (1, 256, 64, 64), (H, W))``, or None.

        ``image_size``: the ``(H, W)`` of the image the caller holds; an entry that records another size
        is invalid. An invalid file under the key's name is deleted. A hit refreshes the entry's use time.
        """
        path = self.path_for(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("embedding cache: cannot read %s (%s); recomputing", path, exc)
            return None
        entry = decode_entry(data, key, image_size)
        if entry is None:
            log.warning(
                "embedding cache: %s is corrupt, truncated, stale or of another image; recomputing", path
            )
            self._unlink(path)
            return None
        try:
            os.utime(path)
        except OSError:
            pass
        return entry

    def contains(self, key: CacheKey, image_size: tuple[int, int] | None = None) -> bool:
        """True when a valid entry exists (it is read and checked, not only looked up; ``image_size`` as
        in :meth:`get`)."""
        return self.get(key, image_size) is not None

    def put(self, key: CacheKey, embedding: np.ndarray, image_size: tuple[int, int]) -> bool:
        """Store ``embedding`` atomically; returns False (and warns) when the write failed."""
        data = encode_entry(key, embedding, image_size)
        final = self.path_for(key)
        tmp_name = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=SUFFIX, dir=self.root)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, final)
            tmp_name = None
        except OSError as exc:
            warnings.warn(CacheWriteWarning(final, exc), stacklevel=2)
            return False
        finally:
            if tmp_name is not None:
                self._unlink(Path(tmp_name))
        self.evict()
        return True

    def entries(self) -> list[tuple[Path, int, float]]:
        """``(path, bytes, last use time)`` of every entry, oldest use first."""
        found = []
        try:
            with os.scandir(self.root) as it:
                for item in it:
                    if item.name.endswith(SUFFIX) and not item.name.startswith(_TMP_PREFIX):
                        try:
                            st = item.stat()
                        except OSError:
                            continue
                        found.append((Path(item.path), st.st_size, st.st_mtime))
        except OSError:
            return []
        found.sort(key=lambda e: e[2])
        return found

    def total_bytes(self) -> int:
        return sum(size for _, size, _ in self.entries())

    def evict(self) -> int:
        """Delete least recently used entries until the total is within ``max_bytes``; returns the count.

        Also removes temporary files left by writers that were killed more than an hour ago.
        """
        self._remove_stale_tmp()
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        removed = 0
        for path, size, _ in entries:
            if total <= self.max_bytes:
                break
            if self._unlink(path):
                total -= size
                removed += 1
        return removed

    def clear(self) -> None:
        for path, _, _ in self.entries():
            self._unlink(path)

    def _remove_stale_tmp(self) -> None:
        now = time.time()
        try:
            with os.scandir(self.root) as it:
                for item in it:
                    if item.name.startswith(_TMP_PREFIX):
                        try:
                            if now - item.stat().st_mtime > _STALE_TMP_SECONDS:
                                os.unlink(item.path)
                        except OSError:
                            continue
        except OSError:
            return

    @staticmethod
    def _unlink(path: Path) -> bool:
        try:
            path.unlink()
            return True
        except OSError:
            return False
