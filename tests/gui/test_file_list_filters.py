"""The file list's filters: the text filter matches image names only, and stepping through a filtered
list stays fast on a large project."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from efficientsam_studio.annotations.document import Category, Document, ImageRecord, ImageStatus, Instance
from efficientsam_studio.gui.panels.files import FilesPanel
from efficientsam_studio.gui.session import Session


def _document(images: int, instances_per_image: int = 0) -> Document:
    document = Document()
    records = [ImageRecord(i + 1, f"img_{i:05d}.png", 32, 24) for i in range(images)]
    category = Category(1, "thing", "#ff0000")
    mask = np.zeros((24, 32), bool)
    mask[2:6, 3:9] = True
    instances = []
    for record in records:
        for _ in range(instances_per_image):
            instances.append(Instance.from_mask(len(instances) + 1, record.id, category.id, mask))
    document.load_records(records, [category], instances)
    return document


def test_the_name_filter_ignores_the_instance_count(qtbot):
    document = _document(12, instances_per_image=3)  # every row reads "img_0000N.png  (3)"
    panel = FilesPanel(Session(document, Path(".")))
    qtbot.addWidget(panel)
    panel.text_filter.setText("3")
    shown = [panel.proxy.index(row, 0).data() for row in range(panel.proxy.rowCount())]
    assert shown == ["img_00003.png  (3)"]
    panel.text_filter.setText("IMG_0001")  # case does not matter
    assert panel.proxy.rowCount() == 2  # img_00010, img_00011


def test_stepping_past_many_hidden_images_takes_linear_time(qtbot):
    count = 30_000
    document = _document(count)
    session = Session(document, Path("."))
    panel = FilesPanel(session)
    qtbot.addWidget(panel)
    images = document.images
    for image in (images[0], images[-1]):
        document.replace_image(ImageRecord(image.id, image.path, 32, 24, ImageStatus.DONE))
    panel.status_filter.setCurrentIndex(panel.status_filter.findData(ImageStatus.DONE.value))
    session.set_current_image(images[0].id)
    start = time.perf_counter()
    assert session.step_image(1, panel.proxy.accepts_image)  # skips 29,998 hidden images
    assert session.step_image(-1, panel.proxy.accepts_image)
    elapsed = time.perf_counter() - start
    assert session.current_image_id == images[0].id
    # a row lookup by list scan makes this quadratic (tens of seconds); by dict, well under a second
    assert elapsed < 3.0, f"two steps took {elapsed:.2f} s"
