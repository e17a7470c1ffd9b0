"""``efsam-studio label``: a damaged project (--recover), outputs that must not be written, an unwritable
folder, and detection results that name images by id only."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import cv2
import pytest

from efficientsam_studio.annotations.project import Project, load_document
from efficientsam_studio.cli.main import main
from tests.batch.conftest import SCENES, scene_image


def _label(folder: Path, boxes_csv: Path, *extra: str) -> int:
    """``efsam-studio label FOLDER --out labels --boxes BOXES_CSV *extra``."""
    return main(["label", str(folder), "--out", "labels", "--boxes", str(boxes_csv), *extra])


def _labelled_project(folder: Path, boxes_csv: Path) -> Path:
    assert _label(folder, boxes_csv, "--save-every", "1") == 0
    return folder / "labels.efsam.json"


def test_damaged_project_names_a_recover_option_that_label_has(folder, boxes_csv, fake_model, capsys):
    path = _labelled_project(folder, boxes_csv)
    path.write_text("{ damaged")
    capsys.readouterr()
    assert _label(folder, boxes_csv) == 2
    err = capsys.readouterr().err
    assert "not valid JSON" in err and "--recover" in err

    rc = _label(folder, boxes_csv, "--recover")
    out = capsys.readouterr().out
    assert rc == 0
    assert "last good version" in out and ".corrupt-" in out
    assert load_document(path).instance_count == 5  # the .bak's labels, saved over the damaged file
    corrupt = list(folder.glob("labels.efsam.json.corrupt-*"))
    assert len(corrupt) == 1 and corrupt[0].read_text() == "{ damaged"


def test_recover_on_a_sound_project_changes_nothing(folder, boxes_csv, fake_model, capsys):
    path = _labelled_project(folder, boxes_csv)
    before = path.read_bytes()
    assert _label(folder, boxes_csv, "--recover") == 0
    assert "last good version" not in capsys.readouterr().out
    assert path.read_bytes() == before and not list(folder.glob("*.corrupt-*"))


@pytest.mark.parametrize("suffix", ["", ".bak", ".lock"])
def test_coco_output_never_replaces_the_project_files(folder, boxes_csv, fake_model, capsys, suffix):
    path = _labelled_project(folder, boxes_csv)
    before = path.read_bytes()
    target = path.with_name(path.name + suffix)
    rc = _label(folder, boxes_csv, "--overwrite", "--coco", str(target))
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and str(target) in err
    assert path.read_bytes() == before  # refused before labelling: nothing was replaced
    assert load_document(path).instance_count == 5


def test_coco_output_in_a_missing_file_path_is_refused_before_labelling(
    folder, boxes_csv, tmp_path, fake_model, capsys
):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    rc = _label(folder, boxes_csv, "--coco", str(notes / "coco.json"))
    assert rc == 2 and "not a folder" in capsys.readouterr().err
    assert fake_model.encodes == 0 and not (folder / "labels.efsam.json").exists()


def test_a_read_only_image_folder_is_a_clear_error(folder, boxes_csv, fake_model, capsys, monkeypatch):
    real_access = os.access

    def access(path, mode, **kwargs):
        if mode & os.W_OK and Path(path).resolve() == folder.resolve():
            return False
        return real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    assert _label(folder, boxes_csv) == 2
    err = capsys.readouterr().err
    assert str(folder) in err and "Traceback" not in err
    assert fake_model.encodes == 0


def test_a_lock_file_that_cannot_be_made_is_a_clear_error(folder, boxes_csv, fake_model, capsys, monkeypatch):
    path = _labelled_project(folder, boxes_csv)
    capsys.readouterr()
    real_open = os.open

    def refuse(target, *args, **kwargs):
        if os.fspath(target).endswith(".lock"):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(target))
        return real_open(target, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    assert _label(folder, boxes_csv) == 2
    err = capsys.readouterr().err
    assert f"{path}.lock" in err and "Permission denied" in err and "Traceback" not in err


def _detections(tmp_path: Path, boxes: dict[int, list[int]]) -> Path:
    """COCO detection results, one box of category 1 per image id."""
    path = tmp_path / "dets.json"
    rows = [{"image_id": i, "category_id": 1, "bbox": box, "score": 0.9} for i, box in boxes.items()]
    path.write_text(json.dumps(rows))
    return path


def test_detections_by_image_id_without_images_json_ask_for_it(folder, tmp_path, fake_model, capsys):
    detections = _detections(tmp_path, {3: [10, 10, 40, 30], 4: [10, 10, 40, 30]})
    assert main(["label", str(folder), "--out", "labels", "--boxes", str(detections)]) == 2
    err = capsys.readouterr().err
    assert "--images-json" in err and "3, 4" in err
    assert fake_model.encodes == 0 and not (folder / "labels.efsam.json").exists()


def test_detections_partly_matched_by_number_hint_at_images_json(folder, tmp_path, fake_model, capsys):
    cv2.imwrite(str(folder / "7.png"), cv2.cvtColor(scene_image(SCENES["img1.png"]), cv2.COLOR_RGB2BGR))
    detections = _detections(tmp_path, {7: [10, 10, 50, 40], 8: [10, 10, 40, 30]})
    assert main(["label", str(folder), "--out", "labels", "--boxes", str(detections)]) == 0
    out = capsys.readouterr().out
    assert "1 labelled" in out and "--images-json" in out
    with Project.open(folder / "labels.efsam.json") as project:
        assert project.document.instance_count == 1


def test_refine_small_boxes_needs_box_prompts(tmp_path, capsys):
    from efficientsam_studio.cli.main import main as cli_main

    folder = tmp_path / "photos"
    folder.mkdir()
    assert cli_main(["label", str(folder), "--out", "labels", "--everything", "--refine-small-boxes"]) == 2
    err = capsys.readouterr().err
    assert "--refine-small-boxes works on box prompts" in err and err.count("\n") == 1
