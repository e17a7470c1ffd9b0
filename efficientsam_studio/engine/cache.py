"""Embedding cache: in memory (LRU by a byte budget) and on disk, and a predictor that uses it.

An image embedding ``(1, 256, 64, 64)`` costs about a second of CPU to compute and a few
milliseconds to read back, so the GUI and batch labelling go through :class:`CachedPredictor`::

    predictor = CachedPredictor(load_predictor("vit_t", backend="auto"))
    source = predictor.set_image(rgb)          # "memory", "disk" or "computed"
    masks, scores, logits = predictor.predict(point_coords=[[x, y]], point_labels=[1])

Keys (:class:`~efficientsam_studio.engine.cache_disk.CacheKey`):

- image: :func:`image_hash`, a BLAKE2b digest of the **decoded pixels** (shape, dtype and bytes of the
  RGB uint8 array the predictor sees), not of the file or its path: a renamed or re-saved copy with the
  same pixels hits, an edited image with the same name misses, and EXIF orientation is accounted for.
- model: a checksum of the weights (:func:`state_dict_checksum` for torch models; exported ONNX files
  carry the checksum of the state_dict they came from, so torch and ONNX fp32 share entries) plus the
  encoder variant (``fp32``, ``int8``...): a quantised encoder never reads an fp32 entry.
- engine: :data:`ENGINE_VERSION`, bumped whenever preprocessing or the encoder's semantics change.

The memory tier keeps the float32 array the encoder produced; the disk tier stores float16 (see
``cache_disk``), so an image read back from disk gives logits within about 1e-3 of a fresh encode.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from efficientsam_studio.engine.cache_disk import CacheKey, CacheWriteWarning, DiskCache

__all__ = [
    "ENGINE_VERSION",
    "CacheKey",
    "CacheWriteWarning",
    "CachedPredictor",
    "DiskCache",
    "EmbeddingCache",
    "MemoryCache",
    "file_checksum",
    "image_hash",
    "predictor_model_key",
    "state_dict_checksum",
]

ENGINE_VERSION = "1"
DEFAULT_MEMORY_BYTES = 256 * 1024**2


def image_hash(image: np.ndarray) -> str:
    """Content hash of a decoded image: BLAKE2b-160 of its shape, dtype and pixel bytes (hex, 40 chars).

    About 3 ms for a 1080p RGB image; the array is not copied when it is C-contiguous.
    """
    array = np.ascontiguousarray(image)
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"{array.shape}|{array.dtype.str}|".encode())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


_FILE_CHECKSUMS: dict[tuple[str, int, int], str] = {}


def file_checksum(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file, remembered per (path, size, mtime) for the life of the process."""
    path = Path(path)
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo_key not in _FILE_CHECKSUMS:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _FILE_CHECKSUMS[memo_key] = digest.hexdigest()
    return _FILE_CHECKSUMS[memo_key]


def state_dict_checksum(state_dict: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a state_dict's keys, dtypes, shapes and values (tensors or arrays).

    Independent of the file it came from (``.pt``, ``.pt.zip``, a trainer export) and of key order.
    """
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        value = state_dict[name]
        if hasattr(value, "detach"):
            value = value.detach().cpu().contiguous().numpy()
        array = np.ascontiguousarray(value)
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def predictor_model_key(predictor: Any) -> str:
    """The model part of the cache key for a predictor.

    Uses ``predictor.model_key`` when the predictor defines it (the ONNX backend does), otherwise
    hashes ``predictor.model.state_dict()`` (torch backend) and appends ``:fp32``.
    """
    key = getattr(predictor, "model_key", None)
    if key:
        return str(key)
    model = getattr(predictor, "model", None)
    if model is None or not hasattr(model, "state_dict"):
        raise TypeError("predictor has neither model_key nor model.state_dict(); pass model_key explicitly")
    name = getattr(predictor, "model_name", type(model).__name__)
    return f"{name}:{state_dict_checksum(model.state_dict())}:fp32"


def _image_size(image: np.ndarray) -> tuple[int, int]:
    return int(image.shape[0]), int(image.shape[1])


def embedding_to_numpy(embedding: Any) -> np.ndarray:
    """A predictor's embedding (torch tensor or array, ``(1, 256, 64, 64)``) as a float32 numpy array."""
    if hasattr(embedding, "detach"):
        embedding = embedding.detach().float().cpu().numpy()
    return np.asarray(embedding, dtype=np.float32)


class MemoryCache:
    """Thread-safe LRU of float32 embeddings bounded by ``budget_bytes`` (0 disables it)."""

    def __init__(self, budget_bytes: int = DEFAULT_MEMORY_BYTES) -> None:
        self.budget_bytes = int(budget_bytes)
        self._items: OrderedDict[CacheKey, tuple[np.ndarray, tuple[int, int]]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: CacheKey) -> tuple[np.ndarray, tuple[int, int]] | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: CacheKey, embedding: np.ndarray, image_size: tuple[int, int]) -> None:
        """Keep a read-only reference (no copy); the oldest entries leave when over budget."""
        embedding = np.asarray(embedding, dtype=np.float32)
        if embedding.nbytes > self.budget_bytes:
            return
        embedding.flags.writeable = False
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[0].nbytes
            self._items[key] = (embedding, (int(image_size[0]), int(image_size[1])))
            self._bytes += embedding.nbytes
            while self._bytes > self.budget_bytes:
                _, (dropped, _) = self._items.popitem(last=False)
                self._bytes -= dropped.nbytes

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: CacheKey) -> bool:
        return key in self._items

    def discard(self, key: CacheKey) -> None:
        """Forget ``key`` (nothing happens when it is not held)."""
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[0].nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


def _same_size(stored: tuple[int, int], image_size: tuple[int, int]) -> bool:
    return (int(stored[0]), int(stored[1])) == (int(image_size[0]), int(image_size[1]))


class EmbeddingCache:
    """Memory tier in front of an optional disk tier. ``disk=None`` keeps embeddings in memory only."""

    def __init__(self, memory: MemoryCache | None = None, disk: DiskCache | None = None) -> None:
        self.memory = memory if memory is not None else MemoryCache()
        self.disk = disk

    @classmethod
    def default(cls, memory_bytes: int = DEFAULT_MEMORY_BYTES) -> EmbeddingCache:
        """Memory LRU plus the disk store under ``efficientsam_studio.paths.cache_dir()``."""
        return cls(MemoryCache(memory_bytes), DiskCache())

    def get(
        self, key: CacheKey, image_size: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, tuple[int, int], str] | None:
        """``(embedding float32, (H, W), "memory" | "disk")`` or None on a miss.

        ``image_size``: the ``(H, W)`` of the image the caller holds; an entry recording another size is
        a miss (and is dropped from memory and deleted from disk)."""
        hit = self.memory.get(key)
        if hit is not None:
            if image_size is None or _same_size(hit[1], image_size):
                return hit[0], hit[1], "memory"
            self.memory.discard(key)
        if self.disk is not None:
            entry = self.disk.get(key, image_size)
            if entry is not None:
                self.memory.put(key, *entry)
                return entry[0], entry[1], "disk"
        return None

    def contains(
        self, key: CacheKey, on_disk: bool = False, image_size: tuple[int, int] | None = None
    ) -> bool:
        """Whether ``key`` is cached (``on_disk=True``: a valid disk entry exists; ``image_size`` as in
        :meth:`get`)."""
        if not on_disk:
            hit = self.memory.get(key)
            if hit is not None and (image_size is None or _same_size(hit[1], image_size)):
                return True
        return self.disk is not None and self.disk.contains(key, image_size)

    def put(self, key: CacheKey, embedding: np.ndarray, image_size: tuple[int, int]) -> bool:
        """Store in both tiers; returns False when the disk write failed (a warning was issued)."""
        self.memory.put(key, embedding, image_size)
        if self.disk is None:
            return True
        return self.disk.put(key, embedding, image_size)


class CachedPredictor:
    """A Predictor (any backend) whose ``set_image`` goes through an :class:`EmbeddingCache`.

    The wrapped predictor must provide ``set_image``, ``get_image_embedding`` and
    ``set_embedding(embedding (1, 256, 64, 64), image_size (H, W))``. Every other attribute
    (``predict``, ``predict_batch``...) is the wrapped predictor's own.
    """

    def __init__(
        self,
        predictor: Any,
        cache: EmbeddingCache | None = None,
        model_key: str | None = None,
    ) -> None:
        self.predictor = predictor
        self.cache = cache if cache is not None else EmbeddingCache.default()
        self.model_key = model_key or predictor_model_key(predictor)
        self._lock = threading.RLock()

    def key_for(self, image: np.ndarray | None = None, key: str | None = None) -> CacheKey:
        """The cache key of an image (``key``: a precomputed :func:`image_hash`, which skips hashing)."""
        if key is None:
            if image is None:
                raise ValueError("key_for needs an image or a key")
            key = image_hash(image)
        return CacheKey(image=key, model=self.model_key, engine=ENGINE_VERSION)

    def set_image(self, image: np.ndarray, key: str | None = None) -> str:
        """Make ``image`` (RGB uint8 ``(H, W, 3)``) current; returns "memory", "disk" or "computed".

        A cached image only needs the embedding copied into the predictor (a few milliseconds);
        otherwise the encoder runs and the result is stored in both tiers. ``key``: the image's
        :func:`image_hash` if the caller already has it. An entry is used only when the image size it
        records is ``image``'s own; masks always come out at ``image``'s size.
        """
        cache_key = self.key_for(image, key)
        size = _image_size(image)
        with self._lock:
            hit = self.cache.get(cache_key, size)
            if hit is not None:
                embedding, _, source = hit
                self.predictor.set_embedding(embedding, size)
                return source
            self.predictor.set_image(image)
            self._store(cache_key, self.predictor.get_image_embedding(), image)
            return "computed"

    def cache_image(self, image: np.ndarray, key: str | None = None) -> str:
        """Make sure ``image``'s embedding is cached without changing the current image.

        For background preloading of the next images. Returns "memory", "disk" or "computed".
        """
        cache_key = self.key_for(image, key)
        with self._lock:
            if self.cache.contains(cache_key, image_size=_image_size(image)):
                return "memory" if cache_key in self.cache.memory else "disk"
            # encoded beside the current image, which stays installed (with its decoder preparation)
            self._store(cache_key, self.predictor.encode_image(image), image)
            return "computed"

    def _store(self, cache_key: CacheKey, embedding: Any, image: np.ndarray) -> None:
        self.cache.put(cache_key, embedding_to_numpy(embedding), _image_size(image))

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped predictor's ``predict`` on the current image (serialised with ``cache_image``)."""
        with self._lock:
            return self.predictor.predict(*args, **kwargs)

    def predict_batch(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped predictor's ``predict_batch`` on the current image (serialised likewise)."""
        with self._lock:
            return self.predictor.predict_batch(*args, **kwargs)

    def is_cached(
        self, image: np.ndarray | None = None, key: str | None = None, on_disk: bool = False
    ) -> bool:
        """Whether the embedding of ``image`` (or of the image hashed as ``key``) is cached; with the
        image, only an entry recording its size counts (``on_disk``: a valid disk entry exists)."""
        size = None if image is None else _image_size(image)
        return self.cache.contains(self.key_for(image, key), on_disk=on_disk, image_size=size)

    def set_embedding(self, embedding: np.ndarray, image_size: tuple[int, int]) -> None:
        with self._lock:
            self.predictor.set_embedding(embedding, image_size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.predictor, name)
