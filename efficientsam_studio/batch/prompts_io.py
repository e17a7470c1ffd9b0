"""Readers of box and point prompt files for batch labelling.

Boxes (``efsam-studio label --boxes FILE``), recognised by their content:

- **COCO detection results**: a JSON list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``
  (what detectors write for COCO evaluation). Image ids become file names through ``images_json``, a COCO
  file whose ``images`` list gives ``id`` and ``file_name`` (the annotation or image-info file the detector
  ran on); its ``categories`` give the category names. Without it, an image id ``42`` matches the image whose
  file stem is the number 42 (``000000000042.jpg``), a string image id is taken as a file name, and
  categories are named ``category_<id>``. The COCO image and category ids are kept with the boxes, so
  that the labelled images and the categories a run creates or uses keep them (see :mod:`.coco_ids`).
- **COCO annotations**: a JSON object with ``images``, ``annotations`` (each with a ``bbox``) and
  ``categories``; one box per annotation (``iscrowd`` ones included), no score; ids kept as above.
- **YOLO**: a folder of ``<image stem>.txt`` files with lines ``class cx cy w h [score]``, all fractions of
  the image size (segmentation lines ``class x1 y1 x2 y2 ...`` give their polygon's box). Class names come
  from ``data.yaml`` (``names:`` as a list or an index mapping) or ``classes.txt`` (one name a line), looked
  for in the folder and its parent; otherwise classes are named ``class_<index>``.
- **CSV**: a header ``image,x0,y0,x1,y1,label`` and optionally ``score``; pixel corners.

Box corners given in the wrong order (``x0 > x1``, a negative COCO width) are swapped into place. Boxes
outside their image are kept here and reported as skipped by the run, which goes on with the other
prompts (the engine's rule, :func:`efficientsam_studio.engine.prompts.fit_to_image`).

Points (``--points FILE``): CSV with a header ``image,x,y,label`` and optionally ``object`` and
``category``, or JSON: a list of such objects, or ``{image: [{x, y, label, object?, category?}, ...]}``.
``label`` is 1 (positive) or 0 (negative); a JSON entry that is not such an object is an error naming
it. Rows with the same image and ``object`` form one prompt (at most 6 points are read by the model; see
the engine's prompt policy); without ``object`` every row is its own prompt; an object may have negative
points only. ``category`` defaults to ``object`` (the reader's
``default_category``; ``label --category`` sets it), as does an empty CSV box ``label``. Points outside
their image are reported as skipped by the run, as boxes are.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from efficientsam_studio.batch.prompts import BoxPrompt, PointPrompt, PromptFileError, PromptSet

DEFAULT_CATEGORY = "object"
"""Category of point prompts and CSV boxes when the file names none (unless the reader is given another),
and of everything-mode masks by default."""

YOLO_NAME_FILES = ("data.yaml", "data.yml", "classes.txt", "obj.names")


def read_box_prompts(
    path: str | Path,
    images_json: str | Path | None = None,
    min_score: float = 0.0,
    default_category: str = DEFAULT_CATEGORY,
) -> PromptSet:
    """Read boxes from any supported file or folder (see the module docstring).

    Args:
        path: a JSON or CSV file, or a YOLO label folder.
        images_json: COCO file mapping the image ids of detection results to file names (and category names).
        min_score: boxes with a score below this are left out (boxes without a score are kept); an
            image whose boxes are all left out is not in ``by_key`` but in ``below_min_score``, so a run
            skips it instead of labelling it empty.
        default_category: the category of CSV boxes whose ``label`` is empty.

    Raises:
        PromptFileError: naming the file, the line or entry, and the field at fault.
    """
    path = Path(path)
    if path.is_dir():
        prompts = read_yolo_folder(path)
    elif not path.is_file():
        raise PromptFileError(f"box file {path} does not exist")
    elif path.suffix.lower() == ".csv":
        prompts = read_box_csv(path, default_category)
    else:
        data = _load_json(path)
        if isinstance(data, list):
            mapping = _load_json(Path(images_json)) if images_json is not None else None
            prompts = read_coco_detections(path, data, mapping, images_json)
        elif isinstance(data, dict) and "annotations" in data:
            prompts = read_coco_annotations(path, data)
        else:
            raise PromptFileError(
                f"{path}: not a box file: expected a JSON list of COCO detection results or a COCO file with "
                "'images', 'annotations' and 'categories' (or use a .csv file or a YOLO label folder)"
            )
    if min_score > 0:
        for key in list(prompts.by_key):
            boxes = prompts.by_key[key]
            kept = [p for p in boxes if p.score is None or p.score >= min_score]
            if kept or not boxes:
                prompts.by_key[key] = kept
            else:  # not a labelled-empty image: the run leaves it for a later run with a lower minimum
                del prompts.by_key[key]
                prompts.below_min_score[key] = len(boxes)
    return prompts


def _load_json(path: Path) -> Any:
    try:
        with path.open("r", encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise PromptFileError(f"{path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise PromptFileError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptFileError(f"cannot read {path}: {exc}") from None


def _number(value: Any, where: str, field: str) -> float:
    if value is None:
        raise PromptFileError(f"{where}: field {field!r} is missing or null")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PromptFileError(f"{where}: field {field!r} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise PromptFileError(f"{where}: field {field!r} must be finite, got {value!r}")
    return number


def _ordered(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
    """Box corners swapped into place: ``x0 <= x1`` and ``y0 <= y1``."""
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _xywh_box(bbox: Any, where: str) -> tuple[float, float, float, float]:
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise PromptFileError(f"{where}: field 'bbox' must be [x, y, width, height], got {bbox!r}")
    x, y, w, h = (_number(v, where, "bbox") for v in bbox)
    return _ordered(x, y, x + w, y + h)


def _coco_names(data: Any, source: Path | str) -> tuple[dict[Any, str], dict[Any, str]]:
    """``(image id -> file name, category id -> name)`` of a COCO dataset dict."""
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise PromptFileError(f"{source}: a COCO file needs an 'images' list of {{'id', 'file_name'}}")
    files: dict[Any, str] = {}
    for index, image in enumerate(data["images"]):
        if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
            raise PromptFileError(f"{source}: images[{index}] needs 'id' and 'file_name'")
        files[image["id"]] = str(image["file_name"])
    names: dict[Any, str] = {}
    for index, category in enumerate(data.get("categories") or []):
        if not isinstance(category, dict) or "id" not in category or "name" not in category:
            raise PromptFileError(f"{source}: categories[{index}] needs 'id' and 'name'")
        names[category["id"]] = str(category["name"])
    return files, names


def _coco_id(value: Any) -> int | None:
    """A COCO id as an integer, or None when it is not one (a file name, a float)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _keep_category_ids(prompts: PromptSet, names: dict[Any, str]) -> None:
    """Record the COCO id of each category name of the file (the first id of a name)."""
    for raw_id, name in names.items():
        if _coco_id(raw_id) is not None:
            prompts.category_ids.setdefault(name, raw_id)


def _category(names: dict[Any, str], category_id: Any, prompts: PromptSet) -> str:
    """The name of a box's category; one the file does not list is ``category_<id>``, with that id."""
    if category_id in names:
        return names[category_id]
    name = f"category_{category_id}"
    if _coco_id(category_id) is not None:
        prompts.category_ids.setdefault(name, category_id)
    return name


def read_coco_detections(
    path: Path, detections: list, mapping: Any | None = None, mapping_path: str | Path | None = None
) -> PromptSet:
    """Boxes of a COCO detection-results list (see the module docstring for how image ids are resolved)."""
    files, names = _coco_names(mapping, mapping_path) if mapping is not None else ({}, {})
    prompts = PromptSet("boxes", key_kind="path" if mapping is not None else "id", source=path)
    prompts.categories.extend(names.values())
    _keep_category_ids(prompts, names)
    for index, det in enumerate(detections):
        where = f"{path}[{index}]"
        if not isinstance(det, dict):
            raise PromptFileError(f"{where}: a detection must be an object with image_id, category_id, bbox")
        for field in ("image_id", "category_id", "bbox"):
            if field not in det:
                raise PromptFileError(f"{where}: field {field!r} is missing")
        image_id, category_id = det["image_id"], det["category_id"]
        coco_id = _coco_id(image_id)
        if mapping is not None:
            if image_id not in files:
                raise PromptFileError(f"{where}: image_id {image_id!r} not in the images of {mapping_path}")
            key = files[image_id]
        elif isinstance(image_id, str) and not image_id.isdigit():
            key = image_id
            prompts.key_kind = "path"
        else:
            key = str(int(_number(image_id, where, "image_id")))
            coco_id = int(key)
        category = _category(names, category_id, prompts)
        score = _number(det["score"], where, "score") if det.get("score") is not None else None
        box = _xywh_box(det["bbox"], where)
        prompts.add(key, BoxPrompt(box, category, score, where, image_id=coco_id))
    if prompts.key_kind == "path" and mapping is None and any(k.isdigit() for k in prompts.by_key):
        raise PromptFileError(f"{path}: image_id mixes numbers and file names; give --images-json")
    return prompts


def read_coco_annotations(path: Path, data: dict) -> PromptSet:
    """One box per annotation of a COCO annotation file."""
    files, names = _coco_names(data, path)
    prompts = PromptSet("boxes", key_kind="path", source=path)
    prompts.categories.extend(names.values())
    _keep_category_ids(prompts, names)
    for index, ann in enumerate(data.get("annotations") or []):
        where = f"{path} annotations[{index}]"
        if not isinstance(ann, dict) or "image_id" not in ann or "bbox" not in ann:
            raise PromptFileError(f"{where}: an annotation needs 'image_id' and 'bbox'")
        if ann["image_id"] not in files:
            raise PromptFileError(
                f"{where} (id {ann.get('id')}): image_id {ann['image_id']!r} is not in 'images'"
            )
        category = _category(names, ann.get("category_id"), prompts)
        origin = f"{path} annotation id {ann.get('id', index)}"
        score = _number(ann["score"], where, "score") if ann.get("score") is not None else None
        box = _xywh_box(ann["bbox"], where)
        image_id = _coco_id(ann["image_id"])
        prompts.add(files[ann["image_id"]], BoxPrompt(box, category, score, origin, image_id=image_id))
    return prompts


def _open_csv(path: Path, required: Iterable[str]) -> tuple[list[dict[str, str]], list[str]]:
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            reader.fieldnames = header
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PromptFileError(f"cannot read {path}: {exc}") from None
    if not header:
        raise PromptFileError(
            f"{path} is empty: the first line must name the columns ({','.join(required)}, ...)"
        )
    missing = [name for name in required if name not in header]
    if missing:
        raise PromptFileError(
            f"{path}: the header lacks {', '.join(missing)}; the first line must name the columns "
            f"({','.join(required)}, ...)"
        )
    for line, row in enumerate(rows, start=2):
        short = [name for name in required if row.get(name) is None]
        if short:
            raise PromptFileError(
                f"{path}:{line}: the row has fewer fields than the header: no {', '.join(short)}"
            )
    return rows, header


def read_box_csv(path: Path, default_category: str = DEFAULT_CATEGORY) -> PromptSet:
    """Boxes of a CSV file with the header ``image,x0,y0,x1,y1,label[,score]`` (pixel corners); a box
    with an empty ``label`` gets ``default_category``."""
    rows, header = _open_csv(path, ("image", "x0", "y0", "x1", "y1", "label"))
    prompts = PromptSet("boxes", key_kind="path", source=path)
    for line, row in enumerate(rows, start=2):
        where = f"{path}:{line}"
        image = (row.get("image") or "").strip()
        if not image:
            raise PromptFileError(f"{where}: column 'image' is empty")
        box = _ordered(*(_number(row.get(c), where, c) for c in ("x0", "y0", "x1", "y1")))
        label = (row.get("label") or "").strip() or default_category
        score_text = (row.get("score") or "").strip() if "score" in header else ""
        score = _number(score_text, where, "score") if score_text else None
        prompts.add(image, BoxPrompt(box, label, score, where))
    return prompts


def _yaml_names(path: Path) -> list[str] | None:
    """The ``names`` of an Ultralytics ``data.yaml``: ``names: [a, b]``, a ``- a`` list or ``0: a`` lines."""
    text = path.read_text(encoding="utf-8")
    match = re.search(r"^names[ \t]*:[ \t]*(.*)$", text, flags=re.MULTILINE)
    if match is None:
        return None
    inline = match.group(1).split("#", 1)[0].strip()
    if inline.startswith("["):
        body = inline.strip("[]")
        return [item.strip().strip("'\"") for item in body.split(",") if item.strip()]
    if inline:
        raise PromptFileError(
            f"{path}: cannot read 'names: {inline}'; write the names as a list or use classes.txt"
        )
    listed: list[str] = []
    indexed: dict[int, str] = {}
    for line in text[match.end() :].splitlines():
        if not line.strip() or line.strip().startswith("#"):
            continue
        if not line[0].isspace() and not line.startswith("-"):
            break
        item = line.split("#", 1)[0].strip()
        if item.startswith("-"):
            listed.append(item[1:].strip().strip("'\""))
        elif re.match(r"^\d+\s*:", item):
            number, name = item.split(":", 1)
            indexed[int(number)] = name.strip().strip("'\"")
    if indexed:
        return [indexed.get(i, f"class_{i}") for i in range(max(indexed) + 1)]
    return listed


def yolo_class_names(folder: Path) -> list[str]:
    """Class names for a YOLO label folder (see the module docstring), or ``[]`` when none are found."""
    for directory in (folder, folder.parent):
        for name in YOLO_NAME_FILES:
            candidate = directory / name
            if not candidate.is_file():
                continue
            try:
                if candidate.suffix in (".yaml", ".yml"):
                    names = _yaml_names(candidate)
                    if names is None:
                        continue
                    return names
                lines = candidate.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise PromptFileError(f"cannot read class names from {candidate}: {exc}") from None
            return [line.strip() for line in lines if line.strip()]
    return []


def read_yolo_folder(folder: Path) -> PromptSet:
    """Boxes of a folder of YOLO ``.txt`` label files, keyed by file stem, normalised to the image size."""
    names = yolo_class_names(folder)
    prompts = PromptSet("boxes", key_kind="stem", source=folder)
    prompts.categories.extend(names)
    files = sorted(p for p in folder.glob("*.txt") if p.name not in YOLO_NAME_FILES)
    if not files:
        raise PromptFileError(f"{folder}: no YOLO label files (*.txt) in this folder")
    for file in files:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise PromptFileError(f"cannot read {file}: {exc}") from None
        prompts.by_key.setdefault(file.stem, [])
        for number, line in enumerate(lines, start=1):
            values = line.split()
            if not values:
                continue
            where = f"{file}:{number}"
            if len(values) < 5 or (len(values) > 6 and len(values) % 2 == 0):
                raise PromptFileError(
                    f"{where}: expected 'class cx cy w h [score]' or 'class x1 y1 x2 y2 ...', "
                    f"got {line.strip()!r}"
                )
            if not values[0].isdigit():
                raise PromptFileError(f"{where}: the class must be a whole number, got {values[0]!r}")
            index = int(values[0])
            category = names[index] if index < len(names) else f"class_{index}"
            numbers = [_number(v, where, "coordinates") for v in values[1:]]
            score = None
            if len(values) <= 6:
                cx, cy, w, h = numbers[:4]
                score = numbers[4] if len(numbers) == 5 else None
                box = _ordered(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
            else:
                xs, ys = numbers[0::2], numbers[1::2]
                box = (min(xs), min(ys), max(xs), max(ys))
            prompts.add(file.stem, BoxPrompt(box, category, score, where, normalized=True))
    return prompts


def _point_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(where, row)`` pairs with keys image, x, y, label and optional object, category."""
    if path.suffix.lower() == ".csv":
        rows, _ = _open_csv(path, ("image", "x", "y", "label"))
        return [(f"{path}:{line}", row) for line, row in enumerate(rows, start=2)]
    data = _load_json(path)
    if isinstance(data, dict):
        out = []
        for image, items in data.items():
            if not isinstance(items, list):
                raise PromptFileError(f"{path}: the points of {image!r} must be a list")
            for i, item in enumerate(items):
                where = f"{path} {image!r}[{i}]"
                out.append((where, {**_point_object(item, where, "x, y, label"), "image": image}))
        return out
    if isinstance(data, list):
        return [
            (f"{path}[{i}]", _point_object(item, f"{path}[{i}]", "image, x, y, label"))
            for i, item in enumerate(data)
        ]
    raise PromptFileError(f"{path}: expected a list of points or a mapping from image to points")


def _point_object(item: Any, where: str, fields: str) -> dict[str, Any]:
    """A point entry of a JSON file, which must be an object (PromptFileError naming it otherwise)."""
    if not isinstance(item, dict):
        shown = json.dumps(item)  # read from JSON: it can be written back
        raise PromptFileError(
            f"{where}: a point must be an object with {fields} (and optionally object, category), "
            f"got {shown[:80]}"
        )
    return item


def read_point_prompts(path: str | Path, default_category: str = DEFAULT_CATEGORY) -> PromptSet:
    """Read point prompts from a CSV or JSON file (see the module docstring); an object whose rows name
    no category gets ``default_category``."""
    path = Path(path)
    if not path.is_file():
        raise PromptFileError(f"point file {path} does not exist")
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for row_number, (where, row) in enumerate(_point_rows(path)):
        image = str(row.get("image") or "").strip()
        if not image:
            raise PromptFileError(f"{where}: field 'image' is missing or empty")
        x, y = _number(row.get("x"), where, "x"), _number(row.get("y"), where, "y")
        label_text = str(row.get("label", "")).strip()
        if label_text not in ("0", "1", "0.0", "1.0"):
            raise PromptFileError(
                f"{where}: field 'label' must be 1 (positive) or 0 (negative), got {label_text!r}"
            )
        object_id = str(row.get("object") if row.get("object") not in (None, "") else f"row{row_number}")
        group = groups.setdefault(
            (image, object_id), {"points": [], "labels": [], "category": "", "where": where}
        )
        group["points"].append((x, y))
        group["labels"].append(int(float(label_text)))
        category = str(row.get("category") or "").strip()
        if category and not group["category"]:
            group["category"] = category
    prompts = PromptSet("points", key_kind="path", source=path)
    for (image, object_id), group in groups.items():
        prompt = PointPrompt(
            tuple(group["points"]),
            tuple(group["labels"]),
            group["category"] or default_category,
            object_id,
            group["where"],
        )
        prompts.add(image, prompt)
    return prompts
