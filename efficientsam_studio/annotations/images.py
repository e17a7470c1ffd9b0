"""Image loading shared by the engine, the desktop app and batch labelling.

Every image enters the studio through :func:`load_image`, which returns an RGB ``uint8`` array of shape
``(H, W, 3)`` (row-major, ``H`` rows of ``W`` pixels, origin at the top-left) whatever the file holds:

- **EXIF orientation** is applied (by OpenCV), so the array is upright as photo viewers show it, and
  :func:`read_image_size` reports the size after orientation.
- **Grayscale** images are replicated into three equal channels.
- **Alpha is dropped**: transparent pixels keep the colour stored under them (no compositing), exactly
  the pixels OpenCV's colour mode decodes. Masks therefore align with the stored RGB data.
- **Palette** images (PNG, GIF) are expanded to their RGB colours.
- **More than 8 bits per sample** (16-bit PNG/TIFF/PNM, float TIFF) is scaled, never truncated: integer
  samples are mapped from their *effective* bit depth (the smallest depth of 8 to 16 bits, or more, that
  holds the image's largest value) to 0..255 with rounding, so a full-range 16-bit photo maps 65535 to
  255 and a 12-bit microscope image stored in 16 bits uses the whole 8-bit range instead of staying
  nearly black. Float samples are read as 0..1 (scaled by their maximum when it exceeds 1).

Files that cannot be used raise :class:`~efficientsam_studio.errors.ImageLoadError` naming the file and
the reason: missing, a folder, unreadable, empty, not an image, truncated (checked structurally: JPEG
end-of-image marker, PNG ``IEND`` chunk, TIFF strip extents, declared sizes of BMP/WebP/PNM), corrupt,
or larger than the pixel limit. The limit is checked from the header **before** decoding; it defaults to
:data:`DEFAULT_MAX_PIXELS` (20000 x 20000 = 400 megapixels, about 1.2 GB as RGB) and can be changed per
call (``max_pixels=``) or for the process with the environment variable ``EFSAM_MAX_IMAGE_PIXELS``.

Paths may contain any Unicode characters: files are read by Python and decoded from memory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np

from efficientsam_studio.annotations.image_headers import HeaderError, ImageHeader, NeedMoreData, parse_header
from efficientsam_studio.errors import ImageLoadError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "ImageLoadError",
    "list_images",
    "load_image",
    "max_pixels_limit",
    "read_image_size",
]

#: Largest image (width x height, in pixels) decoded unless the caller or ``EFSAM_MAX_IMAGE_PIXELS``
#: says otherwise: 20000 x 20000. The model sees every image at 1024 x 1024, so larger files only cost
#: memory (about 3 bytes per pixel, twice that while converting 16-bit data).
DEFAULT_MAX_PIXELS = 20_000 * 20_000

#: File name extensions (lower case, with the dot) that folders are scanned for.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    ".jpg .jpeg .jpe .png .tif .tiff .bmp .dib .webp .gif .pbm .pgm .ppm .pnm".split()
)

_HEADER_PREFIX_BYTES = 256 * 1024
_DECODE_FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR  # keeps bit depth, applies EXIF orientation


def max_pixels_limit(max_pixels: int | None = None) -> int:
    """The pixel limit in force: ``max_pixels``, else ``EFSAM_MAX_IMAGE_PIXELS``, else the default."""
    if max_pixels is not None:
        return int(max_pixels)
    value = os.environ.get("EFSAM_MAX_IMAGE_PIXELS", "").strip()
    if not value:
        return DEFAULT_MAX_PIXELS
    try:
        limit = int(float(value))
    except ValueError:
        raise ImageLoadError(
            f"EFSAM_MAX_IMAGE_PIXELS={value!r} is not a number; set it to a pixel count such as 400000000"
        ) from None
    if limit <= 0:
        raise ImageLoadError(f"EFSAM_MAX_IMAGE_PIXELS={value!r} must be a positive pixel count")
    return limit


def _read_bytes(path: Path, limit: int | None = None) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read() if limit is None else handle.read(limit)
    except FileNotFoundError:
        raise ImageLoadError(f"cannot load image {path}: the file does not exist") from None
    except IsADirectoryError:
        raise ImageLoadError(f"cannot load image {path}: it is a folder, not an image file") from None
    except PermissionError:
        raise ImageLoadError(
            f"cannot load image {path}: permission denied; check the file's permissions"
        ) from None
    except OSError as exc:
        raise ImageLoadError(f"cannot load image {path}: {exc.strerror or exc}") from None


def _header(path: Path, data: bytes, whole_file: bool) -> ImageHeader:
    try:
        return parse_header(data, whole_file=whole_file)
    except HeaderError as exc:
        raise ImageLoadError(f"cannot load image {path}: {exc}") from None


def _check_size(path: Path, header: ImageHeader, max_pixels: int | None) -> None:
    limit = max_pixels_limit(max_pixels)
    if header.pixels > limit:
        raise ImageLoadError(
            f"cannot load image {path}: it is {header.width} x {header.height} = {header.pixels:,} pixels, "
            f"more than the limit of {limit:,} pixels; downscale it, or raise the limit with the "
            f"environment variable EFSAM_MAX_IMAGE_PIXELS if the machine has the memory"
        )


def read_image_size(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> tuple[int, int]:
    """``(width, height)`` in pixels of the image :func:`load_image` would return, from the header only.

    EXIF orientation is applied (orientations 5 to 8 swap width and height). Reads at most the first
    256 KiB unless the header lies further into the file. Raises :class:`ImageLoadError` for files that
    are missing, not images, malformed, or over the pixel limit (``max_pixels``, see the module doc).
    """
    path = Path(path)
    data = _read_bytes(path, _HEADER_PREFIX_BYTES)
    try:
        header = parse_header(data, whole_file=len(data) < _HEADER_PREFIX_BYTES)
    except NeedMoreData:
        data = _read_bytes(path)
        header = _header(path, data, whole_file=True)
    except HeaderError as exc:
        raise ImageLoadError(f"cannot load image {path}: {exc}") from None
    _check_size(path, header, max_pixels)
    return header.oriented_size


def load_image(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as an upright RGB ``uint8`` array of shape ``(H, W, 3)``.

    See the module documentation for how orientation, grayscale, alpha, palette and high-bit-depth
    images are converted. ``max_pixels`` overrides the pixel limit (default :data:`DEFAULT_MAX_PIXELS`
    or ``EFSAM_MAX_IMAGE_PIXELS``), which is checked from the header before anything is decoded.

    Raises:
        ImageLoadError: the file is missing, a folder, unreadable, empty, not a supported image,
            truncated, corrupt or over the pixel limit; the message names the file and the reason.
    """
    path = Path(path)
    data = _read_bytes(path)
    header = _header(path, data, whole_file=True)
    _check_size(path, header, max_pixels)
    try:
        decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _DECODE_FLAGS)
    except cv2.error as exc:
        raise ImageLoadError(f"cannot load image {path}: OpenCV failed to decode it ({exc.err})") from None
    if decoded is None or decoded.size == 0:
        raise ImageLoadError(
            f"cannot load image {path}: the {header.format} data is corrupt or uses a variant this "
            f"OpenCV build cannot decode; re-save it as PNG or JPEG"
        )
    return _to_rgb_uint8(path, decoded)


def _to_rgb_uint8(path: Path, image: np.ndarray) -> np.ndarray:
    """Convert a decoded OpenCV array (``(H, W)``, ``(H, W, C)`` BGR(A), any depth) to RGB uint8."""
    image = _to_uint8(path, image)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)  # in place: the decoded array is ours
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    raise ImageLoadError(f"cannot load image {path}: it has {channels} channels; expected 1, 3 or 4")


def _to_uint8(path: Path, image: np.ndarray) -> np.ndarray:
    """Scale samples of any depth to uint8 (see the module doc for the rule)."""
    if image.dtype == np.uint8:
        return image
    if np.issubdtype(image.dtype, np.integer):
        if np.issubdtype(image.dtype, np.signedinteger):
            image = np.clip(image, 0, None)
        peak = int(image.max()) if image.size else 0
        scale = 255.0 / float((1 << max(8, peak.bit_length())) - 1)
    elif np.issubdtype(image.dtype, np.floating):
        image = np.clip(np.nan_to_num(image, nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)
        peak = float(image.max()) if image.size else 0.0
        scale = 255.0 / peak if peak > 1.0 else 255.0
    else:
        raise ImageLoadError(
            f"cannot load image {path}: its samples are of type {image.dtype}, which is not supported"
        )
    if image.dtype not in (np.uint16, np.int16, np.int32, np.float32, np.float64):
        image = image.astype(np.float64)
    # convertScaleAbs rounds and saturates to uint8 without a float copy of the whole image.
    return cv2.convertScaleAbs(image, alpha=scale)


def _natural_key(text: str) -> list[tuple[int, int | str]]:
    """Sort key ordering ``img2`` before ``img10``, case-insensitively."""
    return [(0, int(part)) if part.isdigit() else (1, part.casefold()) for part in re.split(r"(\d+)", text)]


def list_images(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` whose extension is in :data:`IMAGE_EXTENSIONS` (case-insensitive).

    Names starting with a dot (hidden files, macOS ``._`` resource forks) are skipped, and so are hidden
    subfolders when ``recursive``; symbolic links to folders are not followed. The result is sorted
    naturally (``img2.png`` before ``img10.png``), folder by folder, and holds paths joined onto
    ``folder`` as given. Raises :class:`ImageLoadError` if ``folder`` is not a readable folder.
    """
    root = Path(folder)
    if not root.is_dir():
        reason = "it is a file, not a folder" if root.exists() else "it does not exist"
        raise ImageLoadError(f"cannot list images in {root}: {reason}")
    found: list[Path] = []
    errors: list[OSError] = []
    for directory, subdirs, files in os.walk(root, onerror=errors.append):
        subdirs[:] = [name for name in subdirs if not name.startswith(".")] if recursive else []
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                found.append(Path(directory, name))
    if errors and errors[0].filename and Path(errors[0].filename) == root:
        raise ImageLoadError(f"cannot list images in {root}: {errors[0].strerror or errors[0]}")
    return sorted(found, key=lambda p: [_natural_key(part) for part in p.relative_to(root).parts])
