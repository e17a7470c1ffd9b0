"""YOLO segmentation export (Ultralytics layout).

Writes under ``out``::

    images/<name>.<ext>       the labelled images (hard links, or copies where links fail; none with
                              ``images="none"``, see below)
    labels/<name>.txt         one line per polygon: ``class x1 y1 x2 y2 ...``, coordinates divided by the
                              image width / height (0..1); ``class`` is the category's position (0-based)
    images.txt                the images, one a line, as ``./images/<name>.<ext>``
    data.yaml                 ``path`` (``out``, absolute), ``train`` / ``val`` (= images.txt), ``nc`` and
                              ``names``

Ultralytics reads a list file's lines that start with ``./`` as relative to the list's folder and any
other relative line as relative to the working directory, so the ``./`` lines find the images wherever
training starts; a name in which ``./`` appears again (a folder whose name ends with a dot), which
Ultralytics would garble, is written as an absolute path instead. Ultralytics finds the labels of an
image by replacing its last ``images`` folder with ``labels`` and the extension with ``.txt``, which is
why the images are placed under ``out/images``.

``images="none"`` writes the labels, images.txt and data.yaml but places no images: the dataset is
complete once the project's images are copied into ``out/images`` (keeping their subfolders), which
``ExportReport.notes`` says (listing the project's own files instead would pair each image with a label
file next to it, which does not exist, and train on no labels at all).

``<name>`` is the image's relative path without its extension. YOLO pairs an image with the label file of
the same name, so images that share one (``a/x.png`` and ``a/x.jpg``) are placed and labelled under
distinct names (``a/x_png``, ``a/x_jpg``; :func:`~.common.output_names`, listed in
``ExportReport.renamed``); with ``images="none"`` the images copied later keep their names, so such images
raise :class:`FormatError` before anything is written.

Each part of an object becomes its own line (YOLO has no object grouping) and holes are lost: both are
reported (``ExportReport.parts_split`` / ``holes_lost``). Crowd regions (``iscrowd``) are left out, as
YOLO has no crowd flag and would train on them as single objects; each is listed in
``ExportReport.skipped``. A labelled image without instances gets an empty label file (a negative
example); an export without labelled images is a valid empty dataset. Outlines are traced on each
instance's bounding-box crop (:func:`~..masks.decode_crop`), not on a full-size mask.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Literal

from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.document import Document, ImageRecord
from efficientsam_studio.annotations.errors import FormatError
from efficientsam_studio.annotations.formats.common import (
    ExportReport,
    Progress,
    check_policy,
    exportable_instances,
    images_to_export,
    output_names,
    shared_stems,
    with_progress,
)
from efficientsam_studio.annotations.storage import atomic_write

ImageMode = Literal["link", "copy", "none"]


def _place_image(source: Path, target: Path, mode: ImageMode) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    if mode == "link":
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    shutil.copy2(source, target)


def _list_line(out: Path, placed: str) -> str:
    """The images.txt line of an image placed at ``out / placed`` (see the module doc)."""
    if "./" in placed:
        return (out / placed).resolve().as_posix()
    return f"./{placed}"


def _refuse_shared_stems(groups: list[list[ImageRecord]]) -> FormatError:
    """The error for images that would share a label file when they keep their own names."""
    listed = "; ".join(
        f"{', '.join(image.path for image in group)} "
        f"(labels/{PurePosixPath(group[0].path).with_suffix('.txt').as_posix()})"
        for group in groups[:5]
    ) + (" ..." if len(groups) > 5 else "")
    return FormatError(
        f"YOLO pairs each image with the label file of the same name, and these images would share one: "
        f"{listed}. With images 'none' the images are copied later under their own names; export with "
        f"images 'link' or "
        f"'copy' (command line: --images link or --images copy), which places them under distinct names, "
        f"or rename the image files."
    )


def export_yolo(
    document: Document,
    out: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str],
    tolerance: float = 1.0,
    images: ImageMode = "link",
    image_ids: list[int] | None = None,
    progress: Progress | None = None,
) -> ExportReport:
    """Write a YOLO segmentation dataset under ``out`` (see the module doc); ``image_root``: project folder.

    Images whose file is missing are written without an image (their labels are kept) and reported as
    skipped-image entries (instance id 0); crowd instances are left out and reported under their id.
    With ``images="none"``, images that share a name without extension raise :class:`FormatError` naming
    them, before anything is written.
    """
    check_policy("always", tolerance)
    if images not in ("link", "copy", "none"):
        raise ValueError(f"images must be 'link', 'copy' or 'none'; got {images!r}")
    out, root = Path(out), Path(image_root)
    chosen = images_to_export(document, image_ids)
    if images == "none" and (groups := shared_stems(chosen)):
        raise _refuse_shared_stems(groups)
    report = ExportReport()
    names = output_names(chosen, report)
    classes = {category.id: index for index, category in enumerate(document.categories)}
    listed = []
    out.mkdir(parents=True, exist_ok=True)
    for image in with_progress(chosen, progress):
        lines = []
        for instance in exportable_instances(document, image.id, report):
            if instance.iscrowd:
                report.skipped.append((instance.id, "crowd region; YOLO has no crowd flag, not exported"))
                continue
            crop, x, y = masks.decode_crop(instance.rle)
            rings = masks.mask_to_polygons(crop, "all", tolerance)
            if masks.has_holes(crop):
                report.holes_lost.append(instance.id)
            if len(rings) > 1:
                report.parts_split.append(instance.id)
            for ring in rings:
                points = ring.points + (x, y)
                points[:, 0] /= image.width
                points[:, 1] /= image.height
                coords = " ".join(f"{v:.6f}" for v in points.clip(0.0, 1.0).reshape(-1))
                lines.append(f"{classes[instance.category_id]} {coords}")
            report.polygons += 1
            report.instances += 1
        label = out / "labels" / f"{names[image.id]}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(label, "".join(line + "\n" for line in lines).encode("ascii"), keep_backup=False)
        report.files.append(label)
        source = root / image.path
        placed = f"images/{names[image.id]}{PurePosixPath(image.path).suffix}"
        if images == "none":
            listed.append(_list_line(out, placed))
        elif source.is_file():
            _place_image(source, out / placed, images)
            listed.append(_list_line(out, placed))
        else:
            report.skipped.append((0, f"image file {image.path} is missing; its labels are written"))
        report.images += 1
    if images == "none" and chosen:
        report.notes.append(
            f"no images were placed: copy the project's images into {out / 'images'} (keeping their "
            "subfolders) before training; images.txt lists them there, and YOLO finds the labels of "
            "images/<name> in labels/<name>.txt"
        )
    (out / "images.txt").write_text("".join(f"{p}\n" for p in listed), encoding="utf-8")
    names = "\n".join(
        f"  {index}: {json.dumps(c.name, ensure_ascii=False)}" for index, c in enumerate(document.categories)
    )
    yaml = (
        f"# YOLO segmentation dataset exported by EfficientSAM Studio\n"
        f"path: {json.dumps(out.resolve().as_posix())}\n"
        f"train: images.txt\nval: images.txt\n"
        f"nc: {len(classes)}\nnames:\n{names}\n"
    )
    (out / "data.yaml").write_text(yaml, encoding="utf-8")
    report.files += [out / "images.txt", out / "data.yaml"]
    return report
