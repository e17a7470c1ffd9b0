"""A save snapshot freezes the document at one revision: edits after it do not reach its bytes."""

from __future__ import annotations

import json

import pytest

from efficientsam_studio.annotations.document import Category
from efficientsam_studio.annotations.errors import ProjectError
from efficientsam_studio.annotations.project import Project, encode_project


def test_a_snapshot_holds_the_document_as_it_was(tmp_path):
    project = Project.create(tmp_path, "p", scan=False)
    document = project.document
    document.add_category(Category(document.allocate_id("category"), "before", "#ff0000"))
    project.settings["note"] = {"kept": 1}
    snapshot = project.snapshot()
    expected = json.loads(encode_project(document, project.settings))
    revision = document.revision
    document.add_category(Category(document.allocate_id("category"), "after", "#00ff00"))
    project.settings["note"]["kept"] = 2
    pending = snapshot.encode()
    assert pending.revision == revision
    data = json.loads(pending.data)
    for record in (data, expected):
        record.pop("saved_at")
    assert data == expected
    assert [c["name"] for c in data["categories"]] == ["before"]
    assert data["next_ids"]["category"] == 2 and data["settings"]["note"] == {"kept": 1}
    project.write_save(pending)
    document.mark_saved(pending.revision)
    assert document.dirty  # the later edit is not on disk
    project.close()


def test_a_read_only_project_gives_no_snapshot(tmp_path):
    Project.create(tmp_path, "p", scan=False).close()
    with Project.open(tmp_path, read_only=True) as project, pytest.raises(ProjectError):
        project.snapshot()
