"""Output names of exported images: one file per image even where two images share a file stem."""

from __future__ import annotations

from efficientsam_studio.annotations.document import ImageRecord
from efficientsam_studio.annotations.formats.common import ExportReport, output_names

from .conftest import H, W


def test_unique_stems_keep_their_relative_path_without_suffix():
    images = [ImageRecord(1, "a.png", W, H), ImageRecord(2, "sub/b.jpeg", W, H), ImageRecord(3, "c", W, H)]
    report = ExportReport()
    assert output_names(images, report) == {1: "a", 2: "sub/b", 3: "c"}
    assert report.renamed == [] and "renamed" not in report.summary()


def test_stems_that_differ_only_in_case_or_clash_with_a_renamed_one_stay_distinct():
    images = [
        ImageRecord(n, path, W, H)
        for n, path in enumerate(("x.png", "X.jpg", "x_png.tif", "c/y.PNG", "c/y.png"), start=1)
    ]
    report = ExportReport()
    names = output_names(images, report)
    assert names == {1: "x_png_2", 2: "X_jpg", 3: "x_png", 4: "c/y_PNG", 5: "c/y_png_2"}
    assert len({name.casefold() for name in names.values()}) == len(images)
