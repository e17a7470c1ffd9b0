"""``efsam-studio label FOLDER --out PROJECT``: label a whole folder of images in one run.

Modes (one of them):

- ``--everything``: automatic masks from a grid of points (see the tuning options below);
- ``--boxes FILE``: one mask per box of a COCO detection-results JSON (``--images-json`` maps its image ids
  to files), a COCO annotation JSON, a YOLO label folder or a CSV ``image,x0,y0,x1,y1,label[,score]``;
- ``--points FILE``: one mask per object of a CSV/JSON point file ``image,x,y,label[,object][,category]``.

The options of one mode (``--images-json``, ``--min-score`` and ``--refine-small-boxes`` of ``--boxes``; the
tuning options of ``--everything``) are refused in the others. ``--category`` names the masks of
``--everything`` and the point prompts and CSV boxes whose file gives no category.

Boxes and points follow the same rule as ``segment`` and the app: box corners in either order; a box is
clipped to its image, a point within a pixel of it moved onto the edge; an object may have background
points only. A box or point outside its image is skipped and reported with the
reason in the summary; the run goes on with the other prompts.

The project file lives in FOLDER (image paths are stored relative to it): ``--out NAME`` or
``--out FOLDER/NAME.efsam.json``; an existing project is continued (with ``--recover``, from its last good
version when its file is damaged; the damaged file is kept aside). ``-r`` includes subfolders: in a new
project, or from now on in an existing one that did not (said in the output, and saved with it). Images
already labelled (status done, needs review or skipped, in progress by hand in the app, or holding
instances, AI or hand-made, e.g. imported) are skipped unless ``--overwrite``; even then images marked
done (reviewed) are kept, and hand-made instances (drawn, or AI masks edited, relabelled or merged in
the app) too, unless ``--replace-manual`` as well (it goes with ``--overwrite`` only). Results are AI
instances with status "needs review"; a mask from a box with a detector score has that score, and boxes
from a COCO file keep their image and category ids in the project and in ``--coco``. The project is
saved every ``--save-every`` images and at the end; Ctrl+C saves the finished images and stops (run the
same command again to continue). ``--coco FILE`` also writes the labelled images as COCO at the end of the
run (never over the project's files or images; not after Ctrl+C). The progress bar is drawn only when
stderr is a terminal.

Exit status: 0 when every image was labelled or skipped, 1 when some images failed (they are listed in the
summary; the others are labelled and saved), 2 for a usage error, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from efficientsam_studio.cli.label_project import (
    LabelError,
    add_unreadable,
    check_outputs,
    open_project,
    resolve_project_path,
)
from efficientsam_studio.cli.segment import BACKEND_CHOICES, BACKEND_HELP, DEVICE_CHOICES, MODEL_CHOICES

TUNING = (
    ("--points-per-side", "points_per_side"),
    ("--points-per-batch", "points_per_batch"),
    ("--pred-iou-thresh", "pred_iou_thresh"),
    ("--stability-thresh", "stability_score_thresh"),
    ("--stability-offset", "stability_score_offset"),
    ("--nms-thresh", "box_nms_thresh"),
    ("--min-area", "min_mask_area"),
    ("--crop-layers", "crop_n_layers"),
    ("--crop-overlap", "crop_overlap_ratio"),
    ("--skip-covered-points", "skip_covered_points"),
)
"""The ``--everything`` tuning options and the :class:`AutomaticMaskParams` field each sets."""


def register(subparsers: argparse._SubParsersAction) -> None:
    from efficientsam_studio.batch.prompts_io import DEFAULT_CATEGORY
    from efficientsam_studio.engine.automatic import AutomaticMaskParams

    defaults = AutomaticMaskParams()
    p = subparsers.add_parser(
        "label",
        help="label a folder of images: segment everything, or masks from boxes or points",
        description=__doc__.split("\n\n", 1)[1].split("\n\nExit status", 1)[0].replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folder", type=Path, metavar="FOLDER", help="the folder of images")
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="PROJECT",
        help="project name or file in FOLDER (created, or continued when it exists)",
    )
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--everything", action="store_true", help="automatic masks of every object")
    mode.add_argument("--boxes", type=Path, metavar="FILE", help="box prompts: COCO JSON, YOLO folder or CSV")
    mode.add_argument("--points", type=Path, metavar="FILE", help="point prompts: CSV or JSON")
    p.add_argument(
        "--images-json",
        type=Path,
        metavar="FILE",
        help="--boxes: COCO file mapping the image ids of detection results to file names and categories",
    )
    p.add_argument(
        "--min-score",
        type=float,
        metavar="S",
        help="--boxes: leave out boxes whose detector score is below S (default 0)",
    )
    p.add_argument(
        "--refine-small-boxes",
        action="store_true",
        help="--boxes: decode a small box again in a cut around it, where the object fills more "
        "of the model's input (one more encoder run per such box). A box is small when, grown "
        "by a quarter of its size on each side for context, it covers at most half of the image "
        "each way: boxes under about a third of the image each way",
    )
    p.add_argument(
        "--category",
        default=DEFAULT_CATEGORY,
        help="category of --everything masks, and of point prompts and CSV boxes whose file names "
        f"none (default: {DEFAULT_CATEGORY})",
    )
    p.add_argument("--coco", type=Path, metavar="FILE", help="also write the labelled images as COCO JSON")
    p.add_argument("--model", choices=MODEL_CHOICES, default="vit_t", help="model (default: vit_t)")
    p.add_argument(
        "--checkpoint",
        type=Path,
        metavar="PATH",
        help="checkpoint file (default: the installed weights of --model)",
    )
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto", help=BACKEND_HELP)
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="default: auto")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="label again images that are already labelled (not those marked done), replacing their AI "
        "instances",
    )
    p.add_argument(
        "--replace-manual",
        action="store_true",
        help="with --overwrite: also replace hand-made instances, and label images marked done again "
        "(default: keep both)",
    )
    p.add_argument(
        "-r",
        "--recursive",
        action="store_true",
        help="include subfolders (an existing project without them includes them from now on)",
    )
    p.add_argument(
        "--recover",
        action="store_true",
        help="if the project file is damaged, continue from its last good version (.bak)",
    )
    p.add_argument("--save-every", type=int, default=10, metavar="N", help="save every N images (default 10)")
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="do not read or write the embedding cache (efsam-studio precompute fills it)",
    )
    tuning = p.add_argument_group("--everything tuning (refused in the other modes)")
    tuning.add_argument(
        "--points-per-side",
        type=int,
        metavar="N",
        help=f"grid of N x N points per crop (default {defaults.points_per_side})",
    )
    tuning.add_argument(
        "--points-per-batch",
        type=int,
        metavar="N",
        help=f"points decoded together (default {defaults.points_per_batch})",
    )
    tuning.add_argument(
        "--pred-iou-thresh",
        type=float,
        metavar="T",
        help=f"keep masks of predicted IoU above T (default {defaults.pred_iou_thresh})",
    )
    tuning.add_argument(
        "--stability-thresh",
        type=float,
        metavar="T",
        help=f"keep masks with stability score >= T (default {defaults.stability_score_thresh})",
    )
    tuning.add_argument(
        "--stability-offset",
        type=float,
        metavar="O",
        help=f"logit offset of the stability score (default {defaults.stability_score_offset})",
    )
    tuning.add_argument(
        "--nms-thresh",
        type=float,
        metavar="T",
        help=f"box IoU above which duplicates go (default {defaults.box_nms_thresh})",
    )
    tuning.add_argument(
        "--min-area",
        type=int,
        metavar="PX",
        help=f"remove holes, islands and masks under PX pixels (default {defaults.min_mask_area})",
    )
    tuning.add_argument(
        "--crop-layers",
        type=int,
        metavar="N",
        help="extra layers of overlapping crops for large images (default 0)",
    )
    tuning.add_argument(
        "--crop-overlap",
        type=float,
        metavar="R",
        help=f"crop overlap as a fraction of the short side (default {defaults.crop_overlap_ratio:.3f})",
    )
    tuning.add_argument(
        "--skip-covered-points",
        action="store_true",
        default=None,
        help="decode coarse points first and skip points inside masks already found (faster "
        "on large objects; no part masks inside them)",
    )
    p.set_defaults(func=run)


def _read_prompts(args: argparse.Namespace) -> Any:
    from efficientsam_studio.batch import read_box_prompts, read_point_prompts

    if args.boxes is not None:
        if args.images_json is not None and not args.images_json.is_file():
            raise LabelError(f"--images-json {args.images_json} does not exist or is not a file")
        return read_box_prompts(
            args.boxes,
            images_json=args.images_json,
            min_score=args.min_score or 0.0,
            default_category=args.category,
        )
    if args.points is not None:
        return read_point_prompts(args.points, default_category=args.category)
    return None


def _check_mode_options(args: argparse.Namespace) -> None:
    """Refuse the options that the chosen mode would ignore."""
    mode = "--everything" if args.everything else "--boxes" if args.boxes is not None else "--points"
    if args.boxes is None:
        for option, given in (
            ("--refine-small-boxes", args.refine_small_boxes),
            ("--images-json", args.images_json is not None),
            ("--min-score", args.min_score is not None),
        ):
            if given:
                raise LabelError(
                    f"{option} works on box prompts: give them with --boxes FILE, or leave "
                    f"{option} out with {mode}"
                )
    if not args.everything:
        given = [option for option, _ in TUNING if getattr(args, _dest(option)) is not None]
        if given:
            raise LabelError(f"{given[0]} tunes --everything and has no effect with {mode}; leave it out")


def _dest(option: str) -> str:
    return option.removeprefix("--").replace("-", "_")


def _automatic_params(args: argparse.Namespace) -> Any:
    """The ``--everything`` parameters; LabelError naming the option whose value is out of range."""
    from efficientsam_studio.engine.automatic import AutomaticMaskParams, AutomaticParamsError

    given = {
        field: getattr(args, _dest(option))
        for option, field in TUNING
        if getattr(args, _dest(option)) is not None
    }
    for option, field in TUNING:
        if field not in given:
            continue
        try:
            AutomaticMaskParams(**{field: given[field]}).validate()
        except AutomaticParamsError as exc:
            engine_name = f"automatic mask parameter {field}={given[field]!r}"
            text = str(exc)
            if text.startswith(engine_name):
                raise LabelError(f"{option} {given[field]}{text.removeprefix(engine_name)}") from None
            raise LabelError(f"{option} {given[field]}: {text}") from None
    automatic = AutomaticMaskParams(**given)
    automatic.validate()
    return automatic


def _params(args: argparse.Namespace) -> Any:
    from efficientsam_studio.batch import BatchParams

    _check_mode_options(args)
    if args.save_every < 1:
        raise LabelError(f"--save-every {args.save_every}: give a number of images of at least 1")
    if args.replace_manual and not args.overwrite:
        raise LabelError(
            "--replace-manual replaces hand-made work on images labelled again: give it with --overwrite"
        )
    if not args.category.strip():
        raise LabelError("--category needs a name")
    params = BatchParams(
        overwrite=args.overwrite,
        replace_manual=args.replace_manual,
        save_every=args.save_every,
        category=args.category,
        automatic=_automatic_params(args),
        refine_small_boxes=args.refine_small_boxes,
    )
    params.validate()
    return params


def _load_predictor(args: argparse.Namespace) -> Any:
    from efficientsam_studio.engine import load_predictor

    predictor = load_predictor(
        model=args.model, checkpoint=args.checkpoint, device=args.device, backend=args.backend
    )
    if args.no_cache:
        return predictor
    from efficientsam_studio.engine.cache import CachedPredictor

    return CachedPredictor(predictor)


class _Bar:
    """A tqdm bar over images on a terminal, created at the first event (when the number of images is known).

    Like ``export``'s, it is drawn only when stderr is a terminal (tqdm's ``disable=None``), so a log gets
    the summary and no redraws. Events inside an image (everything mode's points) update the bar's text
    and redraw it at most every ``mininterval`` seconds.
    """

    def __init__(self) -> None:
        self.bar: Any = None
        self._drawn = 0.0

    def __call__(self, event: Any) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(
                total=event.total, unit="img", desc="label", file=sys.stderr, dynamic_ncols=True, disable=None
            )
        if self.bar.disable:
            return
        name = event.path[-30:]
        if event.outcome == "working":
            step = f" {event.step[0]}/{event.step[1]} points" if event.step else ""
            self.bar.set_postfix_str(f"{name}{step}, {event.instances} masks", refresh=False)
            now = time.monotonic()
            if now - self._drawn >= self.bar.mininterval:
                self._drawn = now
                self.bar.refresh()
        else:
            self.bar.set_postfix_str(f"{name} {event.outcome}, {event.instances} masks", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args: argparse.Namespace) -> int:
    from efficientsam_studio.batch import run_batch
    from efficientsam_studio.cli.import_cmd import recovery_note

    folder: Path = args.folder
    if not folder.is_dir():
        raise LabelError(f"{folder} is not a folder: give the folder that holds the images")
    path = resolve_project_path(folder, args.out)
    params = _params(args)
    prompts = _read_prompts(args)
    check_outputs(args, folder, path, prompts)
    mode = "everything" if args.everything else "boxes" if args.boxes is not None else "points"
    predictor = _load_predictor(args)
    existed = path.exists()
    project, report = open_project(folder, path, args.recursive, args.recover)
    recursive = bool(project.settings.get("recursive", False))
    bar = _Bar()
    try:
        note = recovery_note(project)
        if note:
            print(note)
        if report.added and existed:
            print(f"{len(report.added)} new images added to {path.name}", file=sys.stderr)
        summary = run_batch(
            project, mode=mode, params=params, predictor=predictor, prompts=prompts, progress=bar
        )
        bar.close()
        add_unreadable(summary, report.unreadable, prompts)
        if args.coco is not None and not summary.interrupted:
            from efficientsam_studio.annotations.formats.coco import export_coco

            exported = export_coco(project.document, args.coco)
            print(f"COCO: {exported.summary()} written to {args.coco}")
        elif args.coco is not None:
            print(
                f"COCO: {args.coco} not written, as the run was interrupted: run the same command again to "
                f"finish and write it, or export what is saved with efsam-studio export {path} --format "
                f"coco --out {args.coco}"
            )
    finally:
        bar.close()
        project.close()
    print(f"project: {path}")
    for line in summary.lines():
        print(line)
    if prompts is not None and prompts.key_kind == "id" and summary.unmatched_prompts:
        print(
            "hint: the image ids of --boxes match only images named by their number (000000000042.jpg); "
            "for the others give --images-json FILE, the COCO file the detections were made for"
        )
    in_subfolders = [key for key in summary.unmatched_prompts if "/" in key.replace("\\", "/")]
    if in_subfolders and not recursive:
        print(
            f"hint: {path.name} does not include subfolders, where {in_subfolders[0]} is: add -r to "
            "include them"
        )
    if summary.interrupted:
        return 130
    return 1 if summary.failed else 0
