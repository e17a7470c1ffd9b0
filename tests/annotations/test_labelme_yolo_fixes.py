"""labelme rasterisation and metadata, crowd regions in YOLO and labelme, bounding-box crops in exports."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from efficientsam_studio.annotations import masks
from efficientsam_studio.annotations.document import Category, Document, ImageRecord, Instance
from efficientsam_studio.annotations.errors import FormatError
from efficientsam_studio.annotations.formats.labelme import export_labelme, import_labelme
from efficientsam_studio.annotations.formats.png_masks import export_png_masks
from efficientsam_studio.annotations.formats.yolo import export_yolo

from .conftest import H, W, disk, ring, two_parts


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    cv2.imwrite(str(root / "a.png"), np.zeros((H, W, 3), np.uint8))
    return root


def labelme_file(path, shapes, image="a.png"):
    path.write_text(
        json.dumps(
            {
                "version": "5.5.0",
                "flags": {},
                "shapes": shapes,
                "imagePath": image,
                "imageData": None,
                "imageHeight": H,
                "imageWidth": W,
            }
        )
    )


def shape(label, points, kind="polygon", **extra):
    return {"label": label, "shape_type": kind, "points": points, "group_id": None, "flags": {}, **extra}


def imported(folder, shapes, image="a.png"):
    labelme_file(folder / "a.json", shapes, image)
    document = Document()
    import_labelme(document, folder / "a.json", image_root=folder)
    return document


def one_image(*instances: tuple[np.ndarray, dict]) -> Document:
    document = Document()
    document.add_image(ImageRecord(document.allocate_id("image"), "a.png", W, H))
    document.add_category(Category(document.allocate_id("category"), "cell", "#ff0000"))
    for mask, fields in instances:
        document.add_instance(Instance.from_mask(document.allocate_id("instance"), 1, 1, mask, **fields))
    return document


def closed_convex_polygon(vertices, margin=0.0):
    """Pixels whose centre (integer coordinates) lies inside a convex polygon given counter-clockwise in
    image coordinates, its edges included, or within ``margin`` pixels outside an edge."""
    ys, xs = np.mgrid[0:H, 0:W].astype(float)
    keep = np.ones((H, W), bool)
    for (x0, y0), (x1, y1) in zip(vertices, vertices[1:] + vertices[:1], strict=True):
        cross = (x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0)
        keep &= cross >= -margin * np.hypot(x1 - x0, y1 - y0) - 1e-9
    return keep


# ------------------------------------------------------------------------------------ rasterisation
@pytest.mark.parametrize(
    "points, pixels",
    [
        ([[10, 10], [30, 10], [30, 25], [10, 25]], 21 * 16),  # as labelme's rectangle with these corners
        ([[2, 2], [20, 2], [2, 20]], sum(range(1, 20))),  # x, y >= 2, x + y <= 22: 19 + 18 + ... + 1
        ([[10.4, 9.6], [30.2, 10.49], [29.5, 25.3], [9.6, 24.8]], 21 * 16),  # vertices rounded to pixels
    ],
)
def test_polygons_import_with_their_boundary_pixels_as_labelme_draws_them(folder, points, pixels):
    (instance,) = imported(folder, [shape("x", points)]).iter_instances()
    vertices = [[int(np.floor(x + 0.5)), int(np.floor(y + 0.5))] for x, y in points]
    assert instance.area == pixels
    assert np.array_equal(instance.mask(), closed_convex_polygon(vertices))


def test_a_slanted_triangle_covers_its_inside_and_outline_pixels_only(folder):
    vertices = [[5, 5], [40, 12], [12, 33]]
    (instance,) = imported(folder, [shape("x", vertices)]).iter_instances()
    mask = instance.mask()
    assert not (closed_convex_polygon(vertices) & ~mask).any()  # every pixel inside or on an edge
    assert not (mask & ~closed_convex_polygon(vertices, margin=0.5)).any()  # the outline: half a pixel


def test_a_polygon_imports_as_the_rectangle_with_the_same_corners(folder):
    corners = [[10, 10], [30, 25]]
    document = imported(
        folder, [shape("p", [[10, 10], [30, 10], [30, 25], [10, 25]]), shape("r", corners, "rectangle")]
    )
    polygon, rectangle = document.iter_instances()
    assert np.array_equal(polygon.mask(), rectangle.mask())


def blobs() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    found = [disk(20, 20, 8), two_parts(), disk(0, 0, 6) | disk(W - 1, H - 1, 4)]
    for _ in range(30):  # jagged shapes with spurs, one-pixel necks and lines, and single pixels
        found.append(rng.random((H, W)) < 0.15)
        found.append(
            cv2.resize(
                (rng.random((12, 16)) < 0.5).astype(np.uint8), (W, H), interpolation=cv2.INTER_NEAREST
            ).astype(bool)
        )
    return found


def filled(mask: np.ndarray) -> np.ndarray:
    """The mask with its holes (background not 4-connected to the border) filled."""
    padded = np.pad(mask.astype(np.uint8), 1)
    cv2.floodFill(padded, None, (0, 0), 2)
    return (padded != 2)[1:-1, 1:-1]


def test_polygons_exported_at_tolerance_0_lie_on_pixel_centres_and_import_as_the_same_mask(folder, tmp_path):
    document = one_image(*((mask, {}) for mask in blobs()))
    out = tmp_path / "lm"
    export_labelme(document, out, image_root=folder, polygons="always", tolerance=0)
    points = np.array([p for s in json.loads((out / "a.json").read_text())["shapes"] for p in s["points"]])
    assert np.array_equal(points, np.rint(points))
    target = Document()
    target.add_image(ImageRecord(1, "a.png", W, H))
    import_labelme(target, out, image_root=folder)
    assert target.instance_count == document.instance_count
    for original, back in zip(document.iter_instances(), target.iter_instances(), strict=True):
        assert np.array_equal(filled(original.mask()), back.mask())


def test_labelme_polygons_with_a_tolerance_stay_within_it(folder, tmp_path):
    document = one_image((disk(30, 24, 15), {}), (two_parts(), {}))
    export_labelme(document, tmp_path / "lm", image_root=folder, tolerance=1.0)
    target = Document()
    import_labelme(target, tmp_path / "lm", image_root=folder)
    for original, back in zip(document.iter_instances(), target.iter_instances(), strict=True):
        assert masks.boundary_distance(original.mask(), back.mask()) <= 1.0 + 1.0


# ------------------------------------------------------------------------------- crowd and metadata
def test_yolo_leaves_crowd_regions_out_and_reports_them(folder, tmp_path):
    document = one_image((disk(20, 20, 8), {}), (disk(45, 25, 10), {"iscrowd": True}))
    report = export_yolo(document, tmp_path / "yolo", image_root=folder, images="none")
    assert len((tmp_path / "yolo" / "labels" / "a.txt").read_text().splitlines()) == 1
    assert report.instances == 1 and [i for i, _ in report.skipped] == [2]
    assert "crowd" in report.skipped[0][1] and "1 skipped" in report.summary()


def test_labelme_keeps_crowd_regions_score_and_attributes(folder, tmp_path):
    document = one_image(
        (disk(20, 20, 8), {"score": 0.75, "attributes": {"occluded": True}}),
        (two_parts(), {"iscrowd": True}),
        (ring(40, 24, 12, 5), {"score": 0.5}),
    )
    export_labelme(document, tmp_path / "lm", image_root=folder)
    shapes = json.loads((tmp_path / "lm" / "a.json").read_text())["shapes"]
    assert [s["flags"] for s in shapes] == [{}, {"iscrowd": True}, {"iscrowd": True}, {}]
    target = Document()
    import_labelme(target, tmp_path / "lm", image_root=folder)
    fields = [(i.score, i.attributes, i.iscrowd) for i in target.iter_instances()]
    assert fields == [(0.75, {"occluded": True}, False), (None, {}, True), (0.5, {}, False)]


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"score": 1.5}, r"shapes\[0\]: field 'score' must be a number from 0 to 1"),
        ({"score": "0.9"}, "field 'score'"),
        ({"score": float("nan")}, "field 'score'"),
        ({"score": True}, "field 'score'"),
        ({"attributes": ["occluded"]}, r"shapes\[0\]: field 'attributes' must be an object"),
        ({"flags": {"iscrowd": 1}}, r"field 'flags.iscrowd' must be true or false"),
        ({"group_id": [1]}, r"a.json: shapes\[0\]: field 'group_id' must be an integer or null; got \[1\]"),
        ({"group_id": "1"}, "field 'group_id'"),
        ({"group_id": True}, "field 'group_id'"),
    ],
)
def test_bad_shape_fields_are_refused_naming_file_and_shape(folder, extra, message):
    labelme_file(folder / "a.json", [shape("x", [[1, 1], [9, 1], [9, 9]], **extra)])
    document = Document()
    with pytest.raises(FormatError, match=message):
        import_labelme(document, folder, image_root=folder)
    assert document.images == [] and document.categories == []


def test_shapes_of_one_group_unite_their_fields(folder):
    document = imported(
        folder,
        [
            shape("x", [[1, 1], [9, 1], [9, 9]], group_id=4, score=0.25, attributes={"a": 1}),
            shape(
                "x",
                [[20, 1], [29, 1], [29, 9]],
                group_id=4,
                score=0.5,
                attributes={"a": 2, "b": 3},
                flags={"iscrowd": True},
            ),
        ],
    )
    (instance,) = document.iter_instances()
    assert (instance.score, instance.attributes, instance.iscrowd) == (0.25, {"a": 1, "b": 3}, True)


# ------------------------------------------------------------------------------------- image paths
@pytest.mark.parametrize("image_path", ["", ".", "sub/", "sub", "..\\", "a.png/.."])
def test_an_image_path_that_names_no_image_file_is_refused(folder, image_path):
    (folder / "sub").mkdir()
    labelme_file(folder / "a.json", [shape("x", [[1, 1], [9, 1], [9, 9]])], image=image_path)
    document = Document()
    with pytest.raises(FormatError, match=r"a.json: field 'imagePath' must name an image file"):
        import_labelme(document, folder, image_root=folder)
    assert document.images == []


def test_a_windows_absolute_image_path_matches_by_name_or_is_skipped(folder):
    document = Document()
    document.add_image(ImageRecord(document.allocate_id("image"), "a.png", W, H))
    labelme_file(folder / "a.json", [shape("x", [[1, 1], [9, 1], [9, 9]])], image="C:\\data\\a.png")
    assert import_labelme(document, folder / "a.json", image_root=folder).instances_added == 1
    labelme_file(folder / "b.json", [shape("x", [[1, 1], [9, 1], [9, 9]])], image="D:\\other\\b.png")
    report = import_labelme(document, folder / "b.json", image_root=folder)
    assert report.instances_added == 0 and [i.path for i in document.images] == ["a.png"]
    assert "outside the project folder" in report.skipped[0][1]


# ------------------------------------------------------------------------------ bounding-box crops
def test_decode_crop_is_the_mask_cut_to_its_bbox():
    rng = np.random.default_rng(3)
    for mask in (
        disk(0, 0, 5),
        disk(W - 1, H - 1, 7),
        two_parts(),
        rng.random((H, W)) < 0.3,
        np.ones((H, W), bool),
    ):
        instance = Instance.from_mask(1, 1, 1, mask)
        crop, x, y = masks.decode_crop(instance.rle)
        _, _, w, h = (int(v) for v in instance.bbox)
        assert crop.shape == (h, w) and np.array_equal(crop, mask[y : y + h, x : x + w])
        runs = Instance.from_rle(1, 1, 1, {"size": [H, W], "counts": masks.run_lengths(instance.rle)})
        assert np.array_equal(masks.decode_crop(runs.rle)[0], crop)


def test_png_masks_and_yolo_lines_equal_full_size_painting_and_tracing(folder, tmp_path):
    document = one_image(
        (disk(20, 20, 8), {}), (ring(40, 24, 12, 5), {}), (two_parts(), {}), (disk(W - 1, 0, 9), {})
    )
    export_png_masks(document, tmp_path / "png")
    labels = np.zeros((H, W), np.uint16)
    for n, instance in enumerate(document.iter_instances(), start=1):
        labels[instance.mask()] = n
    assert np.array_equal(
        cv2.imread(str(tmp_path / "png" / "instances" / "a.png"), cv2.IMREAD_UNCHANGED), labels
    )
    export_yolo(document, tmp_path / "yolo", image_root=folder, images="none", tolerance=0.5)
    lines = (tmp_path / "yolo" / "labels" / "a.txt").read_text().splitlines()
    expected = [
        " ".join(f"{v:.6f}" for v in (r.points / (W, H)).clip(0, 1).reshape(-1))
        for i in document.iter_instances()
        for r in masks.mask_to_polygons(i.mask(), "all", 0.5)
    ]
    assert [line.split(" ", 1)[1] for line in lines] == expected


def test_image_paths_find_project_images_as_the_other_importers_do(folder):
    document = Document()
    for path in ("data/val/x.png", "data/train/x.png", "images/y.png"):
        document.add_image(ImageRecord(document.allocate_id("image"), path, W, H))
    (folder / "labels").mkdir()
    triangle = [shape("x", [[1, 1], [9, 1], [9, 9]])]
    labelme_file(folder / "labels" / "val.json", triangle, image="../val/x.png")  # the path's tail
    labelme_file(folder / "labels" / "y.json", triangle, image="y.png")  # moved away from its image
    labelme_file(folder / "labels" / "x.json", triangle, image="x.png")  # two images of that name
    report = import_labelme(document, folder / "labels", image_root=folder)
    assert [len(document.instances_of(i.id)) for i in document.images] == [1, 0, 1, 1]
    assert [i.path for i in document.images][3:] == ["labels/x.png"]
    assert report.missing_images == ["labels/x.png"]


def test_a_label_of_spaces_is_refused_before_anything_is_added(folder):
    document = Document()
    document.add_image(ImageRecord(document.allocate_id("image"), "a.png", W, H))
    labelme_file(folder / "a.json", [shape("   ", [[1, 1], [9, 1], [9, 9]])])
    with pytest.raises(FormatError, match="label"):
        import_labelme(document, folder / "a.json", image_root=folder)
    assert not document.categories and not list(document.iter_instances())
