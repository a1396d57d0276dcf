"""Helpers for the compaction tests: seeding series, window snapshots, the invariants.

A *snapshot* is one entry per (module, aligned window) of ``tagente_datos``,
computed by the server: row count, non-NULL count, sum, mean, first timestamp
and a fingerprint of the exact rows.  Comparing the snapshot taken before a
compaction with one taken after (or after a crash) checks the invariants of
the issue window by window.
"""

import math
import os

DAY = 86400
HOUR = 3600
PROC_AND_STRING_TYPES = (2, 6, 9, 18, 21, 31, 35, 100, 3, 10, 17, 23, 33, 36, 38)


class Window(object):
    __slots__ = ("n", "nonnull", "total", "mean", "first", "fingerprint")

    def __init__(self, n, nonnull, total, mean, first, fingerprint):
        self.n = int(n)
        self.nonnull = int(nonnull)
        self.total = None if total is None else float(total)
        self.mean = None if mean is None else float(mean)
        self.first = int(first)
        self.fingerprint = fingerprint

    def __repr__(self):
        return "Window(n=%d, mean=%r, first=%d)" % (self.n, self.mean, self.first)


def snapshot(conn, step, table="tagente_datos"):
    """{(module, window index): Window} for every row with a timestamp >= 0."""
    with conn.cursor() as cur:
        cur.execute("SET SESSION group_concat_max_len = 1048576")
        cur.execute(
            "SELECT id_agente_modulo, utimestamp DIV %s, COUNT(*), COUNT(datos), SUM(datos), AVG(datos),"
            " MIN(utimestamp), MD5(GROUP_CONCAT(CONCAT(utimestamp, '=', IFNULL(datos, 'NULL'))"
            " ORDER BY utimestamp, datos SEPARATOR ';'))"
            " FROM `" + table + "` WHERE utimestamp >= 0 GROUP BY 1, 2", (step,))
        return dict(((int(r[0]), int(r[1])), Window(*r[2:])) for r in cur.fetchall())


def outside_rows(conn):
    """Fingerprint of rows no window covers (NULL or negative timestamps)."""
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*), MD5(GROUP_CONCAT(CONCAT(id_agente_modulo, ':', IFNULL(utimestamp, 'N'), '=',"
                    " IFNULL(datos, 'NULL')) ORDER BY id_agente_modulo, utimestamp, datos))"
                    " FROM tagente_datos WHERE utimestamp IS NULL OR utimestamp < 0")
        return cur.fetchone()


def eligible_modules(conn):
    """Ids of the modules compaction may touch (catalogued, numeric, not proc)."""
    with conn.cursor() as cur:
        cur.execute("SELECT id_agente_modulo FROM tagente_modulo WHERE id_tipo_modulo NOT IN (%s)"
                    % ", ".join(str(t) for t in PROC_AND_STRING_TYPES))
        return set(int(r[0]) for r in cur.fetchall())


def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)


def check_windows(before, after, step, boundary, eligible, complete):
    """Return a list of problems (empty = every invariant holds).

    * no window appears or disappears;
    * a window that must not be compacted (ineligible module, not wholly
      older than ``boundary``, a single row) is byte-identical;
    * a compactable window holds either all its raw rows (only when
      ``complete`` is False) or exactly one row, at the window start, whose
      value is the mean of the raw non-NULL values (NULL if there were none).
    """
    problems = []
    if set(before) != set(after):
        missing = sorted(set(before) - set(after))[:5]
        extra = sorted(set(after) - set(before))[:5]
        problems.append("windows differ: missing %s, new %s" % (missing, extra))
    for key, old in sorted(before.items()):
        new = after.get(key)
        if new is None:
            continue
        module, w = key
        compactable = module in eligible and (w + 1) * step <= boundary and old.n > 1
        raw_intact = new.n == old.n and new.fingerprint == old.fingerprint
        if not compactable:
            if not raw_intact:
                problems.append("%s must be untouched: before %r, after %r" % (key, old, new))
            continue
        expected = old.total / old.nonnull if old.nonnull else None
        is_mean = new.n == 1 and new.first == w * step and close(new.mean, expected)
        if complete and not is_mean:
            problems.append("%s not compacted to its mean %r: %r" % (key, expected, new))
        elif not complete and not (raw_intact or is_mean):
            problems.append("%s is neither raw nor its mean %r: before %r, after %r" % (key, expected, old, new))
    return problems


def seed_series(conn, module_id, points, type_id=1, agent_id=1):
    """Insert one module and its ``[(utimestamp, value or None), ...]``."""
    with conn.cursor() as cur:
        cur.execute("INSERT IGNORE INTO tagente (id_agente, nombre, alias, direccion, comentarios, id_grupo,"
                    " id_os, os_version, agent_version) VALUES (%s, %s, %s, '', '', 0, 1, '', '')",
                    (agent_id, "agent-%d" % agent_id, "agent-%d" % agent_id))
        cur.execute("INSERT INTO tagente_modulo (id_agente_modulo, id_agente, id_tipo_modulo, nombre, descripcion,"
                    " module_interval, id_modulo) VALUES (%s, %s, %s, %s, '', 300, 1)",
                    (module_id, agent_id, type_id, "module-%d" % module_id))
        if points:
            cur.executemany("INSERT INTO tagente_datos (id_agente_modulo, datos, utimestamp) VALUES (%s, %s, %s)",
                            [(module_id, value, ts) for ts, value in points])


def series(conn, module_id):
    """The stored series of a module, ordered (test datasets are small)."""
    with conn.cursor() as cur:
        cur.execute("SELECT utimestamp, datos FROM tagente_datos WHERE id_agente_modulo = %s AND utimestamp >= 0"
                    " ORDER BY utimestamp, datos", (module_id,))
        return [(int(ts), None if v is None else float(v)) for ts, v in cur.fetchall()]


def window_means(points, step, boundary):
    """What the compacted series must be, computed in Python from the raw points.

    Windows wholly before ``boundary`` with two or more rows become one point
    at the window start (mean of the non-NULL values, None if all are NULL);
    everything else stays as it is.
    """
    windows = {}
    for ts, value in points:
        windows.setdefault(ts - ts % step, []).append((ts, value))
    out = []
    for start in sorted(windows):
        rows = windows[start]
        if start + step <= boundary and len(rows) > 1:
            values = [v for dummy, v in rows if v is not None]
            out.append((start, math.fsum(values) / len(values) if values else None))
        else:
            out.extend(sorted(rows, key=lambda r: (r[0], -1e308 if r[1] is None else r[1])))
    return out


def same_series(a, b):
    if len(a) != len(b):
        return False
    return all(ta == tb and close(va, vb) for (ta, va), (tb, vb) in zip(a, b))


CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compact_child.py")


def set_tokens(conn, tokens):
    """Set (value) or remove (None) only the given tconfig tokens."""
    with conn.cursor() as cur:
        for token, value in tokens.items():
            cur.execute("DELETE FROM tconfig WHERE token = %s", (token,))
            if value is not None:
                cur.execute("INSERT INTO tconfig (token, value) VALUES (%s, %s)", (token, str(value)))


def data_checksums(conn):
    """CHECKSUM TABLE of the tables compaction reads or writes."""
    with conn.cursor() as cur:
        cur.execute("CHECKSUM TABLE tagente_datos, tagente_datos_string, tagente_datos_inc, tagente_modulo, tconfig")
        return dict((row[0].split(".")[-1], row[1]) for row in cur.fetchall())


def module_marks(conn):
    """{module id: high-water mark} as the engine would read it (column or tconfig tokens)."""
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE()"
                    " AND table_name = 'tagente_modulo' AND column_name = 'last_compact'")
        if cur.fetchone()[0]:
            cur.execute("SELECT id_agente_modulo, UNIX_TIMESTAMP(last_compact) FROM tagente_modulo")
            return dict((int(m), int(v or 0)) for m, v in cur.fetchall())
        cur.execute("SELECT token, value FROM tconfig WHERE token IN ('last_compact', 'last_compact_resume')"
                    " ORDER BY id_config")
        tokens = {}
        for token, value in cur.fetchall():
            tokens.setdefault(token, value)
        cur.execute("SELECT id_agente_modulo FROM tagente_modulo")
        ids = [int(r[0]) for r in cur.fetchall()]
    global_mark = int(tokens.get("last_compact") or 0)
    resume = tokens.get("last_compact_resume")
    out = {}
    for module_id in ids:
        mark = global_mark
        if resume:
            target, done_id, page_id, position = (int(x) for x in resume.split(":"))
            if module_id <= done_id:
                mark = max(mark, target)
            elif module_id <= page_id:
                mark = max(mark, position)
        out[module_id] = mark
    return out


def check_marks(before, after, marks, step, boundary, eligible, exact=False):
    """A mark is never ahead of the data: compactable windows below a module's mark
    are compacted.  With ``exact`` (a clean stop), those at or above it are raw too.
    Returns a list of problems."""
    problems = []
    for (module, w), old in sorted(before.items()):
        if module not in eligible or (w + 1) * step > boundary or old.n < 2:
            continue
        new = after.get((module, w))
        mark = marks.get(module, 0)
        if (w + 1) * step <= mark and not (new and new.n == 1):
            problems.append("module %s window %s is below its mark %s but not compacted" % (module, w, mark))
        if exact and w * step >= mark and not (new and new.n == old.n and new.fingerprint == old.fingerprint):
            problems.append("module %s window %s is above its mark %s but not raw" % (module, w, mark))
    return problems
