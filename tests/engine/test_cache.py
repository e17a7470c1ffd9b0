"""Embedding cache: keys, memory LRU, disk validation, eviction, full disk, CachedPredictor."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import struct
import time
import warnings

import numpy as np
import pytest

from efficientsam_studio.engine import cache_disk
from efficientsam_studio.engine.cache import (
    ENGINE_VERSION,
    CachedPredictor,
    CacheKey,
    CacheWriteWarning,
    DiskCache,
    EmbeddingCache,
    MemoryCache,
    image_hash,
    state_dict_checksum,
)

EMB_SHAPE = (1, 256, 8, 8)  # the real shape is (1, 256, 64, 64); the cache does not care


class FakeEncoderPredictor:
    """Deterministic stand-in for a backend: the 'embedding' is a function of the pixels and weights."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.encodes = 0
        self.embedding = None
        self.image_size = None
        self.model_key = f"fake:{seed}:fp32"

    def encode_image(self, image: np.ndarray) -> np.ndarray:
        self.encodes += 1
        rng = np.random.default_rng(int(image.sum()) + 1000 * self.seed)
        return rng.standard_normal(EMB_SHAPE).astype(np.float32)

    def set_image(self, image: np.ndarray) -> None:
        self.embedding = self.encode_image(image)
        self.image_size = image.shape[:2]

    def get_image_embedding(self) -> np.ndarray:
        return self.embedding

    def set_embedding(self, embedding: np.ndarray, image_size: tuple[int, int]) -> None:
        self.embedding = np.asarray(embedding)
        self.image_size = tuple(image_size)

    def predict(self, **kwargs):
        return self.embedding.sum(), self.image_size


def _image(value: int = 3, shape=(20, 30, 3)) -> np.ndarray:
    rng = np.random.default_rng(value)
    return rng.integers(0, 255, size=shape, dtype=np.uint8)


def _key(image_id: str = "a" * 40, model: str = "m:1:fp32") -> CacheKey:
    return CacheKey(image=image_id, model=model, engine=ENGINE_VERSION)


def _emb(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(EMB_SHAPE).astype(np.float32)


def test_image_hash_depends_on_pixels_and_shape_not_on_memory_layout():
    image = _image()
    assert image_hash(image) == image_hash(image.copy())
    assert image_hash(image) == image_hash(np.asfortranarray(image))
    changed = image.copy()
    changed[0, 0, 0] ^= 1
    assert image_hash(changed) != image_hash(image)
    assert image_hash(image.reshape(30, 20, 3)) != image_hash(image)


def test_state_dict_checksum_changes_with_any_value_and_ignores_key_order():
    a = {"w": np.ones((2, 2), np.float32), "b": np.zeros(3, np.float32)}
    b = {"b": np.zeros(3, np.float32), "w": np.ones((2, 2), np.float32)}
    assert state_dict_checksum(a) == state_dict_checksum(b)
    b["w"][1, 1] = 1.0001
    assert state_dict_checksum(a) != state_dict_checksum(b)


def test_memory_cache_evicts_least_recently_used_by_bytes():
    one = _emb().nbytes
    cache = MemoryCache(budget_bytes=2 * one)
    cache.put(_key("1"), _emb(1), (4, 4))
    cache.put(_key("2"), _emb(2), (4, 4))
    assert cache.get(_key("1")) is not None  # 1 is now the most recent
    cache.put(_key("3"), _emb(3), (4, 4))
    assert _key("2") not in cache and _key("1") in cache and _key("3") in cache
    assert cache.nbytes == 2 * one


def test_disk_roundtrip_is_float16_close_and_keeps_image_size(tmp_path):
    disk = DiskCache(tmp_path)
    emb = _emb()
    assert disk.put(_key(), emb, (480, 640))
    got, size = disk.get(_key())
    assert size == (480, 640) and got.dtype == np.float32 and got.shape == EMB_SHAPE
    np.testing.assert_allclose(got, emb, rtol=1e-3, atol=1e-3)
    # fp16: half the bytes of the payload plus a small header
    assert os.path.getsize(disk.path_for(_key())) < emb.nbytes // 2 + 1024


@pytest.mark.parametrize(
    "other", [_key(image_id="b" * 40), _key(model="m:2:fp32"), CacheKey("a" * 40, "m:1:fp32", "0")]
)
def test_disk_misses_on_changed_image_model_or_engine_version(tmp_path, other):
    disk = DiskCache(tmp_path)
    disk.put(_key(), _emb(), (4, 4))
    assert disk.get(other) is None
    assert disk.get(_key()) is not None


def _corrupt_flip_payload(path):
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])


def _garbage(path):
    path.write_bytes(b"not an embedding at all")


def _stale_header(path):
    # same file name, but the header says a different key (as if written by another model)
    path.write_bytes(cache_disk.encode_entry(_key(model="other"), _emb(), (4, 4)))


def _changed_image_size(path):
    # a damaged header that is still valid JSON: the stored image size differs from the one written
    data = path.read_bytes()
    assert b'"image_size": [4, 4]' in data
    path.write_bytes(data.replace(b'"image_size": [4, 4]', b'"image_size": [8, 4]'))


def _format_1_entry(path):
    # the layout of format 1, whose checksum covered the payload only
    payload = _emb().astype(np.float16).tobytes()
    header = {
        "format": 1, "key": _key().as_dict(), "dtype": "float16", "shape": list(EMB_SHAPE),
        "image_size": [4, 4], "payload_bytes": len(payload),
        "payload_blake2b": hashlib.blake2b(payload, digest_size=20).hexdigest(),
    }  # fmt: skip
    head = json.dumps(header, sort_keys=True).encode()
    path.write_bytes(cache_disk.MAGIC + struct.pack("<I", len(head)) + head + payload)


@pytest.mark.parametrize(
    "damage",
    [_corrupt_flip_payload, _truncate, _garbage, _stale_header, _changed_image_size, _format_1_entry],
)
def test_damaged_entry_is_never_trusted_and_is_removed(tmp_path, damage):
    disk = DiskCache(tmp_path)
    disk.put(_key(), _emb(), (4, 4))
    path = disk.path_for(_key())
    damage(path)
    assert disk.get(_key()) is None
    assert not path.exists()


def test_eviction_keeps_total_under_limit_dropping_least_recently_used(tmp_path):
    probe = DiskCache(tmp_path / "probe")
    probe.put(_key(), _emb(), (4, 4))
    entry_bytes = os.path.getsize(probe.path_for(_key()))
    disk = DiskCache(tmp_path / "store", max_bytes=int(2.5 * entry_bytes))
    keys = [_key(str(i) * 40) for i in range(3)]
    disk.put(keys[0], _emb(0), (4, 4))
    disk.put(keys[1], _emb(1), (4, 4))
    old = time.time() - 100
    os.utime(disk.path_for(keys[0]), (old, old))
    os.utime(disk.path_for(keys[1]), (old - 50, old - 50))
    assert disk.get(keys[1]) is not None  # a hit makes keys[1] the most recently used
    disk.put(keys[2], _emb(2), (4, 4))
    assert disk.get(keys[0]) is None
    assert disk.get(keys[1]) is not None and disk.get(keys[2]) is not None
    assert disk.total_bytes() <= disk.max_bytes


def test_full_disk_warns_returns_result_and_leaves_nothing(tmp_path, monkeypatch):
    disk = DiskCache(tmp_path)

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_disk.os, "fsync", no_space)
    predictor = CachedPredictor(FakeEncoderPredictor(), EmbeddingCache(MemoryCache(0), disk))
    image = _image()
    with pytest.warns(CacheWriteWarning, match="No space left"):
        assert predictor.set_image(image) == "computed"
    assert predictor.predictor.embedding is not None
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert predictor.set_image(image) == "computed"  # nothing was stored, so it encodes again
    assert predictor.set_image(image) == "disk"


def test_interrupted_write_leaves_no_entry(tmp_path, monkeypatch):
    disk = DiskCache(tmp_path)

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_disk.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        disk.put(_key(), _emb(), (4, 4))
    assert list(tmp_path.iterdir()) == []


def test_cached_predictor_sources_and_invalidation(tmp_path):
    disk = DiskCache(tmp_path)
    fake = FakeEncoderPredictor(seed=0)
    predictor = CachedPredictor(fake, EmbeddingCache(MemoryCache(), disk))
    image = _image(1)
    assert predictor.set_image(image) == "computed"
    fresh = fake.embedding.copy()
    assert predictor.set_image(image) == "memory"
    np.testing.assert_array_equal(fake.embedding, fresh)
    assert fake.encodes == 1

    # a new process: empty memory, same disk
    fake2 = FakeEncoderPredictor(seed=0)
    again = CachedPredictor(fake2, EmbeddingCache(MemoryCache(), DiskCache(tmp_path)))
    assert again.set_image(image) == "disk"
    assert fake2.encodes == 0 and fake2.image_size == image.shape[:2]
    np.testing.assert_allclose(fake2.embedding, fresh, atol=2e-3)

    # changed image -> recomputed
    changed = image.copy()
    changed[5, 5] = 255 - changed[5, 5]
    assert again.set_image(changed) == "computed"
    # changed model (other weights) -> recomputed, old entries untouched
    other = CachedPredictor(FakeEncoderPredictor(seed=1), EmbeddingCache(MemoryCache(), DiskCache(tmp_path)))
    assert other.set_image(image) == "computed"
    assert other.predictor.encodes == 1


def test_corrupt_disk_entry_is_recomputed_through_the_predictor(tmp_path):
    fake = FakeEncoderPredictor()
    predictor = CachedPredictor(fake, EmbeddingCache(MemoryCache(0), DiskCache(tmp_path)))
    image = _image(2)
    predictor.set_image(image)
    expected = fake.embedding.copy()
    _corrupt_flip_payload(DiskCache(tmp_path).path_for(predictor.key_for(image)))
    assert predictor.set_image(image) == "computed"
    np.testing.assert_array_equal(fake.embedding, expected)
    assert predictor.set_image(image) == "disk"


def test_cache_image_preloads_without_changing_the_current_image(tmp_path):
    fake = FakeEncoderPredictor()
    predictor = CachedPredictor(fake, EmbeddingCache(MemoryCache(), DiskCache(tmp_path)))
    current, upcoming = _image(1), _image(2)
    predictor.set_image(current)
    before = predictor.predict()
    assert predictor.cache_image(upcoming) == "computed"
    assert predictor.predict() == before
    assert predictor.cache_image(upcoming) == "memory"
    assert predictor.set_image(upcoming) == "memory"
    assert fake.encodes == 2


def test_an_entry_recording_another_image_size_is_recomputed(tmp_path):
    fake = FakeEncoderPredictor()
    disk = DiskCache(tmp_path)
    predictor = CachedPredictor(fake, EmbeddingCache(MemoryCache(0), disk))
    image = _image(4)  # 20 x 30
    key = predictor.key_for(image)
    disk.put(key, _emb(), (400, 300))  # a well-formed entry that names another size
    assert disk.contains(key)  # well formed: only the size of the image in hand tells it apart
    assert predictor.set_image(image) == "computed"
    assert fake.image_size == (20, 30)
    assert predictor.set_image(image) == "disk" and fake.encodes == 1
    assert disk.get(key)[1] == (20, 30)
    disk.put(key, _emb(), (400, 300))
    assert not predictor.is_cached(image, on_disk=True)
    assert not disk.path_for(key).exists()  # the bad entry is deleted


def test_a_memory_entry_recording_another_image_size_is_not_used(tmp_path):
    fake = FakeEncoderPredictor()
    memory = MemoryCache()
    predictor = CachedPredictor(fake, EmbeddingCache(memory, None))
    image = _image(5)
    memory.put(predictor.key_for(image), _emb(), (7, 7))
    assert predictor.cache_image(image) == "computed"
    assert predictor.set_image(image) == "memory" and fake.image_size == (20, 30)
