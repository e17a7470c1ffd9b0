"""Image file headers read without decoding pixels: format, stored size, EXIF orientation, completeness.

:func:`parse_header` recognises JPEG, PNG, TIFF (classic and BigTIFF), BMP, WebP, GIF and binary or ASCII
PNM by their leading bytes. Reading the size from the header lets callers refuse decompression bombs
before OpenCV allocates anything, and the structural checks catch files cut short, which some decoders
silently return as partially decoded images.

Sizes are ``(width, height)`` in pixels as stored in the file; :attr:`ImageHeader.oriented_size` applies
the EXIF orientation (tags 5 to 8 swap width and height).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["HeaderError", "ImageHeader", "NeedMoreData", "parse_header"]


class HeaderError(Exception):
    """Not a supported image, or structurally incomplete; the text says which (the reason)."""


class NeedMoreData(Exception):
    """The header runs past the bytes given; parse again with more of the file."""


@dataclass(frozen=True)
class ImageHeader:
    """What the header says about an image file.

    ``width``/``height`` are in pixels as stored; ``orientation`` is the EXIF orientation (1 = as stored).
    """

    format: str
    width: int
    height: int
    orientation: int = 1

    @property
    def oriented_size(self) -> tuple[int, int]:
        """``(width, height)`` after the EXIF orientation is applied (5 to 8 are transposed)."""
        if self.orientation in (5, 6, 7, 8):
            return self.height, self.width
        return self.width, self.height

    @property
    def pixels(self) -> int:
        return self.width * self.height


class _Bytes:
    """Bounds-checked view of (a prefix of) a file: running off the end means truncated or need more."""

    def __init__(self, data: bytes, whole_file: bool, fmt: str) -> None:
        self.data = data
        self.whole_file = whole_file
        self.fmt = fmt

    def need(self, end: int, what: str) -> None:
        if end > len(self.data):
            if self.whole_file:
                raise HeaderError(f"the {self.fmt} file is truncated (it ends inside the {what})")
            raise NeedMoreData

    def unpack(self, fmt: str, offset: int, what: str) -> tuple:
        self.need(offset + struct.calcsize(fmt), what)
        return struct.unpack_from(fmt, self.data, offset)


def parse_header(data: bytes, *, whole_file: bool) -> ImageHeader:
    """Parse the header of an image file.

    Args:
        data: the file's bytes, or a prefix of them.
        whole_file: ``True`` when ``data`` is the complete file: the structure is then also checked
            for completeness (JPEG end-of-image marker, PNG IEND chunk, TIFF strips, declared sizes of
            BMP, WebP, PNM) and running off the end raises :class:`HeaderError` ("truncated").
            ``False`` raises :class:`NeedMoreData` instead when the prefix is too short.

    Raises:
        HeaderError: not a recognised image format, a malformed header, or (whole files) truncated.
        NeedMoreData: only with ``whole_file=False``.
    """
    if not data:
        raise HeaderError("the file is empty (0 bytes)")
    for magic, parser in _PARSERS:
        if data.startswith(magic):
            return parser(data, whole_file)
    if len(data) < 8 and not whole_file:
        raise NeedMoreData
    if data[:2] in _PNM_MAGICS:
        return _parse_pnm(data, whole_file)
    raise HeaderError(
        "it is not an image in a supported format (JPEG, PNG, TIFF, BMP, WebP, GIF, PNM): "
        "its first bytes match none of them"
    )


# --- EXIF --------------------------------------------------------------------------------------------


def _exif_orientation(tiff: bytes) -> int:
    """Orientation (tag 0x0112) from a TIFF-structured EXIF block; 1 when absent or unreadable."""
    try:
        order = {b"II": "<", b"MM": ">"}[tiff[:2]]
        (ifd,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, ifd)
        for i in range(count):
            tag, kind, _n = struct.unpack_from(order + "HHI", tiff, ifd + 2 + 12 * i)
            if tag == 0x0112 and kind == 3:
                (value,) = struct.unpack_from(order + "H", tiff, ifd + 2 + 12 * i + 8)
                return value if 1 <= value <= 8 else 1
    except (KeyError, struct.error):
        pass
    return 1


# --- JPEG --------------------------------------------------------------------------------------------

_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _parse_jpeg(data: bytes, whole_file: bool) -> ImageHeader:
    buf = _Bytes(data, whole_file, "JPEG")
    pos, size, orientation = 2, None, 1
    while True:
        buf.need(pos + 2, "marker segments")
        if data[pos] != 0xFF:
            raise HeaderError(f"the JPEG structure is corrupt (no marker at byte {pos})")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker == 0xD9:
            raise HeaderError("the JPEG file ends before any image data")
        (length,) = buf.unpack(">H", pos + 2, "marker segments")
        buf.need(pos + 2 + length, "marker segments")
        body = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and body.startswith(b"Exif\0\0") and orientation == 1:
            orientation = _exif_orientation(body[6:])
        elif marker in _SOF_MARKERS and size is None:
            if len(body) < 5:
                raise HeaderError("the JPEG frame header is malformed")
            height, width = struct.unpack_from(">HH", body, 1)
            size = (width, height)
        elif marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        pos += 2 + length
    if size is None:
        raise HeaderError("the JPEG file has no frame header (no image size)")
    if size[0] == 0 or size[1] == 0:
        raise HeaderError("the JPEG frame header gives a zero width or height")
    # Inside entropy-coded data every 0xFF byte is followed by 0x00 or a restart marker, so the first
    # FF D9 after the first scan is the end-of-image marker; a file cut short has none.
    if whole_file and data.find(b"\xff\xd9", pos) < 0:
        raise HeaderError("the JPEG file is truncated (no end-of-image marker)")
    return ImageHeader("JPEG", size[0], size[1], orientation)


# --- PNG ---------------------------------------------------------------------------------------------


def _parse_png(data: bytes, whole_file: bool) -> ImageHeader:
    buf = _Bytes(data, whole_file, "PNG")
    length, kind, width, height = buf.unpack(">I4sII", 8, "IHDR chunk")
    if kind != b"IHDR" or length != 13:
        raise HeaderError("the PNG file is corrupt (the first chunk is not IHDR)")
    if width == 0 or height == 0:
        raise HeaderError("the PNG header gives a zero width or height")
    pos, orientation = 8, 1
    while True:
        try:
            length, kind = buf.unpack(">I4s", pos, "chunk list")
        except NeedMoreData:
            break  # enough for the size; the EXIF chunk, if any, comes later
        end = pos + 12 + length
        if kind == b"IDAT" and not whole_file:
            break  # eXIf must precede the image data
        if kind == b"eXIf" and end <= len(data):
            orientation = _exif_orientation(data[pos + 8 : pos + 8 + length])
        if kind == b"IEND":
            break
        if end > len(data):
            if whole_file:
                name = kind.decode("latin-1")
                raise HeaderError(f"the PNG file is truncated (it ends inside its {name} chunk)")
            break
        pos = end
    return ImageHeader("PNG", width, height, orientation)


# --- TIFF --------------------------------------------------------------------------------------------

_TIFF_TYPES = {1: "B", 3: "H", 4: "I", 16: "Q"}  # BYTE, SHORT, LONG, LONG8


def _parse_tiff(data: bytes, whole_file: bool) -> ImageHeader:
    buf = _Bytes(data, whole_file, "TIFF")
    order = "<" if data[:2] == b"II" else ">"
    (magic,) = buf.unpack(order + "H", 2, "header")
    if magic == 42:
        (ifd,) = buf.unpack(order + "I", 4, "header")
        count_fmt, entry_fmt, entry_size, inline = "H", "HHI", 12, 4
    elif magic == 43:
        (ifd,) = buf.unpack(order + "Q", 8, "header")
        count_fmt, entry_fmt, entry_size, inline = "Q", "HHQ", 20, 8
    else:
        raise HeaderError("the TIFF header is malformed")
    (count,) = buf.unpack(order + count_fmt, ifd, "first directory")
    first = ifd + struct.calcsize(order + count_fmt)
    buf.need(first + count * entry_size, "first directory")
    tags: dict[int, tuple[int, ...]] = {}
    for i in range(count):
        entry = first + i * entry_size
        tag, kind, n = buf.unpack(order + entry_fmt, entry, "first directory")
        if tag not in (256, 257, 273, 274, 279, 324, 325) or kind not in _TIFF_TYPES:
            continue
        item = order + str(n) + _TIFF_TYPES[kind]
        where = entry + entry_size - inline
        if struct.calcsize(item) > inline:
            (where,) = buf.unpack(order + ("I" if inline == 4 else "Q"), where, "first directory")
        tags[tag] = buf.unpack(item, where, "first directory")
    if 256 not in tags or 257 not in tags:
        raise HeaderError("the TIFF file has no image width or length in its first directory")
    width, height = tags[256][0], tags[257][0]
    if width == 0 or height == 0:
        raise HeaderError("the TIFF header gives a zero width or height")
    orientation = tags.get(274, (1,))[0]
    for offsets_tag, counts_tag in ((273, 279), (324, 325)):
        if whole_file and offsets_tag in tags and counts_tag in tags:
            ends = [o + c for o, c in zip(tags[offsets_tag], tags[counts_tag], strict=False)]
            if ends and max(ends) > len(data):
                raise HeaderError("the TIFF file is truncated (its image data ends past the end of the file)")
    return ImageHeader("TIFF", width, height, orientation if 1 <= orientation <= 8 else 1)


# --- BMP ---------------------------------------------------------------------------------------------


def _parse_bmp(data: bytes, whole_file: bool) -> ImageHeader:
    buf = _Bytes(data, whole_file, "BMP")
    file_size, pixel_offset, dib_size = buf.unpack("<I4xII", 2, "header")
    if dib_size == 12:
        width, height, _planes, bpp = buf.unpack("<hhHH", 18, "header")
        compression = 0
    elif dib_size >= 40:
        width, height, _planes, bpp, compression = buf.unpack("<iiHHI", 18, "header")
    else:
        raise HeaderError("the BMP header is malformed")
    height = abs(height)
    if width <= 0 or height == 0:
        raise HeaderError("the BMP header gives a zero or negative size")
    if whole_file:
        declared = file_size if file_size else 0
        if compression in (0, 3, 6) and bpp in (1, 4, 8, 16, 24, 32):
            declared = max(declared, pixel_offset + (bpp * width + 31) // 32 * 4 * height)
        if declared > len(data):
            raise HeaderError(f"the BMP file is truncated ({len(data)} of {declared} bytes)")
    return ImageHeader("BMP", width, height)


# --- WebP --------------------------------------------------------------------------------------------


def _parse_webp(data: bytes, whole_file: bool) -> ImageHeader:
    buf = _Bytes(data, whole_file, "WebP")
    riff_size, kind = buf.unpack("<I4s", 4, "header")
    if kind != b"WEBP":
        raise HeaderError("it is a RIFF file but not a WebP image")
    if whole_file and riff_size + 8 > len(data):
        raise HeaderError(f"the WebP file is truncated ({len(data)} of {riff_size + 8} bytes)")
    pos, size, orientation = 12, None, 1
    while pos + 8 <= min(len(data), riff_size + 8):
        chunk, length = struct.unpack_from("<4sI", data, pos)
        body = pos + 8
        if chunk == b"VP8X" and size is None:
            w1, w2, h1, h2 = buf.unpack("<HBHB", body + 4, "VP8X chunk")
            size = ((w1 | w2 << 16) + 1, (h1 | h2 << 16) + 1)
        elif chunk == b"VP8 " and size is None:
            width, height = buf.unpack("<HH", body + 6, "VP8 chunk")
            size = (width & 0x3FFF, height & 0x3FFF)
        elif chunk == b"VP8L" and size is None:
            (bits,) = buf.unpack("<I", body + 1, "VP8L chunk")
            size = ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        elif chunk == b"EXIF" and body + length <= len(data):
            exif = data[body : body + length]
            orientation = _exif_orientation(exif[6:] if exif.startswith(b"Exif\0\0") else exif)
        if size is not None and not whole_file and chunk in (b"VP8 ", b"VP8L"):
            break
        pos = body + length + (length & 1)
    if size is None:
        if not whole_file:
            raise NeedMoreData
        raise HeaderError("the WebP file has no image chunk")
    if size[0] == 0 or size[1] == 0:
        raise HeaderError("the WebP header gives a zero width or height")
    return ImageHeader("WebP", size[0], size[1], orientation)


# --- GIF ---------------------------------------------------------------------------------------------


def _parse_gif(data: bytes, whole_file: bool) -> ImageHeader:
    buf = _Bytes(data, whole_file, "GIF")
    width, height = buf.unpack("<HH", 6, "header")
    if width == 0 or height == 0:
        raise HeaderError("the GIF header gives a zero width or height")
    if whole_file and not data.rstrip(b"\0").endswith(b";"):
        raise HeaderError("the GIF file is truncated (no trailer byte)")
    return ImageHeader("GIF", width, height)


# --- PNM ---------------------------------------------------------------------------------------------

_PNM_MAGICS = {b"P1", b"P2", b"P3", b"P4", b"P5", b"P6"}


def _parse_pnm(data: bytes, whole_file: bool) -> ImageHeader:
    kind = data[1:2]
    fields_wanted = 2 if kind in (b"1", b"4") else 3
    fields: list[int] = []
    pos = 2
    while len(fields) < fields_wanted:
        while pos < len(data) and (data[pos : pos + 1].isspace() or data[pos : pos + 1] == b"#"):
            if data[pos : pos + 1] == b"#":
                end = data.find(b"\n", pos)
                pos = len(data) if end < 0 else end
            pos += 1
        start = pos
        while pos < len(data) and data[pos : pos + 1].isdigit():
            pos += 1
        if pos == len(data):
            _Bytes(data, whole_file, "PNM").need(pos + 1, "header")
        if start == pos:
            raise HeaderError("the PNM header is malformed")
        fields.append(int(data[start:pos]))
    width, height = fields[0], fields[1]
    if width == 0 or height == 0:
        raise HeaderError("the PNM header gives a zero width or height")
    if whole_file and kind in (b"4", b"5", b"6"):
        sample_bytes = 2 if kind != b"4" and fields[2] > 255 else 1
        row = (width + 7) // 8 if kind == b"4" else width * (3 if kind == b"6" else 1) * sample_bytes
        if pos + 1 + row * height > len(data):
            raise HeaderError("the PNM file is truncated (fewer pixel bytes than its header declares)")
    return ImageHeader("PNM", width, height)


_PARSERS = (
    (b"\xff\xd8\xff", _parse_jpeg),
    (b"\x89PNG\r\n\x1a\n", _parse_png),
    (b"II*\0", _parse_tiff),
    (b"MM\0*", _parse_tiff),
    (b"II+\0", _parse_tiff),
    (b"MM\0+", _parse_tiff),
    (b"BM", _parse_bmp),
    (b"RIFF", _parse_webp),
    (b"GIF87a", _parse_gif),
    (b"GIF89a", _parse_gif),
)
