"""Image loading: conversions to RGB uint8, EXIF orientation, and a clear error for every bad input."""

from __future__ import annotations

import os
import struct
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from efficientsam_studio.annotations.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    list_images,
    load_image,
    read_image_size,
)
from efficientsam_studio.errors import ImageLoadError, StudioError

# --- helpers that write test files --------------------------------------------------------------------


def _rgb_pattern(height: int = 20, width: int = 40) -> np.ndarray:
    """An RGB image with a red block at the top-left corner and a blue one at the bottom-right."""
    image = np.full((height, width, 3), 128, np.uint8)
    image[:6, :8] = (255, 0, 0)
    image[-6:, -8:] = (0, 0, 255)
    return image


def _encode(image_rgb: np.ndarray, ext: str, params: tuple[int, ...] = ()) -> bytes:
    bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR) if image_rgb.ndim == 3 else image_rgb
    ok, buf = cv2.imencode(ext, bgr, list(params))
    assert ok
    return buf.tobytes()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _exif_block(orientation: int) -> bytes:
    """A minimal little-endian TIFF/EXIF structure holding one IFD entry: Orientation (SHORT)."""
    entry = struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)
    return b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", 1) + entry + struct.pack("<I", 0)


def _jpeg_with_orientation(image_rgb: np.ndarray, orientation: int) -> bytes:
    jpeg = _encode(image_rgb, ".jpg", (cv2.IMWRITE_JPEG_QUALITY, 100))
    payload = b"Exif\0\0" + _exif_block(orientation)
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + app1 + jpeg[2:]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_with_exif(image_rgb: np.ndarray, orientation: int) -> bytes:
    png = _encode(image_rgb, ".png")
    ihdr_end = 8 + 25
    return png[:ihdr_end] + _png_chunk(b"eXIf", _exif_block(orientation)) + png[ihdr_end:]


def _palette_png(indices: np.ndarray, palette: list[tuple[int, int, int]]) -> bytes:
    height, width = indices.shape
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
    raw = b"".join(b"\0" + row.astype(np.uint8).tobytes() for row in indices)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"PLTE", bytes(c for colour in palette for c in colour))
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


# --- conversions ---------------------------------------------------------------------------------------


def test_rgb_png_loads_exactly_as_rgb_uint8(tmp_path):
    image = _rgb_pattern()
    loaded = load_image(_write(tmp_path / "a.png", _encode(image, ".png")))
    assert loaded.dtype == np.uint8 and loaded.shape == (20, 40, 3)
    np.testing.assert_array_equal(loaded, image)
    assert tuple(loaded[0, 0]) == (255, 0, 0)  # RGB order, not OpenCV's BGR


@pytest.mark.parametrize("ext", [".jpg", ".bmp", ".tif", ".webp", ".ppm"])
def test_common_formats_load_and_report_their_size(tmp_path, ext):
    image = _rgb_pattern()
    path = _write(tmp_path / f"a{ext}", _encode(image, ext))
    loaded = load_image(path)
    assert loaded.shape == (20, 40, 3) and loaded.dtype == np.uint8
    assert np.abs(loaded.astype(int) - image).mean() < 8  # lossy formats stay close
    assert read_image_size(path) == (40, 20)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = np.arange(200, dtype=np.uint8).reshape(10, 20)
    loaded = load_image(_write(tmp_path / "g.png", _encode(gray, ".png")))
    assert loaded.shape == (10, 20, 3)
    for channel in range(3):
        np.testing.assert_array_equal(loaded[:, :, channel], gray)


def test_rgba_drops_alpha_and_keeps_stored_colours(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = (10, 200, 30)
    rgba[..., 3] = 0  # fully transparent: the stored colour is kept, not composited
    rgba[:4, :, 3] = 255
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    assert ok
    loaded = load_image(_write(tmp_path / "rgba.png", buf.tobytes()))
    assert loaded.shape == (8, 8, 3)
    assert (loaded == (10, 200, 30)).all()


def test_16_bit_full_range_is_scaled_not_truncated(tmp_path):
    values = np.array([[0, 257, 32768, 65535]], np.uint16)
    loaded = load_image(_write(tmp_path / "d16.png", _encode(values, ".png")))
    # Truncating to the low byte would give 0, 1, 0, 255; scaling gives 0, 1, 128, 255.
    np.testing.assert_array_equal(loaded[0, :, 0], [0, 1, 128, 255])


def test_16_bit_file_holding_12_bit_data_uses_the_whole_8_bit_range(tmp_path):
    values = np.array([[0, 1365, 2730, 4095]], np.uint16)
    loaded = load_image(_write(tmp_path / "d12.tif", _encode(values, ".tif")))
    np.testing.assert_array_equal(loaded[0, :, 0], [0, 85, 170, 255])


def test_16_bit_colour_keeps_channel_order(tmp_path):
    image = np.zeros((2, 2, 3), np.uint16)
    image[..., 0] = 65535  # red
    loaded = load_image(_write(tmp_path / "c16.png", _encode(image, ".png")))
    assert (loaded == (255, 0, 0)).all()


def test_palette_png_becomes_its_rgb_colours(tmp_path):
    palette = [(255, 0, 0), (0, 255, 0), (12, 34, 56)]
    indices = np.array([[0, 1, 2], [2, 1, 0]])
    loaded = load_image(_write(tmp_path / "p.png", _palette_png(indices, palette)))
    expected = np.array([[palette[i] for i in row] for row in indices], np.uint8)
    np.testing.assert_array_equal(loaded, expected)


def test_palette_gif_becomes_rgb(tmp_path):
    image_module = pytest.importorskip("PIL.Image", reason="Pillow writes the GIF test file")
    indices = np.array([[0, 1], [1, 0]], np.uint8)
    gif = image_module.fromarray(indices, mode="P")
    gif.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    path = tmp_path / "p.gif"
    gif.save(path)
    loaded = load_image(path)
    assert tuple(loaded[0, 0]) == (255, 0, 0) and tuple(loaded[0, 1]) == (0, 0, 255)


# --- EXIF orientation ----------------------------------------------------------------------------------

# Orientation tag -> how the stored pixels are turned to show the image upright.
_UPRIGHT = {
    3: lambda a: np.rot90(a, 2),
    6: lambda a: np.rot90(a, -1),  # rotate 90 degrees clockwise
    8: lambda a: np.rot90(a, 1),  # rotate 90 degrees counter-clockwise
}


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_jpeg_exif_orientation_is_applied(tmp_path, orientation):
    stored = _rgb_pattern()
    path = _write(tmp_path / "o.jpg", _jpeg_with_orientation(stored, orientation))
    loaded = load_image(path)
    expected = _UPRIGHT[orientation](stored)
    assert loaded.shape == expected.shape
    assert np.abs(loaded.astype(int) - expected).mean() < 4
    height, width = expected.shape[:2]
    assert read_image_size(path) == (width, height)


def test_png_exif_orientation_is_applied_and_reported(tmp_path):
    stored = _rgb_pattern()
    path = _write(tmp_path / "o.png", _png_with_exif(stored, 6))
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded, np.rot90(stored, -1))
    assert read_image_size(path) == (20, 40)


@pytest.mark.parametrize("fmt", ["TIFF", "WEBP"])
def test_tiff_and_webp_exif_orientation(tmp_path, fmt):
    image_module = pytest.importorskip("PIL.Image", reason="Pillow writes EXIF into TIFF and WebP test files")
    stored = _rgb_pattern()
    exif = image_module.Exif()
    exif[0x0112] = 8
    path = tmp_path / f"o.{fmt.lower()}"
    image_module.fromarray(stored).save(path, fmt, exif=exif.tobytes(), lossless=True)
    np.testing.assert_array_equal(load_image(path), np.rot90(stored, 1))
    assert read_image_size(path) == (20, 40)


def test_orientation_1_leaves_the_image_as_stored(tmp_path):
    stored = _rgb_pattern()
    path = _write(tmp_path / "o1.jpg", _jpeg_with_orientation(stored, 1))
    assert load_image(path).shape == (20, 40, 3)
    assert read_image_size(path) == (40, 20)


# --- paths ---------------------------------------------------------------------------------------------


def test_unicode_path_loads(tmp_path):
    folder = tmp_path / "données 图像"
    folder.mkdir()
    path = _write(folder / "kœur ü 猫.png", _encode(_rgb_pattern(), ".png"))
    assert load_image(path).shape == (20, 40, 3)
    assert read_image_size(str(path)) == (40, 20)


# --- bad inputs: each raises ImageLoadError naming the file and the reason ------------------------------


def _assert_error(path: Path, *fragments: str, **kwargs) -> None:
    with pytest.raises(ImageLoadError) as info:
        load_image(path, **kwargs)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    assert isinstance(info.value, StudioError)


def test_missing_file(tmp_path):
    _assert_error(tmp_path / "nope.png", "does not exist")


def test_folder_instead_of_file(tmp_path):
    _assert_error(tmp_path, "is a folder")


def test_zero_byte_file(tmp_path):
    _assert_error(_write(tmp_path / "empty.jpg", b""), "empty (0 bytes)")


def test_non_image_file(tmp_path):
    _assert_error(_write(tmp_path / "notes.png", b"hello, this is text\n" * 10), "not an image")


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="permissions are not enforced")
def test_unreadable_file(tmp_path):
    path = _write(tmp_path / "locked.png", _encode(_rgb_pattern(), ".png"))
    path.chmod(0)
    try:
        _assert_error(path, "permission denied")
    finally:
        path.chmod(0o600)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".bmp", ".webp", ".ppm"])
def test_file_cut_in_half_is_truncated(tmp_path, ext):
    data = _encode(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8), ext)
    _assert_error(_write(tmp_path / f"half{ext}", data[: len(data) // 2]), "truncated")


def test_jpeg_missing_only_its_end_marker_is_truncated(tmp_path):
    # Decoders may return a complete-looking image for this; the missing end-of-image marker tells.
    data = _encode(_rgb_pattern(), ".jpg")
    assert data.endswith(b"\xff\xd9")
    _assert_error(_write(tmp_path / "cut.jpg", data[:-2]), "truncated", "end-of-image")


def test_png_cut_at_a_chunk_boundary_is_truncated(tmp_path):
    data = _encode(_rgb_pattern(), ".png")
    assert data.endswith(_png_chunk(b"IEND", b""))
    _assert_error(_write(tmp_path / "noiend.png", data[:-12]), "truncated")


def test_corrupt_pixel_data(tmp_path):
    data = bytearray(_encode(_rgb_pattern(), ".png"))
    start = data.index(b"IDAT") + 4
    data[start : start + 40] = bytes(40)  # destroys the zlib stream (and the chunk CRC)
    _assert_error(_write(tmp_path / "corrupt.png", bytes(data)), "corrupt")


def test_huge_dimensions_are_refused_from_the_header_before_decoding(tmp_path):
    # 50000 x 50000 declared, a few bytes of data: decoding would try to allocate 7.5 GB.
    ihdr = struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 100))
        + _png_chunk(b"IEND", b"")
    )
    path = _write(tmp_path / "bomb.png", data)
    _assert_error(path, "50000 x 50000", "EFSAM_MAX_IMAGE_PIXELS")
    with pytest.raises(ImageLoadError, match="limit"):
        read_image_size(path)
    assert 50_000 * 50_000 > DEFAULT_MAX_PIXELS


def test_pixel_limit_is_configurable(tmp_path, monkeypatch):
    path = _write(tmp_path / "a.png", _encode(_rgb_pattern(), ".png"))  # 800 pixels
    _assert_error(path, "limit of 799 pixels", max_pixels=799)
    assert load_image(path, max_pixels=800).shape == (20, 40, 3)
    monkeypatch.setenv("EFSAM_MAX_IMAGE_PIXELS", "500")
    _assert_error(path, "limit of 500 pixels")
    monkeypatch.setenv("EFSAM_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ImageLoadError, match="EFSAM_MAX_IMAGE_PIXELS"):
        load_image(path)


def test_read_image_size_needs_only_the_header(tmp_path):
    data = bytearray(_encode(_rgb_pattern(30, 50), ".png"))
    start = data.index(b"IDAT") + 4
    data[start : start + 20] = bytes(20)  # pixel data corrupt: loading fails, the size is still known
    path = _write(tmp_path / "a.png", bytes(data))
    assert read_image_size(path) == (50, 30)
    with pytest.raises(ImageLoadError):
        load_image(path)


def test_read_image_size_finds_a_header_beyond_the_first_read(tmp_path):
    # A JPEG whose frame header sits after 300 kB of application data (large embedded metadata).
    jpeg = _encode(_rgb_pattern(), ".jpg")
    padding = b"".join(b"\xff\xe2" + struct.pack(">H", 60_002) + bytes(60_000) for _ in range(5))
    path = _write(tmp_path / "big_meta.jpg", jpeg[:2] + padding + jpeg[2:])
    assert read_image_size(path) == (40, 20)
    assert load_image(path).shape == (20, 40, 3)


# --- folders -------------------------------------------------------------------------------------------


def test_list_images_sorts_naturally_and_skips_other_files(tmp_path):
    png = _encode(_rgb_pattern(), ".png")
    for name in ["img10.png", "img2.PNG", "img1.jpg", "notes.txt", ".hidden.png", "._img3.png", "b.TIFF"]:
        _write(tmp_path / name, png)
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub" / "img0.png", png)
    names = [p.name for p in list_images(tmp_path)]
    assert names == ["b.TIFF", "img1.jpg", "img2.PNG", "img10.png"]
    deep = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path, recursive=True)]
    assert deep == ["b.TIFF", "img1.jpg", "img2.PNG", "img10.png", "sub/img0.png"]
    assert all(p.parent == tmp_path for p in list_images(str(tmp_path)))


def test_list_images_on_a_missing_folder(tmp_path):
    with pytest.raises(ImageLoadError, match="does not exist"):
        list_images(tmp_path / "absent")


def test_image_extensions_are_lower_case_with_a_dot():
    assert {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"} <= IMAGE_EXTENSIONS
    assert all(ext.startswith(".") and ext == ext.lower() for ext in IMAGE_EXTENSIONS)


def test_shipped_sample_images_load_at_their_header_size():
    samples = Path(__file__).resolve().parents[2] / "resources" / "samples"
    found = list_images(samples)
    if not found:
        pytest.skip(f"no sample images in {samples}")
    for path in found:
        image = load_image(path)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert read_image_size(path) == (image.shape[1], image.shape[0])
