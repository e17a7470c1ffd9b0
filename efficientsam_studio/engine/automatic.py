"""Automatic masks ("segment everything"): a grid of single-point prompts, filtered and de-duplicated.

For each crop (the whole image, plus optional tiled crop layers for large images) the image is encoded once
and every grid point is decoded as one positive point with three candidate masks. Candidates are filtered on
the decoder's low-resolution logits (``(256, 256)`` for the whole crop, which EfficientSAM resizes to
1024x1024 without keeping the aspect ratio): predicted IoU, stability score, crop-border contact, then box
NMS. Only the survivors are upsampled (bicubic, and only around their box) to full resolution, cleaned of
small holes and islands, and encoded as COCO RLE.

Works with any predictor of the engine (torch or ONNX Runtime): it needs ``set_image`` and the batched decode
``predict_batch``. Imports no torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from efficientsam_studio.annotations import masks
from efficientsam_studio.engine import amg_filters as F
from efficientsam_studio.errors import StudioError

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(points_done, points_total)`` after each decoded batch of grid points."""


class AutomaticParamsError(StudioError):
    """A parameter of automatic mask generation is out of range."""


class MaskGenerationCancelled(Exception):
    """Raised by :meth:`AutomaticMaskGenerator.generate` when its ``cancel`` check returns true."""


@dataclass
class AutomaticMaskParams:
    """Parameters of automatic mask generation. Defaults follow SAM's automatic mask generator.

    Attributes:
        points_per_side: grid of ``n x n`` point prompts over each crop (layer 0: the whole image).
        points_per_batch: points decoded in one batched decoder call (memory grows about 16 MB per point).
        pred_iou_thresh: keep candidates whose predicted IoU (the decoder's quality estimate) exceeds this.
        stability_score_thresh: keep candidates whose stability score is at least this.
        stability_score_offset: the logit offset of the stability score: IoU of the mask thresholded at
            ``mask_threshold + offset`` with the mask thresholded at ``mask_threshold - offset``.
        mask_threshold: logit threshold that turns logits into a mask (0 = probability 0.5).
        box_nms_thresh: box IoU above which the lower-scoring of two masks (by predicted IoU) is dropped.
        crop_n_layers: extra crop layers for large images; layer ``i`` tiles the image ``2**i x 2**i`` and is
            encoded crop by crop (0 = whole image only, one encoder run).
        crop_nms_thresh: box IoU for de-duplication across crops (masks from smaller crops win).
        crop_overlap_ratio: overlap of layer-1 crops as a fraction of the short side (halved per layer).
        crop_n_points_downscale_factor: layer ``i`` uses ``points_per_side / factor**i`` points per side.
        crop_edge_tolerance: pixels within which a mask box touching an inner crop border is dropped.
        min_mask_area: holes and islands smaller than this many pixels are removed, then masks smaller than
            this are dropped (0 = no cleanup).
        skip_covered_points: decode the grid coarse points first (every other row and column), then skip
            grid points that already lie inside a mask that passed the filters. Fewer decoder calls on images
            with large objects, but no part-level masks inside objects already found (off: SAM's behaviour).
    """

    points_per_side: int = 32
    points_per_batch: int = 32
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    mask_threshold: float = 0.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    crop_edge_tolerance: float = 20.0
    min_mask_area: int = 100
    skip_covered_points: bool = False

    def validate(self) -> None:
        """Raise :class:`AutomaticParamsError` naming the first parameter out of range."""
        checks = [
            ("points_per_side", self.points_per_side >= 1, "at least 1"),
            ("points_per_batch", self.points_per_batch >= 1, "at least 1"),
            ("pred_iou_thresh", -1.0 <= self.pred_iou_thresh <= 2.0, "between -1 and 2 (usually 0..1)"),
            ("stability_score_thresh", 0.0 <= self.stability_score_thresh <= 1.0, "between 0 and 1"),
            ("stability_score_offset", self.stability_score_offset >= 0.0, "at least 0"),
            ("box_nms_thresh", 0.0 < self.box_nms_thresh <= 1.0, "in (0, 1]"),
            ("crop_n_layers", 0 <= self.crop_n_layers <= 4, "between 0 and 4"),
            ("crop_nms_thresh", 0.0 < self.crop_nms_thresh <= 1.0, "in (0, 1]"),
            ("crop_overlap_ratio", 0.0 <= self.crop_overlap_ratio < 1.0, "in [0, 1)"),
            ("crop_n_points_downscale_factor", self.crop_n_points_downscale_factor >= 1, "at least 1"),
            ("crop_edge_tolerance", self.crop_edge_tolerance >= 0.0, "at least 0"),
            ("min_mask_area", self.min_mask_area >= 0, "at least 0"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise AutomaticParamsError(
                    f"automatic mask parameter {name}={getattr(self, name)!r} is out of range: use {expected}"
                )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the parameters (for reports and project metadata)."""
        return asdict(self)


@dataclass
class AutoMask:
    """One automatic mask.

    Attributes:
        rle: COCO compressed RLE of the mask at full image size: ``{"size": [H, W], "counts": str}``.
        bbox: ``(x, y, w, h)`` in image pixels (COCO convention, tight around the mask).
        area: mask pixels.
        predicted_iou: the decoder's predicted IoU of the candidate.
        stability_score: stability score of the candidate's low-resolution logits.
        point: the grid point ``(x, y)`` in image pixels that prompted it.
        crop_box: ``(x0, y0, x1, y1)`` of the crop it came from (the whole image for layer 0).
    """

    rle: dict[str, Any]
    bbox: tuple[int, int, int, int]
    area: int
    predicted_iou: float
    stability_score: float
    point: tuple[float, float]
    crop_box: F.Box

    def to_mask(self) -> np.ndarray:
        """The mask as bool ``(H, W)``."""
        return masks.decode(self.rle)


@dataclass
class GenerationStats:
    """What one :meth:`AutomaticMaskGenerator.generate` call did, with timings in seconds."""

    crops: int = 0
    points: int = 0
    candidates: int = 0
    after_filters: int = 0
    after_nms: int = 0
    skipped_points: int = 0
    masks: int = 0
    encode_s: float = 0.0
    decode_s: float = 0.0
    filter_s: float = 0.0
    upsample_s: float = 0.0
    postprocess_s: float = 0.0


@dataclass
class _Candidates:
    """Masks that passed the low-resolution filters in one crop (arrays share the leading dimension N)."""

    logits: list[np.ndarray] = field(default_factory=list)  # float32 (h, w) each
    iou: list[float] = field(default_factory=list)
    stability: list[float] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)  # (4,) image pixels, exclusive end
    points: list[np.ndarray] = field(default_factory=list)  # (2,) image pixels

    def __len__(self) -> int:
        return len(self.iou)

    def keep(self, index: np.ndarray) -> None:
        for name in ("logits", "iou", "stability", "boxes", "points"):
            values = getattr(self, name)
            setattr(self, name, [values[i] for i in index])


@dataclass
class _Mask:
    """A full-resolution mask kept as a crop ``region`` of the image (saves memory on large images)."""

    region_mask: np.ndarray  # bool (y1 - y0, x1 - x0)
    region: F.Box  # image pixels, exclusive end
    iou: float
    stability: float
    point: np.ndarray
    crop_box: F.Box

    def tight_box(self) -> np.ndarray:
        box = F.masks_to_boxes(self.region_mask[None])[0].astype(np.float64)
        return box + np.array([self.region[0], self.region[1]] * 2, dtype=np.float64)

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.region_mask))


def decode_point_prompts(
    predictor: Any, points: np.ndarray, min_score: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Decode each point as its own single positive prompt on the image set on ``predictor``.

    Uses the predictor's batched decode (``predict_batch(..., return_masks=False)``), so no
    full-resolution mask is made here.

    Args:
        points: ``(B, 2)`` of ``(x, y)`` in pixels of the image given to ``set_image``.
        min_score: candidates scored at most this are not wanted: engine predictors may skip their
            masks (their logits are then ``-inf``); see ``predict_batch``.

    Returns:
        ``(iou, low_res_logits)``: float32 ``(B, 3)`` predicted IoU and float32 ``(B, 3, h, w)`` logits
        (``h = w = 256`` for EfficientSAM), candidate order irrelevant.
    """
    points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    # engine predictors (and wrappers such as CachedPredictor, which forward attributes) take min_score
    wanted = min_score is not None and getattr(predictor, "accepts_min_score", False)
    extra = {"min_score": min_score} if wanted else {}
    _, scores, logits = predictor.predict_batch(
        point_coords=points[:, None, :],  # (B, 1, 2): one point per prompt
        point_labels=np.ones((len(points), 1), dtype=np.float32),
        multimask_output=True,
        return_masks=False,
        **extra,
    )
    return np.asarray(scores, dtype=np.float32), np.asarray(logits, dtype=np.float32)


def _grid_order(count: int, coarse_first: bool) -> np.ndarray:
    """Decoding order of an ``n x n`` grid's point indices: row by row, or the points of even rows and
    columns first (a grid of half the density spread over the whole crop) when ``coarse_first``."""
    order = np.arange(count)
    side = int(round(np.sqrt(count)))
    if not coarse_first or side * side != count:
        return order
    rows, cols = np.divmod(order, side)
    return order[np.argsort(((rows % 2) | (cols % 2)), kind="stable")]


def _covered(points: np.ndarray, coverage: np.ndarray, crop_size: tuple[int, int]) -> np.ndarray:
    """Which ``(x, y)`` crop points fall on a true cell of the low-resolution ``coverage`` map."""
    low_h, low_w = coverage.shape
    cols = np.clip((points[:, 0] * low_w / crop_size[0]).astype(int), 0, low_w - 1)
    rows = np.clip((points[:, 1] * low_h / crop_size[1]).astype(int), 0, low_h - 1)
    return coverage[rows, cols]


class AutomaticMaskGenerator:
    """Segment everything in an image with a predictor of the engine.

    Example::

        generator = AutomaticMaskGenerator(load_predictor("vit_t", checkpoint=path))
        masks = generator.generate(rgb_uint8)  # list[AutoMask], largest first
    """

    def __init__(self, predictor: Any, params: AutomaticMaskParams | None = None) -> None:
        self.predictor = predictor
        self.params = params or AutomaticMaskParams()
        self.params.validate()
        self.last_stats = GenerationStats()

    def generate(
        self,
        image: np.ndarray,
        progress: ProgressCallback | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> list[AutoMask]:
        """All masks of ``image``.

        Args:
            image: RGB uint8 ``(H, W, 3)``.
            progress: called as ``progress(points_done, points_total)`` after each decoded batch.
            cancel: polled between batches; when it returns true, raises :class:`MaskGenerationCancelled`.

        Returns:
            masks sorted by area, largest first (draw in order so small objects stay visible). Statistics of
            the call are left in :attr:`last_stats`.
        """
        params = self.params
        height, width = image.shape[:2]
        image_box = (0, 0, width, height)
        crops = F.generate_crop_boxes((height, width), params.crop_n_layers, params.crop_overlap_ratio)
        downscale = params.crop_n_points_downscale_factor
        grids = [
            F.build_point_grid(F.points_per_side_for_layer(params.points_per_side, layer, downscale))
            for layer in range(params.crop_n_layers + 1)
        ]
        total = sum(len(grids[layer]) for _, layer in crops)
        stats = GenerationStats(crops=len(crops), points=total)
        self.last_stats = stats
        done = reported = 0
        kept: list[_Mask] = []
        for crop_box, layer in crops:
            x0, y0, x1, y1 = crop_box
            started = time.perf_counter()
            self.predictor.set_image(np.ascontiguousarray(image[y0:y1, x0:x1]))
            stats.encode_s += time.perf_counter() - started
            points = grids[layer] * np.array([x1 - x0, y1 - y0], dtype=np.float64)
            candidates = _Candidates()
            pending = _grid_order(len(points), params.skip_covered_points)
            coverage: np.ndarray | None = None  # low-res union of kept masks (skip_covered_points)
            while pending.size:
                if cancel is not None and cancel():
                    raise MaskGenerationCancelled("automatic mask generation was cancelled")
                if coverage is not None:
                    inside = _covered(points[pending], coverage, (x1 - x0, y1 - y0))
                    stats.skipped_points += int(inside.sum())
                    done += int(inside.sum())
                    pending = pending[~inside]
                    if not pending.size:
                        break
                batch = points[pending[: params.points_per_batch]]
                pending = pending[params.points_per_batch :]
                started = time.perf_counter()
                # candidates not above pred_iou_thresh are dropped first thing: no need for their masks
                iou, logits = decode_point_prompts(self.predictor, batch, params.pred_iou_thresh)
                stats.decode_s += time.perf_counter() - started
                started = time.perf_counter()
                before = len(candidates)
                self._filter_batch(batch, iou, logits, crop_box, image_box, candidates, stats)
                if params.skip_covered_points and len(candidates) > before:
                    new = np.stack(candidates.logits[before:]) > params.mask_threshold
                    coverage = new.any(axis=0) if coverage is None else coverage | new.any(axis=0)
                stats.filter_s += time.perf_counter() - started
                done += len(batch)
                if progress is not None:
                    progress(done, total)
                    reported = done
            if progress is not None and reported != done:  # points skipped after the last batch
                progress(done, total)
                reported = done
            started = time.perf_counter()
            if len(candidates):
                candidates.keep(
                    F.nms_boxes(np.stack(candidates.boxes), np.asarray(candidates.iou), params.box_nms_thresh)
                )
            stats.after_nms += len(candidates)
            stats.filter_s += time.perf_counter() - started
            started = time.perf_counter()
            kept.extend(self._upsample(candidates, crop_box, image_box))
            stats.upsample_s += time.perf_counter() - started
        started = time.perf_counter()
        if len(crops) > 1 and kept:
            crop_areas = np.array([F.box_area(np.array([m.crop_box]))[0] for m in kept], dtype=np.float64)
            boxes = np.stack([m.tight_box() for m in kept])
            kept = [kept[i] for i in F.nms_boxes(boxes, 1.0 / crop_areas, params.crop_nms_thresh)]
        kept = self._clean_small_regions(kept)
        masks = [self._to_auto_mask(m, (height, width)) for m in kept]
        masks.sort(key=lambda m: -m.area)
        stats.masks = len(masks)
        stats.postprocess_s += time.perf_counter() - started
        return masks

    def _filter_batch(
        self,
        points: np.ndarray,
        iou: np.ndarray,
        logits: np.ndarray,
        crop_box: F.Box,
        image_box: F.Box,
        candidates: _Candidates,
        stats: GenerationStats,
    ) -> None:
        """Low-resolution filters of one decoded batch; survivors are appended to ``candidates``."""
        params = self.params
        n_points, n_masks, low_h, low_w = logits.shape
        flat_logits = logits.reshape(n_points * n_masks, low_h, low_w)
        flat_iou = iou.reshape(-1)
        flat_points = np.repeat(points, n_masks, axis=0)
        stats.candidates += len(flat_iou)
        index = np.flatnonzero(flat_iou > params.pred_iou_thresh)
        if index.size:
            stability = F.stability_scores(
                flat_logits[index], params.mask_threshold, params.stability_score_offset
            )
            stable = stability >= params.stability_score_thresh
            index, stability = index[stable], stability[stable]
        if not index.size:
            return
        low_boxes = F.masks_to_boxes(flat_logits[index] > params.mask_threshold).astype(np.float64)
        nonempty = F.box_area(low_boxes) > 0
        x0, y0, x1, y1 = crop_box
        scale = np.array([(x1 - x0) / low_w, (y1 - y0) / low_h] * 2)
        boxes = low_boxes * scale + np.array([x0, y0, x0, y0], dtype=np.float64)
        inside = ~F.boxes_near_crop_edge(boxes, crop_box, image_box, params.crop_edge_tolerance)
        good = nonempty & inside
        for i, stab, box in zip(index[good], stability[good], boxes[good], strict=True):
            candidates.logits.append(np.array(flat_logits[i], dtype=np.float32))
            candidates.iou.append(float(flat_iou[i]))
            candidates.stability.append(float(stab))
            candidates.boxes.append(box)
            candidates.points.append(flat_points[i] + np.array([x0, y0], dtype=np.float64))
        stats.after_filters += int(good.sum())

    def _upsample(self, candidates: _Candidates, crop_box: F.Box, image_box: F.Box) -> list[_Mask]:
        """Full-resolution masks of the surviving candidates, computed only around each box."""
        threshold = self.params.mask_threshold
        x0, y0, x1, y1 = crop_box
        crop_w, crop_h = x1 - x0, y1 - y0
        out: list[_Mask] = []
        for logits, iou, stability, box, point in zip(
            candidates.logits,
            candidates.iou,
            candidates.stability,
            candidates.boxes,
            candidates.points,
            strict=True,
        ):
            low_h, low_w = logits.shape
            # two low-resolution cells of margin: the bicubic kernel reaches two cells out
            margin_x, margin_y = 2 * crop_w / low_w, 2 * crop_h / low_h
            region = (
                max(0, int(np.floor(box[0] - x0 - margin_x))),
                max(0, int(np.floor(box[1] - y0 - margin_y))),
                min(crop_w, int(np.ceil(box[2] - x0 + margin_x))),
                min(crop_h, int(np.ceil(box[3] - y0 + margin_y))),
            )
            region_mask = F.upsample_logits_region(logits, (crop_h, crop_w), region) > threshold
            if not region_mask.any():
                continue
            image_region = (region[0] + x0, region[1] + y0, region[2] + x0, region[3] + y0)
            out.append(_Mask(region_mask, image_region, iou, stability, point, crop_box))
        return out

    def _clean_small_regions(self, masks: list[_Mask]) -> list[_Mask]:
        """Fill small holes, delete small islands, drop small masks, then prefer untouched masks in an NMS."""
        min_area = self.params.min_mask_area
        if min_area <= 0 or not masks:
            return masks
        cleaned: list[_Mask] = []
        changed: list[bool] = []
        for mask in masks:
            region_mask, filled = F.remove_small_regions(mask.region_mask, min_area, "holes")
            region_mask, removed = F.remove_small_regions(region_mask, min_area, "islands")
            if np.count_nonzero(region_mask) < min_area:
                continue
            mask.region_mask = region_mask
            cleaned.append(mask)
            changed.append(filled or removed)
        if any(changed) and len(cleaned) > 1:
            boxes = np.stack([m.tight_box() for m in cleaned])
            scores = np.array([0.0 if c else 1.0 for c in changed])
            cleaned = [cleaned[i] for i in F.nms_boxes(boxes, scores, self.params.box_nms_thresh)]
        return cleaned

    @staticmethod
    def _to_auto_mask(mask: _Mask, image_size: tuple[int, int]) -> AutoMask:
        from pycocotools import mask as coco_mask

        height, width = image_size
        # column-major uint8 is what pycocotools reads without a copy; the region is pasted into it
        full = np.zeros((height, width), dtype=np.uint8, order="F")
        x0, y0, x1, y1 = mask.region
        full[y0:y1, x0:x1] = mask.region_mask
        encoded = coco_mask.encode(full)
        rle = {"size": [height, width], "counts": encoded["counts"].decode("ascii")}
        bx0, by0, bx1, by1 = (int(v) for v in mask.tight_box())
        return AutoMask(
            rle=rle,
            bbox=(bx0, by0, bx1 - bx0, by1 - by0),
            area=mask.area,
            predicted_iou=mask.iou,
            stability_score=mask.stability,
            point=(float(mask.point[0]), float(mask.point[1])),
            crop_box=mask.crop_box,
        )
