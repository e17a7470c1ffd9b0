"""File → Import annotations: COCO and labelme files into the open project, as one undo step; a
malformed file changes nothing; the file is read off the GUI thread; busy projects refuse."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from PySide6.QtCore import Qt

from efficientsam_studio.annotations.category_commands import AddCategory
from efficientsam_studio.annotations.document import ImageStatus
from efficientsam_studio.annotations.project import load_document
from efficientsam_studio.gui import import_flow
from efficientsam_studio.gui.import_flow import DocumentState
from tests.gui.conftest import FakePredictor, ready_window

SQUARE = [10, 10, 40, 10, 40, 40, 10, 40]  # a 31 x 31 pixel polygon on the 96 x 64 photos
TRIANGLE = [50, 5, 90, 5, 70, 50]


def coco_data() -> dict:
    return {
        "images": [
            {"id": 10, "file_name": "chelsea.png", "width": 96, "height": 64, "status": "done"},
            {"id": 11, "file_name": "coffee.png", "width": 96, "height": 64},
        ],
        "categories": [{"id": 1, "name": "cat", "color": "#ff0000"}, {"id": 2, "name": "cup"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 1, "segmentation": [SQUARE], "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 2, "segmentation": [TRIANGLE], "iscrowd": 0},
            {"id": 3, "image_id": 11, "category_id": 2, "segmentation": [SQUARE], "iscrowd": 0},
            {"id": 4, "image_id": 11, "category_id": 1, "bbox": [1, 1, 5, 5], "iscrowd": 0},
        ],
    }


def write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def labelme_data(image_path: str, shapes: list[tuple[str, str, list]]) -> dict:
    return {
        "version": "5.5.0",
        "flags": {},
        "shapes": [
            {"label": label, "points": points, "shape_type": kind, "group_id": None, "flags": {}}
            for label, kind, points in shapes
        ],
        "imagePath": image_path,
        "imageData": None,
        "imageHeight": 64,
        "imageWidth": 96,
    }


@pytest.fixture
def window(qtbot, make_window, image_folder):
    return ready_window(qtbot, make_window, image_folder, FakePredictor())


def open_dialog(qtbot, window):
    qtbot.wait(1)  # qtbot's first wait sets up Qt types: not while the worker thread starts
    window.action("import").trigger()
    dialog = window.importer.dialog
    assert dialog is not None and dialog.isVisible()
    return dialog


def run_dialog(qtbot, window, fmt: str, source: Path):
    """Import ``source`` through the dialog, as the user does; returns the dialog once the file is read."""
    dialog = open_dialog(qtbot, window)
    dialog.set_format(fmt)
    dialog.source.setText(str(source))
    dialog.import_button.click()
    assert dialog.running  # the file is read in the worker thread
    qtbot.waitUntil(lambda: not dialog.running, timeout=20_000)
    return dialog


def image_id(window, path: str) -> int:
    return window.workspace.project.document.image_by_path(path).id


def file_row_text(window, path: str) -> str:
    model = window.workspace.files.model
    return model.index(model.row_of(image_id(window, path))).data(Qt.ItemDataRole.DisplayRole)


def category_rows(window) -> list[str]:
    panel = window.workspace.categories
    return [panel.list.item(n).text() for n in range(panel.list.count())]


def test_import_coco_into_the_open_project(qtbot, window, tmp_path, message_boxes):
    ws = window.workspace
    document = ws.session.document
    chelsea = image_id(window, "chelsea.png")
    ws.session.set_current_image(chelsea)
    qtbot.waitUntil(lambda: ws.images.shown_id == chelsea, timeout=10_000)
    before = DocumentState.of(document)
    steps = ws.session.undo_stack.count()
    source = write_json(tmp_path / "labels" / "instances.json", coco_data())

    run_dialog(qtbot, window, "coco", source)

    assert window.importer.dialog is None  # closes after a good import
    assert [c.name for c in document.categories] == ["cat", "cup"]
    assert document.category_by_name("cat").colour == "#ff0000"
    assert document.instance_count == 3
    assert len(document.instances_of(chelsea)) == 2
    assert document.image(chelsea).status == ImageStatus.DONE and document.image(chelsea).coco_id == 10
    # the views: categories panel, file list counts, the canvas and the instances panel of the shown image
    assert category_rows(window) == ["1. cat", "2. cup"]
    assert file_row_text(window, "chelsea.png").endswith("(2)")
    assert file_row_text(window, "coffee.png").endswith("(1)")
    assert set(ws.layer._slots) == {i.id for i in document.instances_of(chelsea)}
    assert ws.instances.list.count() == 2
    assert ws.session.current_category is not None
    # one undo step, and the report as the command line prints it
    assert ws.session.undo_stack.count() == steps + 1
    report = window.importer.outcome.report
    assert report.instances_added == 3 and report.categories_added == ["cat", "cup"]
    assert [what for what, _ in report.skipped] == ["annotation 4"]  # a box without a mask
    (kind, _, text), *_ = [c for c in message_boxes.calls if c[1] == "Import done"]
    assert kind == "information" and report.summary() in text and "Undo" in text
    assert "Imported 3 instances" in window.status.currentMessage()
    after = DocumentState.of(document)

    # saved like any edit (autosave)
    qtbot.waitUntil(lambda: not document.dirty, timeout=5000)
    saved = load_document(ws.project.path)
    assert saved.instance_count == 3 and [c.name for c in saved.categories] == ["cat", "cup"]

    # undo brings back exactly the previous records; redo exactly the imported ones
    assert ws.session.undo()
    assert before.matches(document) and document.dirty
    assert all(document.next_ids[k] >= after.next_ids[k] for k in after.next_ids)  # ids never reused
    assert "1. cat" not in category_rows(window) and "2. cup" not in category_rows(window)
    assert file_row_text(window, "chelsea.png") == "chelsea.png"
    assert ws.layer._slots == {} and ws.instances.list.count() == 0
    assert ws.session.current_category is None
    assert ws.session.redo()
    assert after.matches(document)
    assert ws.instances.list.count() == 2 and file_row_text(window, "chelsea.png").endswith("(2)")


def test_import_labelme_folder_adds_images_and_categories(
    qtbot, window, image_folder, tmp_path, message_boxes
):
    ws = window.workspace
    document = ws.session.document
    before = DocumentState.of(document)
    new = np.full((64, 96, 3), 128, np.uint8)
    cv2.imwrite(str(image_folder / "new.png"), new)  # not in the project yet: the import adds it
    labels = tmp_path / "labels"
    write_json(
        labels / "chelsea.json",
        labelme_data(
            "../photos/chelsea.png",
            [
                ("cat", "polygon", [[10, 10], [40, 10], [40, 40], [10, 40]]),
                ("tag", "rectangle", [[50, 5], [90, 30]]),
                ("eye", "point", [[5, 5]]),
            ],
        ),
    )
    write_json(
        labels / "sub" / "new.json",
        labelme_data(
            "../../photos/new.png",
            [
                ("cat", "circle", [[48, 32], [58, 32]]),
            ],
        ),
    )
    xany = labelme_data("../photos/coffee.png", [("cup", "polygon", [[10, 10], [40, 10], [40, 40]])])
    xany["shapes"][0].update(description="", difficult=False, attributes={}, kie_linking=[], score=None)
    write_json(labels / "coffee.json", xany)  # as X-AnyLabeling writes it
    write_json(labels / "notes.json", {"comment": "not a labelme file"})

    run_dialog(qtbot, window, "labelme", labels)

    assert window.importer.dialog is None
    assert sorted(c.name for c in document.categories) == ["cat", "cup", "tag"]
    added = document.image_by_path("new.png")
    assert added is not None and len(document.instances_of(added.id)) == 1
    assert len(document.instances_of(image_id(window, "chelsea.png"))) == 2
    assert len(document.instances_of(image_id(window, "coffee.png"))) == 1
    assert ws.files.model.rowCount() == 4 and file_row_text(window, "new.png").endswith("(1)")
    report = window.importer.outcome.report
    assert report.instances_added == 4 and [image.path for image in report.images_added] == ["new.png"]
    skipped = " ".join(f"{what} {why}" for what, why in report.skipped)
    assert "notes.json" in skipped and "'point'" in skipped
    text = next(text for _, title, text in message_boxes.calls if title == "Import done")
    assert report.summary() in text

    # undo while the imported image is shown: the image goes, the view moves to one that stays
    ws.session.set_current_image(added.id)
    assert ws.session.undo()
    assert before.matches(document)
    assert ws.files.model.rowCount() == 3
    assert ws.session.current_image_id in {image.id for image in before.images}
    assert ws.session.redo()
    assert document.image_by_path("new.png") is not None and document.instance_count == 4


def test_malformed_file_changes_nothing(qtbot, window, tmp_path, message_boxes):
    ws = window.workspace
    document = ws.session.document
    before, revision, steps = DocumentState.of(document), document.revision, ws.session.undo_stack.count()
    data = coco_data()
    data["annotations"][2]["category_id"] = 99  # the first annotations are fine; this one is not
    source = write_json(tmp_path / "bad.json", data)

    dialog = run_dialog(qtbot, window, "coco", source)

    failures = [text for kind, title, text in message_boxes.calls if kind == "critical"]
    assert len(failures) == 1 and "99" in failures[0] and "unchanged" in failures[0]
    assert before.matches(document) and document.revision == revision and not document.dirty
    assert ws.session.undo_stack.count() == steps
    assert dialog.isVisible() and window.importer.dialog is dialog  # choose another file
    # not JSON at all, and a folder given as COCO: the same
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    dialog.source.setText(str(tmp_path / "broken.json"))
    dialog.import_button.click()
    qtbot.waitUntil(lambda: not dialog.running, timeout=10_000)
    dialog.source.setText(str(tmp_path))
    assert not dialog.start()
    failures = [text for kind, title, text in message_boxes.calls if kind == "critical"]
    assert "broken.json" in failures[1] and "is a folder" in failures[2]
    assert before.matches(document) and document.revision == revision
    dialog.reject()
    assert window.importer.dialog is None


@pytest.mark.parametrize("busy", ["batch_dialog", "export_dialog"])
def test_refused_while_a_batch_run_or_export_works(qtbot, window, busy, message_boxes):
    setattr(
        window,
        busy,
        SimpleNamespace(running=True, reject=lambda: None, stop=lambda: None, close=lambda: None),
    )
    try:
        window.action("import").trigger()
        warnings = [(title, text) for kind, title, text in message_boxes.calls if kind == "warning"]
        assert warnings and warnings[0][0] == "Cannot import now"
        assert ("batch run" if busy == "batch_dialog" else "export") in warnings[0][1]
        assert window.importer.dialog is None
    finally:
        setattr(window, busy, None)


def test_action_needs_an_open_project(qtbot, make_window):
    window = make_window(load=False)
    assert not window.action("import").isEnabled()
    assert window.action("import").shortcut().toString() == "Ctrl+I"


def test_browse_fills_the_source(qtbot, window, tmp_path, monkeypatch, message_boxes):
    from PySide6.QtWidgets import QFileDialog

    monkeypatch.setattr(
        QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(tmp_path / "a.json"), ""))
    )
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(tmp_path)))
    dialog = open_dialog(qtbot, window)
    dialog.set_format("coco")
    assert not dialog.folder_button.isEnabled()  # COCO is one file
    dialog.file_button.click()
    assert dialog.source.text() == str(tmp_path / "a.json")
    dialog.set_format("labelme")
    dialog.folder_button.click()
    assert dialog.source.text() == str(tmp_path)
    dialog.reject()
    assert window.importer.dialog is None


class Gate:
    """Holds the worker inside the import until ``open`` is set (``entered`` once it waits)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered, self.open = threading.Event(), threading.Event()
        real = import_flow.run_import

        def gated(*args, **kwargs):
            self.entered.set()
            self.open.wait(10)
            return real(*args, **kwargs)

        monkeypatch.setattr(import_flow, "run_import", gated)


@pytest.fixture
def gate(monkeypatch):
    gate = Gate(monkeypatch)
    yield gate
    gate.open.set()  # never leave a worker waiting


def start_gated(qtbot, window, gate, source: Path):
    dialog = open_dialog(qtbot, window)
    dialog.set_format("coco")
    dialog.source.setText(str(source))
    assert dialog.start()
    qtbot.waitUntil(gate.entered.is_set, timeout=5000)
    return dialog


def test_an_edit_while_the_file_is_read_is_kept_and_the_import_refused(
    qtbot, window, tmp_path, gate, message_boxes
):
    ws = window.workspace
    document = ws.session.document
    dialog = start_gated(qtbot, window, gate, write_json(tmp_path / "a.json", coco_data()))
    qtbot.wait(50)  # the GUI thread runs on while the worker reads
    assert ws.session.push(AddCategory(document, "mine", None))
    kept = DocumentState.of(document)
    gate.open.set()
    qtbot.waitUntil(lambda: not dialog.running, timeout=10_000)
    assert kept.matches(document) and [c.name for c in document.categories] == ["mine"]
    assert "Import not applied" in message_boxes.titles("warning")
    assert dialog.isVisible()
    dialog.reject()


def test_cancel_while_reading_drops_the_import(qtbot, window, tmp_path, gate, message_boxes):
    document = window.workspace.session.document
    before = DocumentState.of(document)
    dialog = start_gated(qtbot, window, gate, write_json(tmp_path / "a.json", coco_data()))
    dialog.reject()  # Cancel: waits for the worker, then closes
    assert dialog.running and "Cancelling" in dialog.status.text()
    gate.open.set()
    qtbot.waitUntil(lambda: window.importer.dialog is None, timeout=10_000)
    assert before.matches(document) and not message_boxes.titles("information")


def test_closing_the_project_while_reading_drops_the_import(qtbot, window, tmp_path, gate, message_boxes):
    ws = window.workspace
    path = ws.project.path
    start_gated(qtbot, window, gate, write_json(tmp_path / "a.json", coco_data()))
    threading.Timer(0.2, gate.open.set).start()  # the close waits for the worker
    assert window._close_workspace()
    assert window.workspace is None and window.importer.dialog is None
    assert load_document(path).categories == []


def many_squares(count: int) -> dict:
    data = coco_data()
    data["annotations"] = [
        {"id": n + 1, "image_id": 10, "category_id": 1, "segmentation": [SQUARE], "iscrowd": 0}
        for n in range(count)
    ]
    return data


def test_progress_is_shown_and_cancel_stops_the_reading_at_its_next_step(
    qtbot, window, tmp_path, monkeypatch, message_boxes
):
    document = window.workspace.session.document
    before = DocumentState.of(document)
    entered, resume, seen = threading.Event(), threading.Event(), []
    real = import_flow.run_import

    def held_at_first_step(fmt, source, root, state, progress):
        def watched(done, total):
            seen.append((done, total))
            if len(seen) == 1:
                entered.set()
                resume.wait(10)
            progress(done, total)  # raises once Cancel was pressed

        return real(fmt, source, root, state, watched)

    monkeypatch.setattr(import_flow, "run_import", held_at_first_step)
    dialog = open_dialog(qtbot, window)
    dialog.set_format("coco")
    dialog.source.setText(str(write_json(tmp_path / "many.json", many_squares(300))))
    assert dialog.start()
    try:
        qtbot.waitUntil(entered.is_set, timeout=10_000)
        dialog.reject()  # Cancel
    finally:
        resume.set()
    qtbot.waitUntil(lambda: window.importer.dialog is None, timeout=10_000)
    assert seen == [(64, 600)]  # stopped at the step after Cancel, not at the end of the file
    assert before.matches(document) and not message_boxes.titles("information")
