"""Resources are found in a source checkout, and in a PyInstaller bundle through sys._MEIPASS."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from efficientsam_studio.errors import StudioError
from efficientsam_studio.resources import ResourceNotFoundError, resource_path

CHECKOUT_RESOURCES = Path(__file__).resolve().parents[2] / "resources"


def test_checkout_resources_are_found() -> None:
    assert resource_path() == CHECKOUT_RESOURCES
    assert resource_path("samples", "chelsea.png") == CHECKOUT_RESOURCES / "samples" / "chelsea.png"
    assert resource_path("icons", "efsam-studio.svg").is_file()


def test_missing_resource_names_the_file_and_the_places_searched() -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        resource_path("samples", "no-such-image.png")
    assert isinstance(caught.value, StudioError)
    message = str(caught.value)
    assert "samples/no-such-image.png" in message
    assert str(CHECKOUT_RESOURCES) in message


def test_bundle_resources_come_first_when_frozen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundled = tmp_path / "resources" / "samples" / "chelsea.png"
    bundled.parent.mkdir(parents=True)
    bundled.write_bytes(b"bundled copy")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resource_path("samples", "chelsea.png") == bundled
    # what the bundle lacks is still looked for in the other layouts
    assert resource_path("icons", "efsam-studio.svg") == CHECKOUT_RESOURCES / "icons" / "efsam-studio.svg"


def test_meipass_is_ignored_when_not_frozen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "resources" / "samples").mkdir(parents=True)
    (tmp_path / "resources" / "samples" / "chelsea.png").write_bytes(b"stale")
    monkeypatch.delattr(sys, "frozen", raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resource_path("samples", "chelsea.png") == CHECKOUT_RESOURCES / "samples" / "chelsea.png"
