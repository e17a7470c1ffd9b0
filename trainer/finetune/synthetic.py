"""Synthetic segmentation data in the SA-1B layout, for tests and smoke runs.

Each image holds a few simple shapes (ellipses, convex polygons, rotated rectangles), filled with a
flat colour, a noise texture or stripes, on a background that is flat, a gradient, smoothed noise or a
checkerboard, with pixel noise on top. The masks are exact: every shape is rasterised without
antialiasing and composited with its own mask, and a shape partly covered by a later one keeps only its
visible pixels (as SA-1B does).

Files written per image (SA-1B's schema):

- ``sa_<id>.jpg`` — the RGB image (JPEG, quality 95 by default);
- ``sa_<id>.json`` — ``{"image": {image_id, width, height, file_name}, "annotations": [{id,
  segmentation (COCO RLE, counts as str), bbox [x, y, w, h], area, predicted_iou, stability_score,
  crop_box [x, y, w, h], point_coords [[x, y]]}]}``.

:func:`write_sa1b_folder` writes them into a folder, :func:`write_sa1b_tar` into one ``.tar`` shard
(as the published ``sa_000000.tar`` files are), :func:`write_coco` into a COCO instances file plus an
image folder (categories ``ellipse``, ``polygon``, ``rectangle``).
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from efficientsam_studio.annotations import masks as mask_ops

SHAPE_KINDS: tuple[str, ...] = ("ellipse", "polygon", "rectangle")


@dataclass(frozen=True)
class SyntheticConfig:
    """What the generator draws.

    ``min_size`` / ``max_size``: image side range in pixels (height and width drawn independently).
    ``shapes``: inclusive range of shapes drawn per image. ``shape_scale``: range of a shape's size as a
    fraction of the image's shorter side. ``min_visible_area``: a shape whose visible part is smaller
    (pixels) is dropped. ``kinds``: which shapes to draw. ``jpeg_quality``: 1..100. ``plain``: flat colours
only (no gradients, textures or pixel noise), for quick learning checks.
    """

    min_size: int = 96
    max_size: int = 160
    shapes: tuple[int, int] = (2, 4)
    shape_scale: tuple[float, float] = (0.2, 0.55)
    min_visible_area: int = 64
    kinds: tuple[str, ...] = SHAPE_KINDS
    jpeg_quality: int = 95
    plain: bool = False


@dataclass
class SyntheticImage:
    """One generated sample: ``image`` uint8 ``(H, W, 3)`` RGB, ``masks`` bool ``(H, W)`` each (visible
    pixels only, same order as ``kinds``)."""

    image: np.ndarray
    masks: list[np.ndarray]
    kinds: list[str]


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=3).astype(np.float32)


def _distinct_colour(rng: np.random.Generator, avoid: np.ndarray, min_distance: float = 90.0) -> np.ndarray:
    """A colour at least ``min_distance`` (Euclidean, 0..255 RGB) from ``avoid``, so shapes stay visible."""
    colour = _random_colour(rng)
    for _ in range(32):
        if np.linalg.norm(colour - avoid) >= min_distance:
            break
        colour = _random_colour(rng)
    else:
        colour = np.where(avoid > 127, 0.0, 255.0).astype(np.float32)
    return colour


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Values in [0, 1] of shape ``(H, W)``: a coarse random grid upsampled bicubically."""
    grid = rng.random((cells, cells)).astype(np.float32)
    return np.clip(cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def _texture(rng: np.random.Generator, height: int, width: int, base: np.ndarray) -> np.ndarray:
    """A float ``(H, W, 3)`` fill around colour ``base``: flat, smooth noise or stripes."""
    style = rng.integers(0, 3)
    out = np.broadcast_to(base, (height, width, 3)).astype(np.float32)
    if style == 1:
        out = out + (_smooth_noise(rng, height, width, int(rng.integers(3, 12)))[..., None] - 0.5) * 60.0
    elif style == 2:
        period = float(rng.uniform(4.0, 14.0))
        angle = float(rng.uniform(0.0, np.pi))
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
        out = out + wave[..., None] * 25.0
    return out


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A float ``(H, W, 3)`` background: flat, gradient, smooth noise or checkerboard."""
    style = rng.integers(0, 4)
    first, second = _random_colour(rng), _random_colour(rng)
    if style == 0:
        return np.broadcast_to(first, (height, width, 3)).astype(np.float32)
    if style == 1:
        ramp = np.linspace(0.0, 1.0, width if rng.random() < 0.5 else height, dtype=np.float32)
        ramp = ramp[None, :] if ramp.shape[0] == width else ramp[:, None]
        weight = np.broadcast_to(ramp, (height, width))[..., None]
    elif style == 2:
        weight = _smooth_noise(rng, height, width, int(rng.integers(2, 8)))[..., None]
    else:
        cell = int(rng.integers(6, 20))
        yy, xx = np.mgrid[0:height, 0:width]
        weight = (((yy // cell) + (xx // cell)) % 2).astype(np.float32)[..., None]
    return first * (1.0 - weight) + second * weight


def _shape_mask(
    rng: np.random.Generator, kind: str, height: int, width: int, scale: tuple[float, float]
) -> np.ndarray:
    """A bool ``(H, W)`` mask of one shape, rasterised without antialiasing."""
    canvas = np.zeros((height, width), dtype=np.uint8)
    side = min(height, width)
    size = float(rng.uniform(*scale)) * side
    cx = float(rng.uniform(0.15, 0.85)) * width
    cy = float(rng.uniform(0.15, 0.85)) * height
    angle = float(rng.uniform(0.0, 180.0))
    if kind == "ellipse":
        axes = (max(2, int(size / 2)), max(2, int(size / 2 * rng.uniform(0.4, 1.0))))
        cv2.ellipse(canvas, (int(cx), int(cy)), axes, angle, 0, 360, 1, thickness=-1, lineType=cv2.LINE_8)
    elif kind == "rectangle":
        box = ((cx, cy), (size, size * float(rng.uniform(0.35, 1.0))), angle)
        corners = cv2.boxPoints(box).round().astype(np.int32)
        cv2.fillPoly(canvas, [corners], 1, lineType=cv2.LINE_8)
    elif kind == "polygon":
        count = int(rng.integers(3, 8))
        angles = np.sort(rng.uniform(0.0, 2 * np.pi, size=count))
        radii = size / 2 * rng.uniform(0.6, 1.0, size=count)
        points = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
        cv2.fillPoly(canvas, [points.round().astype(np.int32)], 1, lineType=cv2.LINE_8)
    else:
        raise ValueError(f"unknown shape kind {kind!r}; expected one of {SHAPE_KINDS}")
    return canvas.astype(bool)


def generate_image(rng: np.random.Generator, config: SyntheticConfig = SyntheticConfig()) -> SyntheticImage:
    """Draw one image with its exact visible masks (at least one shape is always kept)."""
    height = int(rng.integers(config.min_size, config.max_size + 1))
    width = int(rng.integers(config.min_size, config.max_size + 1))
    if config.plain:
        image = np.broadcast_to(_random_colour(rng), (height, width, 3)).astype(np.float32)
    else:
        image = _background(rng, height, width)
    full_masks: list[np.ndarray] = []
    kinds: list[str] = []
    count = int(rng.integers(config.shapes[0], config.shapes[1] + 1))
    for _ in range(max(1, count)):
        kind = str(rng.choice(config.kinds))
        mask = _shape_mask(rng, kind, height, width, config.shape_scale)
        if not mask.any():
            continue
        around = image[mask].mean(axis=0)
        colour = _distinct_colour(rng, around)
        if config.plain:
            fill = np.broadcast_to(colour, (height, width, 3))
        else:
            fill = _texture(rng, height, width, colour)
        image = np.where(mask[..., None], fill, image)
        full_masks.append(mask)
        kinds.append(kind)
    if not config.plain:
        image = image + rng.normal(0.0, float(rng.uniform(0.0, 8.0)), size=image.shape)
    visible: list[np.ndarray] = []
    kept_kinds: list[str] = []
    covered = np.zeros((height, width), dtype=bool)
    for mask, kind in zip(reversed(full_masks), reversed(kinds), strict=True):
        seen = mask & ~covered
        covered |= mask
        if seen.sum() >= config.min_visible_area:
            visible.append(seen)
            kept_kinds.append(kind)
    if not visible:
        return generate_image(rng, config)
    visible.reverse()
    kept_kinds.reverse()
    return SyntheticImage(np.clip(image, 0, 255).astype(np.uint8), visible, kept_kinds)


def sa1b_record(
    sample: SyntheticImage, image_id: int, rng: np.random.Generator, first_annotation_id: int = 0
) -> dict:
    """The SA-1B JSON document of one sample (``file_name`` ``sa_<image_id>.jpg``)."""
    height, width = sample.image.shape[:2]
    annotations = []
    for offset, mask in enumerate(sample.masks):
        rle = mask_ops.encode(mask)
        rows, cols = np.nonzero(mask)
        pick = int(rng.integers(0, rows.size))
        annotations.append(
            {
                "id": first_annotation_id + offset,
                "segmentation": rle,
                "bbox": mask_ops.bbox(rle),
                "area": int(rows.size),
                "predicted_iou": round(float(rng.uniform(0.85, 1.0)), 4),
                "stability_score": round(float(rng.uniform(0.85, 1.0)), 4),
                "crop_box": [0.0, 0.0, float(width), float(height)],
                "point_coords": [[float(cols[pick]) + 0.5, float(rows[pick]) + 0.5]],
            }
        )
    return {
        "image": {"image_id": image_id, "width": width, "height": height, "file_name": f"sa_{image_id}.jpg"},
        "annotations": annotations,
    }


def _jpeg_bytes(image: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return data.tobytes()


def iter_samples(
    count: int, seed: int = 0, config: SyntheticConfig = SyntheticConfig(), first_id: int = 1
) -> Iterator[tuple[int, SyntheticImage, dict, bytes]]:
    """Yield ``(image_id, sample, sa1b_json, jpeg_bytes)`` for ``count`` images (reproducible by ``seed``)."""
    rng = np.random.default_rng(seed)
    annotation_id = 0
    for image_id in range(first_id, first_id + count):
        sample = generate_image(rng, config)
        record = sa1b_record(sample, image_id, rng, annotation_id)
        annotation_id += len(sample.masks)
        yield image_id, sample, record, _jpeg_bytes(sample.image, config.jpeg_quality)


def write_sa1b_folder(
    out_dir: str | Path,
    count: int,
    seed: int = 0,
    config: SyntheticConfig = SyntheticConfig(),
    first_id: int = 1,
) -> list[Path]:
    """Write ``count`` pairs ``sa_<id>.jpg`` + ``sa_<id>.json`` into ``out_dir``; returns the JSON paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for image_id, _, record, jpeg in iter_samples(count, seed, config, first_id):
        (out / f"sa_{image_id}.jpg").write_bytes(jpeg)
        path = out / f"sa_{image_id}.json"
        path.write_text(json.dumps(record))
        written.append(path)
    return written


def write_sa1b_tar(
    tar_path: str | Path,
    count: int,
    seed: int = 0,
    config: SyntheticConfig = SyntheticConfig(),
    first_id: int = 1,
    member_prefix: str = "",
) -> Path:
    """Write ``count`` pairs into one uncompressed tar shard (members ``<prefix>sa_<id>.jpg/.json``).

    ``member_prefix`` lets tests reproduce archives whose members start with ``./``.
    """
    path = Path(tar_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as archive:
        for image_id, _, record, jpeg in iter_samples(count, seed, config, first_id):
            for name, data in (
                (f"sa_{image_id}.jpg", jpeg),
                (f"sa_{image_id}.json", json.dumps(record).encode()),
            ):
                info = tarfile.TarInfo(member_prefix + name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return path


def write_coco(
    annotations_path: str | Path,
    images_dir: str | Path,
    count: int,
    seed: int = 0,
    config: SyntheticConfig = SyntheticConfig(),
    first_id: int = 1,
) -> Path:
    """Write a COCO instances file (RLE segmentations, ``iscrowd`` 0) and its JPEG images.

    Categories: 1 ``ellipse``, 2 ``polygon``, 3 ``rectangle``. ``file_name`` is relative to ``images_dir``.
    """
    images_dir = Path(images_dir)
    images_dir.mkdir(parents=True, exist_ok=True)
    category_ids = {kind: index + 1 for index, kind in enumerate(SHAPE_KINDS)}
    coco: dict = {
        "images": [],
        "annotations": [],
        "categories": [
            {"id": cid, "name": kind, "supercategory": "shape"} for kind, cid in category_ids.items()
        ],
    }
    for image_id, sample, record, jpeg in iter_samples(count, seed, config, first_id):
        file_name = f"sa_{image_id}.jpg"
        (images_dir / file_name).write_bytes(jpeg)
        height, width = sample.image.shape[:2]
        coco["images"].append({"id": image_id, "file_name": file_name, "height": height, "width": width})
        for annotation, kind in zip(record["annotations"], sample.kinds, strict=True):
            coco["annotations"].append(
                {
                    "id": annotation["id"] + 1,
                    "image_id": image_id,
                    "category_id": category_ids[kind],
                    "segmentation": annotation["segmentation"],
                    "bbox": annotation["bbox"],
                    "area": annotation["area"],
                    "iscrowd": 0,
                }
            )
    path = Path(annotations_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(coco))
    return path
