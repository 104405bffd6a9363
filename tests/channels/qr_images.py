"""Reading back the modules of a QR code from the PNG and SVG that segno writes, so tests
can check an image encodes the link they expect (segno itself cannot decode)."""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG = "{http://www.w3.org/2000/svg}"


def png_pixels(data: bytes) -> list[list[int]]:
    """A greyscale PNG of bit depth 1 (what segno writes for black on white) as rows of
    0 (dark) and 1 (light)."""
    assert data.startswith(PNG_SIGNATURE)
    pos, width, height, idat = 8, 0, 0, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, colour, interlace) == (1, 0, 0)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = (width + 7) // 8
    rows: list[list[int]] = []
    previous = bytearray(stride)
    for y in range(height):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        row = _unfilter(line[0], bytearray(line[1:]), previous)
        rows.append([(row[x // 8] >> (7 - x % 8)) & 1 for x in range(width)])
        previous = row
    return rows


def _unfilter(kind: int, row: bytearray, up: bytearray) -> bytearray:
    for i in range(len(row)):
        left = row[i - 1] if i else 0
        above, corner = up[i], up[i - 1] if i else 0
        if kind == 1:
            row[i] = (row[i] + left) & 0xFF
        elif kind == 2:
            row[i] = (row[i] + above) & 0xFF
        elif kind == 3:
            row[i] = (row[i] + (left + above) // 2) & 0xFF
        elif kind == 4:
            p = left + above - corner
            pa, pb, pc = abs(p - left), abs(p - above), abs(p - corner)
            pred = left if pa <= pb and pa <= pc else above if pb <= pc else corner
            row[i] = (row[i] + pred) & 0xFF
    return row


def png_modules(data: bytes, *, scale: int, border: int = 4) -> list[list[bool]]:
    """The code's modules (True: dark), sampled at the centre of each."""
    pixels = png_pixels(data)
    size = len(pixels) // scale - 2 * border
    return [
        [
            pixels[(border + y) * scale + scale // 2][(border + x) * scale + scale // 2] == 0
            for x in range(size)
        ]
        for y in range(size)
    ]


def svg_modules(data: bytes, *, border: int = 4) -> list[list[bool]]:
    """The dark modules drawn by segno's SVG path ("M x y", "h n", "m dx dy")."""
    root = ET.fromstring(data)  # noqa: S314 (our own server's output, in a test)
    assert root.tag == f"{SVG}svg"
    path = next(p for p in root.iter(f"{SVG}path") if p.get("class") == "qrline")
    outline = next(p for p in root.iter(f"{SVG}path") if p.get("class") != "qrline")
    total = int(re.findall(r"h(\d+)", outline.get("d", ""))[0])
    size = total - 2 * border
    grid = [[False] * size for _ in range(size)]
    x = y = 0.0
    for op, a, b in re.findall(r"([Mmh])(-?[\d.]+)(?:\s+(-?[\d.]+))?", path.get("d", "")):
        if op == "M":
            x, y = float(a), float(b)
        elif op == "m":
            x, y = x + float(a), y + float(b)
        else:
            for col in range(int(x), int(x) + int(a)):
                grid[int(y) - border][col - border] = True
            x += int(a)
    return grid
