"""The catalogue of published EfficientSAM weights: names, files, URLs, sizes and checksums.

Facts from the published repositories: ``efficient_sam_vitt.pt`` is 40,999,911 bytes with git blob id
``af883c49...``; ``efficient_sam_vits.pt.zip`` holds ``efficient_sam_vits.pt`` (about 105.7 MB) and has
neither a published checksum nor an exact published size; the ONNX exports have published sha256 digests
but no published sizes. Entries record exactly that and nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from efficientsam_studio.engine.download import Checksum

__all__ = ["CATALOGUE", "RemoteFile", "WeightsEntry"]

_GITHUB_WEIGHTS = "https://github.com/yformer/EfficientSAM/raw/main/weights"
_ONNX_RELEASE = "https://github.com/labelmeai/efficient-sam/releases/download/onnx-models-20231225"


@dataclass(frozen=True)
class RemoteFile:
    """One published file.

    ``size`` is the exact size in bytes, or ``None`` when it was not published (then ``approx_bytes`` is
    for display only). ``unpack`` names the file to extract when the download is a zip archive.
    """

    filename: str
    url: str
    size: int | None
    checksum: Checksum | None
    approx_bytes: int | None = None
    unpack: str | None = None

    @property
    def installed_name(self) -> str:
        """The file name in the store: the unpacked file for archives, else the download itself."""
        return self.unpack or self.filename


@dataclass(frozen=True)
class WeightsEntry:
    """A catalogue entry: ``model`` is the registry name the files are for, ``format`` torch or onnx."""

    name: str
    model: str
    format: Literal["torch", "onnx"]
    description: str
    files: tuple[RemoteFile, ...]
    integrity: str

    @property
    def display_bytes(self) -> int | None:
        """Total download size in bytes (exact or approximate), ``None`` when unknown."""
        sizes = [f.size if f.size is not None else f.approx_bytes for f in self.files]
        return None if any(s is None for s in sizes) else sum(sizes)  # type: ignore[misc]


def _onnx_pair(model: str, tag: str, encoder_sha256: str, decoder_sha256: str) -> WeightsEntry:
    return WeightsEntry(
        name=f"{model}_onnx",
        model=model,
        format="onnx",
        description=f"published ONNX export of EfficientSAM {model} (encoder + decoder)",
        files=tuple(
            RemoteFile(
                filename=f"efficient_sam_{tag}_{part}.onnx",
                url=f"{_ONNX_RELEASE}/efficient_sam_{tag}_{part}.onnx",
                size=None,
                checksum=Checksum("sha256", digest),
            )
            for part, digest in (("encoder", encoder_sha256), ("decoder", decoder_sha256))
        ),
        integrity="sha256 of each file (sizes not published)",
    )


CATALOGUE: dict[str, WeightsEntry] = {
    "vit_t": WeightsEntry(
        name="vit_t",
        model="vit_t",
        format="torch",
        description="EfficientSAM ViT-Tiny, the published torch checkpoint",
        files=(
            RemoteFile(
                filename="efficient_sam_vitt.pt",
                url=f"{_GITHUB_WEIGHTS}/efficient_sam_vitt.pt",
                size=40_999_911,
                checksum=Checksum("git-blob-sha1", "af883c49e33c68f01107be52df0ecad26a48355f"),
            ),
        ),
        integrity="git blob id (SHA-1 of the blob) and exact size",
    ),
    "vit_s": WeightsEntry(
        name="vit_s",
        model="vit_s",
        format="torch",
        description="EfficientSAM ViT-Small, the published torch checkpoint (shipped as a zip)",
        files=(
            RemoteFile(
                filename="efficient_sam_vits.pt.zip",
                url=f"{_GITHUB_WEIGHTS}/efficient_sam_vits.pt.zip",
                size=None,
                checksum=None,
                approx_bytes=105_700_000,
                unpack="efficient_sam_vits.pt",
            ),
        ),
        integrity="no checksum or exact size published: the zip's CRC-32 is checked and the "
        "checkpoint must load as vit_s",
    ),
    "vit_t_onnx": _onnx_pair(
        "vit_t",
        "vitt",
        "7a73ee65aa2c37237c89b4b18e73082f757ffb173899609c5d97a2bbd4ebb02d",
        "e1afe46232c3bfa3470a6a81c7d3181836a94ea89528aff4e0f2d2c611989efd",
    ),
    "vit_s_onnx": _onnx_pair(
        "vit_s",
        "vits",
        "4cacbb23c6903b1acf87f1d77ed806b840800c5fcd4ac8f650cbffed474b8896",
        "4727baf23dacfb51d4c16795b2ac382c403505556d0284e84c6ff3d4e8e36f22",
    ),
}
