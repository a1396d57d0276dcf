"""The small rasterizer of tools/plot_compaction.py: valid PNGs, a complete font, correct pixels."""

import os
import struct
import sys
import zlib

import pytest

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tools")
sys.path.insert(0, TOOLS)

import plot_compaction as plot  # noqa: E402


def decode(data):
    """Minimal PNG reader for what png_bytes writes: checks signature and CRCs, returns (w, h, rgb)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        crc = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]
        assert crc == zlib.crc32(kind + body) & 0xffffffff, kind
        chunks.append((kind, body))
        pos += 12 + length
    assert [k for k, dummy in chunks][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour, compression, filtering, interlace) == (8, 2, 0, 0, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = width * 3 + 1
    assert len(raw) == stride * height
    rows = []
    for y in range(height):
        assert raw[y * stride] == 0
        rows.append(raw[y * stride + 1:(y + 1) * stride])
    return width, height, b"".join(rows)


def pixel(canvas, x, y):
    i = (y * canvas.width + x) * 3
    return tuple(canvas.pixels[i:i + 3])


def test_png_round_trip():
    cv = plot.Canvas(7, 5, background=(10, 20, 30))
    cv.put(3, 2, (255, 0, 0))
    width, height, rgb = decode(plot.png_bytes(cv.width, cv.height, cv.pixels))
    assert (width, height) == (7, 5)
    assert rgb[(2 * 7 + 3) * 3:(2 * 7 + 3) * 3 + 3] == b"\xff\x00\x00"
    assert rgb[:3] == bytes((10, 20, 30))
    with pytest.raises(ValueError):
        plot.png_bytes(7, 5, b"short")


def test_font_is_complete_and_regular():
    needed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;-+=/()[]<>%_'\"!?*|")
    assert needed <= set(plot.FONT)
    for char, rows in plot.FONT.items():
        assert len(rows) == plot.GLYPH_H and all(len(r) == plot.GLYPH_W and set(r) <= set(".#") for r in rows), char
    # Descenders sit below the baseline, other letters do not.
    assert "#" in "".join(plot.FONT["g"][7:]) and "#" not in "".join(plot.FONT["a"][7:])


def test_text_draws_the_glyph_pixels():
    cv = plot.Canvas(40, 20)
    width = cv.text(1, 1, "T1", (0, 0, 0), scale=1)
    assert width == 12 and plot.Canvas.text_width("T1", 1) == 11
    assert pixel(cv, 1, 1) == (0, 0, 0) and pixel(cv, 5, 1) == (0, 0, 0)   # the bar of the T
    assert pixel(cv, 1, 2) == (255, 255, 255)                              # below it, left: empty


def test_lines_rects_and_downsampling():
    cv = plot.Canvas(20, 20)
    cv.line(0, 10, 19, 10, (0, 0, 0), width=1)
    assert all(pixel(cv, x, 10) == (0, 0, 0) for x in range(20))
    cv.line(0, 5, 19, 5, (0, 0, 0), width=1, dash=(4, 4))
    assert pixel(cv, 1, 5) == (0, 0, 0) and pixel(cv, 6, 5) == (255, 255, 255)
    cv.rect(0, 0, 2, 2, (0, 0, 0))
    small = cv.downsample(2)
    assert (small.width, small.height) == (10, 10)
    assert pixel(small, 0, 0) == (0, 0, 0)                                  # a full 2x2 block stays black
    assert pixel(small, 3, 5) == (127, 127, 127)                            # a 1-pixel line averages to grey


def test_nice_ticks():
    assert plot.nice_ticks(0, 100, 5) == [0, 20, 40, 60, 80, 100]
    ticks = plot.nice_ticks(21.3, 88.9, 4)
    assert ticks[0] >= 21.3 and ticks[-1] <= 88.9 and len(ticks) >= 3
