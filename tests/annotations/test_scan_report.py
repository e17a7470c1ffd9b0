"""A project remembers what its folder scan left out, so the app can name the unreadable files."""

from __future__ import annotations

import cv2
import numpy as np

from efficientsam_studio.annotations.project import Project


def make_folder(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "good.png"), np.zeros((8, 12, 3), np.uint8))
    (folder / "empty.png").write_bytes(b"")
    (folder / "noise.jpg").write_bytes(bytes(range(256)) * 4)
    return folder


def test_create_keeps_the_scan_report_with_the_unreadable_files(tmp_path):
    with Project.create(make_folder(tmp_path)) as project:
        assert [image.path for image in project.document.images] == ["good.png"]
        report = project.last_scan
        assert [path for path, _ in report.unreadable] == ["empty.png", "noise.jpg"]
        assert all("cannot load image" in reason for _, reason in report.unreadable)


def test_open_reports_the_unreadable_files_again(tmp_path):
    folder = make_folder(tmp_path)
    Project.create(folder).close()
    with Project.open(folder) as project:
        assert [path for path, _ in project.last_scan.unreadable] == ["empty.png", "noise.jpg"]
    with Project.open(folder, scan=False) as project:
        assert project.last_scan is None
