"""Numpy building blocks of automatic ("segment everything") mask generation.

Torch-free on purpose: the ONNX Runtime backend must be able to run automatic masks without torch.

Conventions used throughout:

- Points are ``(x, y)``; boxes are ``(x0, y0, x1, y1)`` with an **exclusive** end (``x1 = last column + 1``),
  so a box's area is ``(x1 - x0) * (y1 - y0)`` and a COCO ``[x, y, w, h]`` is ``[x0, y0, x1 - x0, y1 - y0]``.
- Crop boxes are ``(x0, y0, x1, y1)`` in image pixels, exclusive end, like mask boxes.
- Masks are boolean ``(N, H, W)`` arrays; logits are float ``(N, H, W)`` arrays (mask = logits > threshold).
"""

from __future__ import annotations

import math
from itertools import product

import cv2
import numpy as np

Box = tuple[int, int, int, int]


def build_point_grid(n_per_side: int) -> np.ndarray:
    """Cell centres of an ``n x n`` grid over the unit square.

    Returns:
        float64 ``(n * n, 2)`` of ``(x, y)`` in ``[0, 1]``, row by row (x varies fastest). The first point is
        ``(1 / 2n, 1 / 2n)``; multiply by ``(width, height)`` to get pixels.
    """
    if n_per_side < 1:
        raise ValueError(f"n_per_side must be >= 1, got {n_per_side}")
    half_cell = 1.0 / (2 * n_per_side)
    side = np.linspace(half_cell, 1.0 - half_cell, n_per_side)
    xs, ys = np.meshgrid(side, side)  # xs varies along columns
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def points_per_side_for_layer(n_per_side: int, layer: int, downscale: int) -> int:
    """Grid size used in crop layer ``layer``: ``n_per_side // downscale**layer`` (at least 1)."""
    return max(1, int(n_per_side / (downscale**layer)))


def generate_crop_boxes(
    image_size: tuple[int, int], n_layers: int, overlap_ratio: float
) -> list[tuple[Box, int]]:
    """Crop boxes of all layers: layer 0 is the whole image, layer ``i`` tiles it in ``2**i x 2**i`` crops.

    Args:
        image_size: ``(height, width)`` in pixels.
        n_layers: number of crop layers on top of the whole image (0 = whole image only).
        overlap_ratio: overlap of neighbouring crops in layer 1, as a fraction of the image's short side;
            layer ``i`` uses ``overlap_ratio * short_side * 2 / 2**i`` pixels.

    Returns:
        ``[(crop_box, layer), ...]``, the whole image first. Crop boxes are ``(x0, y0, x1, y1)``, exclusive
        end, clipped to the image.
    """
    height, width = image_size
    short_side = min(height, width)
    crops: list[tuple[Box, int]] = [((0, 0, width, height), 0)]
    for layer in range(1, n_layers + 1):
        per_side = 2**layer
        overlap = int(overlap_ratio * short_side * 2 / per_side)
        crop_w = int(math.ceil((overlap * (per_side - 1) + width) / per_side))
        crop_h = int(math.ceil((overlap * (per_side - 1) + height) / per_side))
        starts_x = [int((crop_w - overlap) * i) for i in range(per_side)]
        starts_y = [int((crop_h - overlap) * i) for i in range(per_side)]
        for x0, y0 in product(starts_x, starts_y):
            crops.append(((x0, y0, min(x0 + crop_w, width), min(y0 + crop_h, height)), layer))
    return crops


def stability_scores(logits: np.ndarray, mask_threshold: float, offset: float) -> np.ndarray:
    """IoU of the mask thresholded at ``mask_threshold + offset`` with that at ``mask_threshold - offset``.

    The higher threshold gives a subset of the lower one, so the IoU is a ratio of pixel counts. A mask whose
    logits cross both thresholds sharply (a stable mask) scores near 1.

    Args:
        logits: float ``(N, H, W)``.

    Returns:
        float32 ``(N,)``; 0 where even the low threshold selects no pixel.
    """
    n = logits.shape[0]
    flat = logits.reshape(n, -1)
    inner = np.count_nonzero(flat > (mask_threshold + offset), axis=1)
    outer = np.count_nonzero(flat > (mask_threshold - offset), axis=1)
    scores = np.zeros(n, dtype=np.float32)
    np.divide(inner, outer, out=scores, where=outer > 0, casting="unsafe")
    return scores


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight boxes of boolean masks.

    Args:
        masks: bool ``(N, H, W)``.

    Returns:
        int64 ``(N, 4)`` of ``(x0, y0, x1, y1)``, exclusive end; ``(0, 0, 0, 0)`` for an empty mask.
    """
    n, height, width = masks.shape
    boxes = np.zeros((n, 4), dtype=np.int64)
    if n == 0:
        return boxes
    rows = masks.any(axis=2)  # (N, H)
    cols = masks.any(axis=1)  # (N, W)
    nonempty = rows.any(axis=1)
    boxes[:, 0] = cols.argmax(axis=1)
    boxes[:, 1] = rows.argmax(axis=1)
    boxes[:, 2] = width - cols[:, ::-1].argmax(axis=1)
    boxes[:, 3] = height - rows[:, ::-1].argmax(axis=1)
    boxes[~nonempty] = 0
    return boxes


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas ``(N,)`` of ``(N, 4)`` boxes with exclusive ends."""
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU ``(N,)`` of one box ``(4,)`` with each of ``boxes`` ``(N, 4)``; 0 where the union is empty."""
    ix0 = np.maximum(box[0], boxes[:, 0])
    iy0 = np.maximum(box[1], boxes[:, 1])
    ix1 = np.minimum(box[2], boxes[:, 2])
    iy1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    union = box_area(box[None, :].astype(np.float64))[0] + box_area(boxes.astype(np.float64)) - inter
    out = np.zeros(len(boxes), dtype=np.float64)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def nms_boxes(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression: keep the best-scoring box, drop every box overlapping it by more than
    ``iou_threshold`` (box IoU), repeat with the best remaining box.

    Args:
        boxes: ``(N, 4)`` ``(x0, y0, x1, y1)``, exclusive end.
        scores: ``(N,)``, higher is better; ties keep the lower index.

    Returns:
        int64 indices of the kept boxes, best score first.
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    boxes = np.asarray(boxes, dtype=np.float64)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        if not rest.size:
            break
        order = rest[box_iou(boxes[best], boxes[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def boxes_near_crop_edge(boxes: np.ndarray, crop_box: Box, image_box: Box, tolerance: float) -> np.ndarray:
    """Which boxes touch an edge of ``crop_box`` that is not also an edge of the image.

    A mask cut by a crop border is a piece of a larger object; the same object is found whole in a larger
    crop. Edges shared with the image are fine: objects really end there.

    Args:
        boxes: ``(N, 4)`` in image pixels, exclusive end.
        crop_box, image_box: ``(x0, y0, x1, y1)`` in image pixels.
        tolerance: distance in pixels within which a box side counts as touching.

    Returns:
        bool ``(N,)``.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    crop = np.asarray(crop_box, dtype=np.float64)[None, :]
    image = np.asarray(image_box, dtype=np.float64)[None, :]
    at_crop = np.abs(boxes - crop) <= tolerance
    at_image = np.abs(boxes - image) <= tolerance
    return np.any(at_crop & ~at_image, axis=1)


def remove_small_regions(mask: np.ndarray, min_area: int, mode: str) -> tuple[np.ndarray, bool]:
    """Fill holes (``mode="holes"``) or delete islands (``mode="islands"``) smaller than ``min_area`` pixels.

    Connected components are 8-connected (OpenCV). A hole is a background component not connected to the
    outside of the mask's frame, so callers may pass a tight crop of a larger mask: the frame is padded with
    background first. When every island is small, the largest one is kept.

    Args:
        mask: bool ``(H, W)``.

    Returns:
        ``(new_mask, changed)``; ``new_mask`` is ``mask`` itself when nothing changed.
    """
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    if min_area <= 0 or not mask.size:
        return mask, False
    if mode == "holes":
        padded = np.pad(~mask, 1, constant_values=True).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(padded, connectivity=8)
        outside = labels[0, 0]
        sizes = stats[:, cv2.CC_STAT_AREA]
        small = [lab for lab in range(1, count) if lab != outside and sizes[lab] < min_area]
        if not small:
            return mask, False
        filled = np.isin(labels[1:-1, 1:-1], small)
        return mask | filled, True
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    sizes = stats[1:, cv2.CC_STAT_AREA]
    if not sizes.size:
        return mask, False
    keep = [lab + 1 for lab, size in enumerate(sizes) if size >= min_area]
    if len(keep) == len(sizes):
        return mask, False
    if not keep:
        keep = [int(np.argmax(sizes)) + 1]
        if len(sizes) == 1:
            return mask, False
    return np.isin(labels, keep), True


def upsample_logits_region(
    logits: np.ndarray, out_size: tuple[int, int], region: Box, interpolation: int = cv2.INTER_CUBIC
) -> np.ndarray:
    """Part of ``cv2.resize(logits, out_size)``: only the pixels inside ``region``, without the rest.

    Uses the same pixel-centre convention as ``cv2.resize`` (and torch ``interpolate`` with
    ``align_corners=False``): output pixel ``u`` samples input coordinate ``(u + 0.5) * in / out - 0.5``,
    with edge pixels replicated.

    Args:
        logits: float32 ``(h, w)`` low-resolution logits covering the whole output.
        out_size: ``(height, width)`` of the full output.
        region: ``(x0, y0, x1, y1)`` in output pixels, exclusive end.

    Returns:
        float32 ``(y1 - y0, x1 - x0)``.
    """
    height, width = out_size
    x0, y0, x1, y1 = region
    in_h, in_w = logits.shape
    sx, sy = in_w / width, in_h / height
    transform = np.array(
        [[sx, 0.0, (x0 + 0.5) * sx - 0.5], [0.0, sy, (y0 + 0.5) * sy - 0.5]], dtype=np.float64
    )
    return cv2.warpAffine(
        np.ascontiguousarray(logits, dtype=np.float32),
        transform,
        (x1 - x0, y1 - y0),
        flags=interpolation | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
