"""Draw docs/images/compaction.png: what compaction does to real series.

It starts a throwaway MariaDB (tests/harness/mariadb.py, its own temporary
directory, 127.0.0.1 only), loads the schema fixture, generates a few days of
monitoring data (tests/harness/datagen.py), reads three modules' series,
runs the real compaction step (CompactStep) on the database, reads the series
again and plots both: the raw samples before, and what is stored after.
The server is stopped (by pid) and its directory removed whatever happens.

No plotting library is needed: the picture is drawn by the small rasterizer
below (lines, dots, rectangles, a 5x7 bitmap font) and written as a PNG with
zlib and struct.

    .venv/bin/python tools/plot_compaction.py [--output docs/images/compaction.png]
"""

import argparse
import math
import os
import struct
import sys
import time
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# -- a 5x7 bitmap font (drawn for this tool) -------------------------------------------
_GLYPHS = """
A .###. #...# #...# ##### #...# #...# #...#
B ####. #...# #...# ####. #...# #...# ####.
C .###. #...# #.... #.... #.... #...# .###.
D ####. #...# #...# #...# #...# #...# ####.
E ##### #.... #.... ####. #.... #.... #####
F ##### #.... #.... ####. #.... #.... #....
G .###. #...# #.... #.### #...# #...# .####
H #...# #...# #...# ##### #...# #...# #...#
I .###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.
J ..### ...#. ...#. ...#. ...#. #..#. .##..
K #...# #..#. #.#.. ##... #.#.. #..#. #...#
L #.... #.... #.... #.... #.... #.... #####
M #...# ##.## #.#.# #.#.# #...# #...# #...#
N #...# #...# ##..# #.#.# #..## #...# #...#
O .###. #...# #...# #...# #...# #...# .###.
P ####. #...# #...# ####. #.... #.... #....
Q .###. #...# #...# #...# #.#.# #..#. .##.#
R ####. #...# #...# ####. #.#.. #..#. #...#
S .#### #.... #.... .###. ....# ....# ####.
T ##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..
U #...# #...# #...# #...# #...# #...# .###.
V #...# #...# #...# #...# #...# .#.#. ..#..
W #...# #...# #...# #.#.# #.#.# #.#.# .#.#.
X #...# #...# .#.#. ..#.. .#.#. #...# #...#
Y #...# #...# .#.#. ..#.. ..#.. ..#.. ..#..
Z ##### ....# ...#. ..#.. .#... #.... #####
a ..... ..... .###. ....# .#### #...# .####
b #.... #.... #.##. ##..# #...# #...# ####.
c ..... ..... .###. #.... #.... #...# .###.
d ....# ....# .##.# #..## #...# #...# .####
e ..... ..... .###. #...# ##### #.... .###.
f ..##. .#..# .#... ###.. .#... .#... .#...
g .#### #...# #...# #...# .#### ....# .###.
h #.... #.... #.##. ##..# #...# #...# #...#
i ..#.. ..... .##.. ..#.. ..#.. ..#.. .###.
j ...#. ..... ..##. ...#. ...#. ...#. ...#. #..#. .##..
k #.... #.... #..#. #.#.. ##... #.#.. #..#.
l .##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###.
m ..... ..... ##.#. #.#.# #.#.# #...# #...#
n ..... ..... #.##. ##..# #...# #...# #...#
o ..... ..... .###. #...# #...# #...# .###.
p ####. #...# #...# #...# ####. #.... #....
q .#### #...# #...# #...# .#### ....# ....#
r ..... ..... #.##. ##..# #.... #.... #....
s ..... ..... .#### #.... .###. ....# ####.
t .#... .#... ###.. .#... .#... .#..# ..##.
u ..... ..... #...# #...# #...# #..## .##.#
v ..... ..... #...# #...# #...# .#.#. ..#..
w ..... ..... #...# #...# #.#.# #.#.# .#.#.
x ..... ..... #...# .#.#. ..#.. .#.#. #...#
y #...# #...# #...# #...# .#### ....# .###.
z ..... ..... ##### ...#. ..#.. .#... #####
0 .###. #...# #..## #.#.# ##..# #...# .###.
1 ..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.
2 .###. #...# ....# ...#. ..#.. .#... #####
3 ##### ...#. ..#.. ...#. ....# #...# .###.
4 ...#. ..##. .#.#. #..#. ##### ...#. ...#.
5 ##### #.... ####. ....# ....# #...# .###.
6 ..##. .#... #.... ####. #...# #...# .###.
7 ##### ....# ...#. ..#.. .#... .#... .#...
8 .###. #...# #...# .###. #...# #...# .###.
9 .###. #...# #...# .#### ....# ...#. .##..
. ..... ..... ..... ..... ..... .##.. .##..
, ..... ..... ..... ..... .##.. ..#.. .#...
: ..... .##.. .##.. ..... .##.. .##.. .....
; ..... .##.. .##.. ..... .##.. ..#.. .#...
- ..... ..... ..... ##### ..... ..... .....
+ ..... ..#.. ..#.. ##### ..#.. ..#.. .....
= ..... ..... ##### ..... ##### ..... .....
/ ..... ....# ...#. ..#.. .#... #.... .....
( ...#. ..#.. .#... .#... .#... ..#.. ...#.
) .#... ..#.. ...#. ...#. ...#. ..#.. .#...
[ .###. .#... .#... .#... .#... .#... .###.
] .###. ...#. ...#. ...#. ...#. ...#. .###.
< ...#. ..#.. .#... #.... .#... ..#.. ...#.
> .#... ..#.. ...#. ....# ...#. ..#.. .#...
% ##... ##..# ...#. ..#.. .#... #..## ...##
_ ..... ..... ..... ..... ..... ..... #####
' ..#.. ..#.. .#... ..... ..... ..... .....
" .#.#. .#.#. ..... ..... ..... ..... .....
! ..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..
? .###. #...# ....# ...#. ..#.. ..... ..#..
* ..... ..#.. #.#.# .###. #.#.# ..#.. .....
| ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#..
"""


DESCENDERS = "gpqy"     # drawn two rows lower; "j" spells out all nine rows


def _load_font():
    """Glyphs are 5 wide and 9 tall: 7 rows above the baseline, 2 for descenders."""
    font = {" ": ["....."] * 9}
    for line in _GLYPHS.strip().splitlines():
        parts = line.split()
        char, rows = parts[0], parts[1:]
        if len(rows) == 7:
            rows = ["....."] * 2 + rows if char in DESCENDERS else rows + ["....."] * 2
        if len(rows) != 9 or any(len(r) != 5 for r in rows):
            raise ValueError("bad glyph %r" % char)
        font[char] = rows
    return font


FONT = _load_font()
GLYPH_W, GLYPH_H = 5, 9


# -- PNG ---------------------------------------------------------------------------
def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)


def png_bytes(width, height, rgb):
    """An 8-bit RGB PNG of ``rgb`` (``width * height * 3`` bytes, rows top to bottom)."""
    if len(rgb) != width * height * 3:
        raise ValueError("need %d bytes of RGB, got %d" % (width * height * 3, len(rgb)))
    stride = width * 3
    raw = bytearray()
    for y in range(height):
        raw.append(0)                                  # filter type 0 (None) for every row
        raw += rgb[y * stride:(y + 1) * stride]
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(bytes(raw), 9)) \
        + _chunk(b"IEND", b"")


# -- drawing -----------------------------------------------------------------------
class Canvas(object):
    """An RGB raster with just what a line chart needs."""

    def __init__(self, width, height, background=(255, 255, 255)):
        self.width = width
        self.height = height
        self.pixels = bytearray(bytes(background) * (width * height))

    def put(self, x, y, color):
        if 0 <= x < self.width and 0 <= y < self.height:
            i = (y * self.width + x) * 3
            self.pixels[i:i + 3] = bytes(color)

    def rect(self, x0, y0, x1, y1, color):
        x0, x1 = max(0, int(round(min(x0, x1)))), min(self.width, int(round(max(x0, x1))))
        y0, y1 = max(0, int(round(min(y0, y1)))), min(self.height, int(round(max(y0, y1))))
        if x1 <= x0:
            return
        row = bytes(color) * (x1 - x0)
        for y in range(y0, y1):
            i = (y * self.width + x0) * 3
            self.pixels[i:i + len(row)] = row

    def disk(self, cx, cy, r, color):
        r2 = r * r
        for dy in range(-int(math.ceil(r)), int(math.ceil(r)) + 1):
            for dx in range(-int(math.ceil(r)), int(math.ceil(r)) + 1):
                if dx * dx + dy * dy <= r2:
                    self.put(int(round(cx + dx)), int(round(cy + dy)), color)

    def line(self, x0, y0, x1, y1, color, width=1.0, dash=None):
        """A thick line, stamped along its length; ``dash`` = (on, off) in pixels."""
        length = math.hypot(x1 - x0, y1 - y0)
        steps = max(1, int(length * 1.5))
        r = width / 2.0
        for s in range(steps + 1):
            t = s / float(steps)
            if dash and (t * length) % (dash[0] + dash[1]) >= dash[0]:
                continue
            x, y = x0 + (x1 - x0) * t, y0 + (y1 - y0) * t
            if r <= 0.75:
                self.put(int(round(x)), int(round(y)), color)
            else:
                self.rect(x - r, y - r, x + r, y + r, color)

    def text(self, x, y, string, color, scale=2):
        """Draw ``string`` with its top-left corner at (x, y); returns its width."""
        cx = x
        for char in string:
            glyph = FONT.get(char) or FONT["?"]
            for gy, row in enumerate(glyph):
                for gx, bit in enumerate(row):
                    if bit == "#":
                        self.rect(cx + gx * scale, y + gy * scale, cx + (gx + 1) * scale, y + (gy + 1) * scale,
                                  color)
            cx += (GLYPH_W + 1) * scale
        return cx - x

    @staticmethod
    def text_width(string, scale=2):
        return len(string) * (GLYPH_W + 1) * scale - scale

    def downsample(self, factor):
        """Box-filter down by ``factor`` (drawing at 2x then shrinking smooths the edges)."""
        w, h = self.width // factor, self.height // factor
        out = Canvas(w, h)
        src, stride, n = self.pixels, self.width * 3, factor * factor
        dst = out.pixels
        for y in range(h):
            rows = [src[(y * factor + k) * stride:(y * factor + k + 1) * stride] for k in range(factor)]
            o = y * w * 3
            for x in range(w):
                base = x * factor * 3
                for c in range(3):
                    total = 0
                    for row in rows:
                        for k in range(factor):
                            total += row[base + k * 3 + c]
                    dst[o + x * 3 + c] = total // n
        return out

    def save(self, path):
        with open(path, "wb") as handle:
            handle.write(png_bytes(self.width, self.height, self.pixels))


# -- the chart ---------------------------------------------------------------------
GREY = (150, 150, 150)
RAW = (120, 120, 120)
MEAN = (200, 30, 40)
SHADE = (226, 236, 250)
GRID = (232, 232, 232)
AXIS = (60, 60, 60)
TEXT = (20, 20, 20)
NOTE = (70, 70, 70)


def nice_ticks(lo, hi, count=5):
    span = hi - lo if hi > lo else 1.0
    raw = span / count
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    first = math.ceil(lo / step) * step
    ticks = []
    value = first
    while value <= hi + 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def fmt_value(v):
    return ("%d" % v) if abs(v - round(v)) < 1e-9 else ("%.1f" % v)


def draw_panel(cv, box, panel, t0, t1, boundary, step, s):
    """One module: the raw samples before (grey dots) and what is stored after (red).

    A mean is drawn as a bar across the window it stands for (Pandora holds a
    value until the next sample, and the mean is stamped at the window start);
    the rest of the stored series is drawn as points joined by lines.
    """
    x0, y0, x1, y1 = box
    before, after, means = panel["before"], panel["after"], panel["means"]
    values = [v for dummy, v in before + after if v is not None]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or 1.0
    lo, hi = lo - pad, hi + pad

    def px(ts):
        return x0 + (ts - t0) * (x1 - x0) / float(t1 - t0)

    def py(v):
        return y1 - (v - lo) * (y1 - y0) / float(hi - lo)

    cv.rect(x0, y0, px(boundary), y1, SHADE)
    for tick in nice_ticks(lo, hi, 4):
        cv.line(x0, py(tick), x1, py(tick), GRID, 1 * s)
        label = fmt_value(tick)
        cv.text(x0 - Canvas.text_width(label, 2 * s) - 6 * s, py(tick) - 7 * s, label, NOTE, 2 * s)
    day = 86400
    for ts in range(t0 - t0 % day + day, t1 + 1, day):
        cv.line(px(ts), y0, px(ts), y1, GRID, 1 * s)
        label = time.strftime("%b %d", time.gmtime(ts))
        cv.text(px(ts) - Canvas.text_width(label, 2 * s) / 2, y1 + 6 * s, label, NOTE, 2 * s)
    cv.line(px(boundary), y0, px(boundary), y1, AXIS, 1.5 * s, dash=(6 * s, 5 * s))
    for ts, v in before:
        if v is not None:
            cv.disk(px(ts), py(v), 1.5 * s, GREY)
    previous = None
    for ts, v in after:
        if v is None:
            previous = None
            continue
        if ts in means:
            left, right, y = px(ts), px(ts + step), py(v)
            if previous is not None and ts - previous[2] <= step:
                cv.line(previous[0], previous[1], left, y, MEAN, 1.6 * s)
            cv.line(left, y, right, y, MEAN, 2.2 * s)
            cv.disk(left, y, 2.2 * s, MEAN)
            previous = (right, y, ts + step)
            continue
        point = (px(ts), py(v))
        # A gap longer than 3 hours stays a gap, as on the console's graphs.
        if previous is not None and ts - previous[2] <= 3 * 3600:
            cv.line(previous[0], previous[1], point[0], point[1], MEAN, 1.6 * s)
        if ts < boundary:
            cv.disk(point[0], point[1], 1.8 * s, MEAN)      # an old raw row, kept as it was
        previous = (point[0], point[1], ts)
    cv.rect(x0, y0, x1, y0 + 1 * s, AXIS)
    cv.rect(x0, y1, x1, y1 + 1 * s, AXIS)
    cv.rect(x0, y0, x0 + 1 * s, y1, AXIS)
    cv.rect(x1, y0, x1 + 1 * s, y1 + 1 * s, AXIS)
    cv.text(x0, y0 - 22 * s, panel["title"], TEXT, 2 * s)


def render(panels, t0, t1, boundary, step, title, subtitle, path, width=1100, panel_h=220, s=2):
    """Draw the panels into a PNG at ``path`` (drawn ``s`` times larger, then shrunk: smooth edges)."""
    top, left, right, gap = 136, 60, 20, 64
    height = top + 24 + len(panels) * (panel_h + gap) - gap + 36
    cv = Canvas(width * s, height * s)
    cv.text(left * s, 14 * s, title, TEXT, 3 * s)
    cv.text(left * s, 48 * s, subtitle, NOTE, 2 * s)
    lx, ly = left * s, 74 * s
    cv.disk(lx + 6 * s, ly + 6 * s, 2 * s, GREY)
    lx += 18 * s + cv.text(lx + 18 * s, ly, "raw samples, before", NOTE, 2 * s)
    lx += 24 * s
    cv.line(lx, ly + 6 * s, lx + 24 * s, ly + 6 * s, MEAN, 2 * s)
    cv.disk(lx, ly + 6 * s, 2.2 * s, MEAN)
    lx += 32 * s + cv.text(lx + 32 * s, ly, "stored after (a bar: one mean for its window)", NOTE, 2 * s)
    lx, ly = left * s, 96 * s
    cv.rect(lx, ly - 1 * s, lx + 24 * s, ly + 13 * s, SHADE)
    cv.text(lx + 32 * s, ly, "older than days_compact: averaged; the dashed line is the boundary",
            NOTE, 2 * s)
    for i, panel in enumerate(panels):
        y0 = top + 24 + i * (panel_h + gap)
        draw_panel(cv, (left * s, y0 * s, (width - right) * s, (y0 + panel_h) * s), panel, t0, t1, boundary,
                   step, s)
    cv.downsample(s).save(path)


# -- real data ------------------------------------------------------------------------
def collect(days, days_compact, step_hours, now):
    """Run the real step on generated data; return the series of three modules before and after."""
    sys.path.insert(0, os.path.join(REPO, "tests"))
    from harness.collection import ensure_collection_link
    from harness.mariadb import MariaDBServer
    from harness import datagen, schema
    ensure_collection_link()
    from ansible_collections.pandorafms.server.plugins.module_utils._compact import CompactStep
    from ansible_collections.pandorafms.server.plugins.module_utils._context import Context
    from ansible_collections.pandorafms.server.plugins.module_utils._tconfig import TConfig

    modules = ((1, "cpu_load (dense: a sample every 5 min)"),
               (7, "remote_latency (5-min samples, 6-hour gaps)"),
               (5, "disk_usage (sparse: a sample every 2 h; nothing to average)"))
    server = MariaDBServer(name="plot")
    server.start()
    try:
        schema.load_fixture(server, "pandora_plot")
        conn = server.connect("pandora_plot")
        datagen.generate(conn, now=now, agents=1, days=days, events=1, traps=1, sessions=1, audit=1,
                         tconfig={"days_compact": str(days_compact), "step_compact": str(step_hours)})

        def series(module_id):
            with conn.cursor() as cur:
                cur.execute("SELECT utimestamp, datos FROM tagente_datos WHERE id_agente_modulo = %s"
                            " ORDER BY utimestamp", (module_id,))
                return [(int(ts), None if v is None else float(v)) for ts, v in cur.fetchall()]

        before = dict((m, series(m)) for m, dummy in modules)
        ctx = Context(conn, TConfig.load(conn), now=now)
        result = CompactStep().run(ctx)[0]
        after = dict((m, series(m)) for m, dummy in modules)
        conn.close()
    finally:
        server.cleanup()
    boundary, step = result.threshold, step_hours * 3600
    panels = []
    for module_id, title in modules:
        counts = {}
        for ts, dummy in before[module_id]:
            counts[ts - ts % step] = counts.get(ts - ts % step, 0) + 1
        means = set(ts for ts, dummy in after[module_id] if ts < boundary and counts.get(ts, 0) > 1)
        old_before = len([p for p in before[module_id] if p[0] < boundary])
        old_after = len([p for p in after[module_id] if p[0] < boundary])
        panels.append({"title": "%s: %d old rows -> %d" % (title, old_before, old_after),
                       "before": before[module_id], "after": after[module_id], "means": means})
    return panels, result, boundary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--output", default=os.path.join(REPO, "docs", "images", "compaction.png"))
    parser.add_argument("--days", type=int, default=5, help="days of generated data (default 5)")
    parser.add_argument("--days-compact", type=int, default=3, help="days_compact (default 3)")
    parser.add_argument("--step", type=int, default=1, help="step_compact in hours (default 1)")
    parser.add_argument("--now", type=int, default=1764000000, help="epoch of 'now' (fixed: same picture)")
    args = parser.parse_args(argv)
    panels, result, boundary = collect(args.days, args.days_compact, args.step, args.now)
    t1 = args.now
    t0 = args.now - args.days * 86400
    t0 -= t0 % 3600
    directory = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(directory):
        os.makedirs(directory)
    title = "Compaction: old data averaged, same graph"
    subtitle = "A real run on generated data: days_compact=%d, step_compact=%d h; %d rows became %d." % (
        args.days_compact, args.step, result.rows, result.details["windows"])
    render(panels, t0, t1, boundary, args.step * 3600, title, subtitle, args.output)
    sys.stdout.write("wrote %s (%d raw rows compacted into %d means)\n" % (
        args.output, result.rows, result.details["windows"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
