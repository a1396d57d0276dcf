# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Step ``compact`` of the maintenance: average old numeric data, never lose any.

What it does (the legacy semantics of pandora_db.pl up to 7.0NG.773, done right):

* only ``tagente_datos`` rows in whole windows older than ``now - days_compact``
  days are touched;
* windows are ``step_compact`` hours long and aligned to multiples of the step
  since the epoch (UTC), so a window is a fixed thing and a rerun recognises
  what it already did;
* per module, every window holding two or more raw rows becomes one row: the
  mean of its non-NULL values, stamped at the window start; a window holding a
  single row (raw or an earlier mean) is left as it is;
* proc and keep-alive module types and string data are never touched;
* the averaging is done by the server (``INSERT ... SELECT AVG() ... GROUP BY``);
  Python only ever holds counters;
* modules are taken a page at a time (up to 1000, in id order) and the page
  is walked through time: each transaction covers one bounded time range of
  the page's modules (time-major, like the order Pandora writes rows in, so
  each database page is visited once).  In one transaction the means are
  computed, the raw rows of exactly those windows deleted (the count is
  checked against the aggregate), the means inserted, then COMMIT.  A crash
  at any point leaves either the raw rows or their means, never both or
  neither;
* a per-module high-water mark (``tagente_modulo.last_compact``, or the
  ``tconfig`` tokens ``last_compact`` / ``last_compact_resume`` on schemas
  without that column and on the history database) lets each run start where
  the previous one stopped.  A mark is never ahead of the data; it may lag
  behind after a crash, which only makes the next run look again at windows
  that already hold one row each, and leave them alone.  ``max_runtime`` and
  ``compact_row_budget`` split a large backlog over several runs.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible_collections.pandorafms.server.plugins.module_utils._connection import column_exists, pymysql
from ansible_collections.pandorafms.server.plugins.module_utils._context import DAY, OutOfTime, StepResult
from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConfigError, OperationFailed
from ansible_collections.pandorafms.server.plugins.module_utils._tconfig import parse_number

HOUR = 3600

# Module types whose data is a state, not a measure: averaging 0/1 samples
# would invent states.  Same list as upstream (generic_proc, remote_icmp_proc,
# remote_tcp_proc, remote_snmp_proc, async_proc, web_proc, remote_cmd_proc,
# keep_alive).
PROC_TYPES = (2, 6, 9, 18, 21, 31, 35, 100)
# String types keep their data in tagente_datos_string, which is never
# touched; should such a module have numeric rows anyway they are left alone.
STRING_TYPES = (3, 10, 17, 23, 33, 36, 38)
EXCLUDED_TYPES = PROC_TYPES + STRING_TYPES

TABLE = "tagente_datos"
TMP_TABLE = "pandora_compact_windows"
RESUME_TOKEN = "last_compact_resume"
MARK_TOKEN = "last_compact"

DEFAULT_CHUNK_ROWS = 20000       # raw rows per transaction (target)
MAX_CHUNK_WINDOWS = 24 * 400     # never more windows than this in one transaction
MODULE_PAGE = 1000               # modules per page (keyset pagination; one IN list)
MARKS_EVERY = 5.0                # seconds between high-water mark writes inside a page
MODULE_DETAILS_LIMIT = 200       # per-module totals listed in the result
PROGRESS_EVERY = 15.0            # seconds between progress lines
RETRYABLE = (1205, 1213)         # lock wait timeout, deadlock
RETRIES = 5


# -- pure helpers (unit tested) -------------------------------------------------
def window_start(ts, step):
    """Start of the aligned window holding ``ts`` (a multiple of ``step`` since the epoch)."""
    return int(ts) - int(ts) % int(step)


def compact_boundary(now, days_compact, step):
    """End (exclusive) of the last whole window older than ``now - days_compact`` days."""
    return window_start(int(now) - int(days_compact) * DAY, step)


def estimate_density(windows, modules, rows_seen, previous):
    """Raw rows per (module, window), measured on the last transaction.

    A transaction that found nothing divides the previous estimate by 8, so
    the next one covers a much longer stretch (gaps are crossed fast).
    """
    if rows_seen > 0:
        return rows_seen / float(max(1, windows * modules))
    return previous / 8.0


def chunk_span(density, modules, target_rows):
    """Windows one transaction should cover to hold about ``target_rows`` raw rows."""
    span = int(target_rows / max(density * max(1, modules), 1e-9))
    return max(1, min(span, MAX_CHUNK_WINDOWS))


def parse_resume(raw):
    """``"<target>:<done id>:<page id>:<position>"`` -> a tuple of 4 ints, or ``None``.

    Meaning, in the pass towards ``target``: modules with an id up to ``done
    id`` are compacted up to ``target``; those above it up to ``page id`` are
    compacted up to ``position``.
    """
    if raw is None:
        return None
    parts = str(raw).strip().split(":")
    if len(parts) != 4:
        return None
    try:
        target, done_id, page_id, position = (int(p) for p in parts)
    except ValueError:
        return None
    if position > target or done_id > page_id:
        return None
    return target, done_id, page_id, position


def format_resume(target, done_id, page_id, position):
    return "%d:%d:%d:%d" % (int(target), int(done_id), int(page_id), int(position))


def token_mark(module_id, global_mark, resume):
    """A module's high-water mark from ``last_compact`` and the resume point."""
    mark = global_mark
    if resume:
        target, done_id, page_id, position = resume
        if module_id <= done_id:
            mark = max(mark, target)
        elif module_id <= page_id:
            mark = max(mark, position)
    return mark


def _number(option, option_name, tconfig, source, token, default, minimum=None):
    """An option when given, else the tconfig token, else ``default``; garbage -> ConfigError."""
    if option is not None:
        return parse_number(option, "option %s" % option_name, minimum=minimum)
    if tconfig is None or not tconfig.is_set(token):
        return default
    return parse_number(tconfig.get(token), "%s token %s" % (source, token), minimum=minimum)


class CompactSettings(object):
    """Thresholds of one compaction run, resolved and validated.

    ``skipped_reason`` is set when compaction must not run (as upstream: off
    when ``days_compact`` is 0, or when data is purged before it would be
    compacted).  A ``step_compact`` below 1 hour is a :class:`ConfigError`:
    upstream 7.0NG.774+ loops forever on it.
    """

    def __init__(self, now, days_compact, step_compact, days_purge, source="tconfig token step_compact"):
        self.now = int(now)
        self.days_compact = days_compact
        self.step_compact = step_compact
        self.days_purge = days_purge
        self.source = source
        self.skipped_reason = None
        self.step = None
        self.cutoff = None
        self.boundary = None
        if not days_compact:
            self.skipped_reason = ("days_compact is 0: compaction is off (set days_compact, for example 30, "
                                   "to average data older than that many days)")
            return
        if days_purge and days_compact >= days_purge:
            self.skipped_reason = ("days_compact (%s) is not lower than days_purge (%s): data is purged before "
                                   "it is old enough to be compacted" % (days_compact, days_purge))
            return
        if step_compact is None or step_compact < 1:
            raise ConfigError(
                "%s is %s; it must be a whole number of hours, 1 or more (the length of the windows data "
                "older than days_compact is averaged over). Upstream 7.0NG.774+ loops forever on such a value; "
                "set step_compact to 1, or turn compaction off with days_compact 0"
                % (source, "unset" if step_compact is None else step_compact))
        self.step = int(step_compact) * HOUR
        self.cutoff = self.now - int(days_compact) * DAY
        self.boundary = compact_boundary(self.now, days_compact, self.step)

    @classmethod
    def resolve(cls, now, tconfig, options, prefix="", source="tconfig"):
        """Options (``<prefix>days_compact`` ...) win over ``tconfig`` when not ``None``.

        ``source`` names where the tokens come from, for error messages.
        """
        options = options or {}

        def opt(key):
            return options.get(prefix + key)

        days_compact = _number(opt("days_compact"), prefix + "days_compact", tconfig, source, "days_compact", 0, 0)
        days_purge = _number(opt("days_purge"), prefix + "days_purge", tconfig, source, "days_purge", 0, 0)
        step = _number(opt("step_compact"), prefix + "step_compact", tconfig, source, "step_compact", None)
        step_source = ("option %sstep_compact" % prefix if opt("step_compact") is not None
                       else "%s token step_compact" % source)
        return cls(now, days_compact, step, days_purge, source=step_source)

    def as_dict(self):
        return {"days_compact": self.days_compact, "step_compact": self.step_compact,
                "days_purge": self.days_purge, "cutoff": self.cutoff, "boundary": self.boundary}


def _in_list(values):
    return ", ".join(str(int(v)) for v in values)


# -- where the modules and their high-water marks come from ------------------------
class Page(object):
    """Up to MODULE_PAGE modules: ``entries`` = [(id, mark)], ids in ``(done_before, last_id]``."""

    def __init__(self, entries, done_before, last_id):
        self.entries = entries
        self.done_before = done_before
        self.last_id = last_id


class ColumnMarks(object):
    """``tagente_modulo.last_compact`` (7.0NG.774+ schemas): one mark per module.

    The mark is the end (exclusive) of the windows already compacted.
    """

    kind = "column"
    write_every = MARKS_EVERY       # a write touches up to a page of tagente_modulo rows

    def __init__(self, conn):
        self.conn = conn

    def modules(self, cur, after_id, limit):
        """``([(module id, mark), ...], id to continue after or None)``."""
        cur.execute(
            "SELECT id_agente_modulo, COALESCE(UNIX_TIMESTAMP(last_compact), 0) FROM tagente_modulo"
            " WHERE id_agente_modulo > %s AND id_tipo_modulo NOT IN (" + _in_list(EXCLUDED_TYPES) + ")"
            " ORDER BY id_agente_modulo LIMIT %s", (after_id, limit))
        page = [(int(row[0]), int(row[1] or 0)) for row in cur.fetchall()]
        return page, (page[-1][0] if len(page) == limit else None)

    def start_pass(self, boundary):
        return None

    def save(self, cur, module_ids, position, page):
        cur.execute("UPDATE tagente_modulo SET last_compact = FROM_UNIXTIME(%s) WHERE id_agente_modulo IN ("
                    + _in_list(module_ids) + ")", (int(position),))

    def page_done(self, page):
        return None

    def finish(self, complete):
        return False


class TokenMarks(object):
    """``tconfig`` marks, for schemas without ``tagente_modulo.last_compact`` and the history DB.

    ``last_compact`` (as upstream's legacy code) is the boundary every module
    has been compacted up to.  While a pass towards a newer boundary is under
    way, ``last_compact_resume`` (see :func:`parse_resume`) records how far it
    got; it is written in the same transaction as the data it describes, and
    dropped when ``last_compact`` moves at the end of the pass.
    """

    kind = "token"
    write_every = 0.0               # one tconfig row: written with every transaction

    def __init__(self, conn, module_source):
        self.conn = conn
        self.source = module_source
        self.global_mark = 0
        self.resume = None
        self.resume_id = None       # id_config of the resume row, once known
        self._target = None
        self._pending = None        # a resume value not written yet

    def load(self):
        with self.conn.cursor() as cur:
            cur.execute("SELECT id_config, token, value FROM tconfig WHERE token IN (%s, %s) ORDER BY id_config",
                        (MARK_TOKEN, RESUME_TOKEN))
            rows = cur.fetchall()
        seen = set()
        for id_config, token, value in rows:
            if token in seen:
                continue
            seen.add(token)
            if token == MARK_TOKEN:
                if value is not None and str(value).strip() != "":
                    self.global_mark = int(parse_number(value, "tconfig token last_compact", minimum=0,
                                                        allow_float=True))
            else:
                self.resume = parse_resume(value)
                self.resume_id = id_config
        return self

    def modules(self, cur, after_id, limit):
        ids, next_after = self.source(cur, after_id, limit)
        return [(module_id, token_mark(module_id, self.global_mark, self.resume)) for module_id in ids], next_after

    def start_pass(self, boundary):
        self._target = boundary

    def save(self, cur, module_ids, position, page):
        self._pending = None
        self._write_resume(cur, format_resume(self._target, page.done_before, page.last_id, position))

    def page_done(self, page):
        # Written with the next transaction, or when the run ends.
        self._pending = format_resume(self._target, page.last_id, page.last_id, self._target)

    def _write_resume(self, cur, value):
        if self.resume_id is not None:
            cur.execute("UPDATE tconfig SET value = %s WHERE id_config = %s AND token = %s",
                        (value, self.resume_id, RESUME_TOKEN))
            cur.execute("SELECT COUNT(*) FROM tconfig WHERE id_config = %s AND token = %s",
                        (self.resume_id, RESUME_TOKEN))
            if cur.fetchone()[0]:
                return
        cur.execute("INSERT INTO tconfig (token, value) VALUES (%s, %s)", (RESUME_TOKEN, value))
        self.resume_id = cur.lastrowid

    def finish(self, complete):
        """End of a run: a complete pass moves ``last_compact`` and drops the resume token.

        Returns True when it wrote something.
        """
        boundary = self._target
        if not complete:
            if self._pending is None:
                return False
            value, self._pending = self._pending, None
            _transaction(self.conn, lambda cur: self._write_resume(cur, value))
            return True
        self._pending = None
        if self.global_mark >= boundary and self.resume_id is None:
            return False

        def close_pass(cur):
            cur.execute("DELETE FROM tconfig WHERE token = %s", (RESUME_TOKEN,))
            if self.global_mark < boundary:
                cur.execute("DELETE FROM tconfig WHERE token = %s", (MARK_TOKEN,))
                cur.execute("INSERT INTO tconfig (token, value) VALUES (%s, %s)", (MARK_TOKEN, str(boundary)))

        _transaction(self.conn, close_pass)
        self.resume_id = None
        self.global_mark = max(self.global_mark, boundary)
        return True


def catalog_source(cur, after_id, limit):
    """Module ids from this database's ``tagente_modulo`` (non-proc, non-string types)."""
    cur.execute("SELECT id_agente_modulo FROM tagente_modulo WHERE id_agente_modulo > %s"
                " AND id_tipo_modulo NOT IN (" + _in_list(EXCLUDED_TYPES) + ")"
                " ORDER BY id_agente_modulo LIMIT %s", (after_id, limit))
    ids = [int(row[0]) for row in cur.fetchall()]
    return ids, (ids[-1] if len(ids) == limit else None)


class DataSource(object):
    """Module ids found in ``tagente_datos`` itself (the history DB), typed from a catalog.

    A history database's ``tagente_modulo`` is often empty, so the types come
    from it when it knows the module, else from the main database's.  A module
    whose type nobody knows is left alone (it could be a proc module).
    """

    def __init__(self, catalogs):
        self.catalogs = [c for c in catalogs if c is not None]
        self.unknown = 0
        self.unknown_ids = []

    def __call__(self, cur, after_id, limit):
        """``(eligible ids, id to continue after or None)``; the ids skipped are not seen again."""
        out = []
        while not out:
            ids = self._next_ids(cur, after_id, limit)
            if not ids:
                return [], None
            types = {}
            for conn in self.catalogs:
                missing = [i for i in ids if i not in types]
                if not missing:
                    break
                with conn.cursor() as ccur:
                    ccur.execute("SELECT id_agente_modulo, id_tipo_modulo FROM tagente_modulo WHERE"
                                 " id_agente_modulo IN (" + _in_list(missing) + ")")
                    for module_id, type_id in ccur.fetchall():
                        types[int(module_id)] = int(type_id)
            for module_id in ids:
                if module_id not in types:
                    self.unknown += 1
                    if len(self.unknown_ids) < MODULE_DETAILS_LIMIT:
                        self.unknown_ids.append(module_id)
                elif types[module_id] not in EXCLUDED_TYPES:
                    out.append(module_id)
            after_id = ids[-1]
            if len(ids) < limit:
                return out, None
        return out, after_id

    @staticmethod
    def _next_ids(cur, after_id, limit):
        # One index dive per module (MIN over data_index1), whatever the
        # optimizer's statistics: never a scan of the table or its index.
        ids = []
        while len(ids) < limit:
            cur.execute("SELECT MIN(id_agente_modulo) FROM " + TABLE + " WHERE id_agente_modulo > %s", (after_id,))
            found = cur.fetchone()[0]
            if found is None:
                break
            after_id = int(found)
            ids.append(after_id)
        return ids


# -- the step ------------------------------------------------------------------------
class _Totals(object):
    def __init__(self):
        self.modules_scanned = 0
        self.modules_compacted = 0
        self.windows = 0
        self.rows = 0
        self.marks_advanced = 0
        self.transactions = 0
        self.modules = []
        self.modules_truncated = False
        self.last_module = None
        self.position = None
        self.stop_reason = None

    def add_modules(self, per_module):
        """``{module id: [windows, rows]}`` of one page, listed in id order."""
        for module_id in sorted(per_module):
            windows, rows = per_module[module_id]
            if not windows:
                continue
            self.modules_compacted += 1
            if len(self.modules) < MODULE_DETAILS_LIMIT:
                self.modules.append({"id": module_id, "windows": windows, "rows": rows})
            else:
                self.modules_truncated = True


class _Stop(Exception):
    """The row budget is used up (the run stops cleanly, like OutOfTime)."""


class CompactStep(object):
    """Step ``compact`` of ``pandora_db_maintain`` on the main or the history database."""

    name = "compact"

    def __init__(self, database="main"):
        if database not in ("main", "history"):
            raise ValueError("database must be 'main' or 'history'")
        self.database = database

    # -- inputs ----------------------------------------------------------------
    def _conn(self, ctx):
        return ctx.conn if self.database == "main" else ctx.history_conn

    def _settings(self, ctx):
        if self.database == "main":
            return CompactSettings.resolve(ctx.now, ctx.tconfig, ctx.options, source="tconfig")
        return CompactSettings.resolve(ctx.now, ctx.history_tconfig, ctx.options, prefix="history_",
                                       source="the history database's tconfig")

    def _log(self, ctx, msg):
        ctx.log("COMPACT", msg if self.database == "main" else "[history] " + msg)

    def _result(self, settings, totals, seconds, skipped_reason=None, extra=None, marks=None):
        details = {"mark_store": marks.kind if marks is not None else None}
        source = getattr(marks, "source", None)
        if isinstance(source, DataSource):
            details["modules_unknown_type"] = source.unknown
            details["modules_unknown_type_ids"] = list(source.unknown_ids)
        if settings is not None:
            details.update(settings.as_dict())
        if totals is not None:
            details.update({
                "modules_scanned": totals.modules_scanned,
                "modules_compacted": totals.modules_compacted,
                "windows": totals.windows,
                "rows_deleted": totals.rows,
                "rows_inserted": totals.windows,
                "marks_advanced": totals.marks_advanced,
                "transactions": totals.transactions,
                "modules": totals.modules,
                "modules_listed_truncated": totals.modules_truncated,
                "stopped_early": totals.stop_reason is not None,
                "stop_reason": totals.stop_reason,
                "last_module": totals.last_module,
                "stopped_at": totals.position if totals.stop_reason else None,
                "rows_per_second": round(totals.rows / seconds, 1) if seconds > 0 else None,
            })
        details.update(extra or {})
        return StepResult(self.name, table=TABLE, rows=totals.rows if totals else 0, seconds=seconds,
                          threshold=settings.boundary if settings is not None else None,
                          skipped_reason=skipped_reason, database=self.database, details=details)

    def _prepare(self, ctx):
        """Settings, connection and mark store, or a skipped StepResult."""
        started = time.monotonic()
        conn = self._conn(ctx)
        if conn is None:
            return None, None, None, [self._result(None, None, 0.0, skipped_reason="no history database connection")]
        settings = self._settings(ctx)
        if settings.skipped_reason:
            self._log(ctx, "Compaction skipped: %s." % settings.skipped_reason)
            return None, None, None, [self._result(settings, None, time.monotonic() - started,
                                                   skipped_reason=settings.skipped_reason)]
        if self.database == "main" and column_exists(conn, "tagente_modulo", "last_compact"):
            marks = ColumnMarks(conn)
        elif self.database == "main":
            marks = TokenMarks(conn, catalog_source).load()
        else:
            marks = TokenMarks(conn, DataSource([conn, ctx.conn])).load()
        return settings, conn, marks, None

    # -- the walk over modules, shared by plan and run -----------------------------
    def _purge_floor(self, ctx, settings):
        """First window boundary at or after what this run's purge deletes (None: no purge ran).

        Windows below it are being purged in this same run: compacting them would be wasted work,
        and a mean stamped before the purge cutoff would be deleted by the next run (so a rerun
        would not be a no-op), and in check mode it would count rows the purge removes first.
        """
        purged = getattr(ctx, "purged_before", None) or {}
        cutoff = purged.get((self.database, TABLE))
        if not cutoff or cutoff <= 0:
            return None
        return -(-int(cutoff) // settings.step) * settings.step

    def _pages(self, conn, settings, marks, floor=None):
        """Yield a :class:`Page` at a time; its entries are ``(module id, start or None)``.

        ``start`` is the first window to look at (from the module's mark, or its
        oldest row when it has none, and never below ``floor``); None when there is
        nothing to do.
        """
        step, boundary = settings.step, settings.boundary
        after, done_before = 0, 0
        while after is not None:
            with conn.cursor() as cur:
                rows, after = marks.modules(cur, after, MODULE_PAGE)
            entries = []
            for module_id, mark in rows:
                start = None
                if 0 < mark < boundary:
                    start = window_start(mark, step)
                elif mark <= 0:
                    with conn.cursor() as cur:
                        cur.execute("SELECT MIN(utimestamp) FROM " + TABLE + " WHERE id_agente_modulo = %s"
                                    " AND utimestamp >= 0", (module_id,))
                        first = cur.fetchone()[0]
                    if first is not None and first < boundary:
                        start = window_start(first, step)
                if start is not None and floor is not None and start < floor:
                    start = floor if floor < boundary else None
                entries.append((module_id, start))
            if not entries:
                continue
            page = Page(entries, done_before, entries[-1][0])
            done_before = page.last_id
            yield page

    # -- check mode ------------------------------------------------------------------
    def plan(self, ctx):
        started = time.monotonic()
        settings, conn, marks, skipped = self._prepare(ctx)
        if skipped:
            return skipped
        totals = _Totals()
        self._log(ctx, "Check mode: compaction of data older than %s (days_compact=%s) in windows of %s h." % (
            _utc(settings.boundary), settings.days_compact, settings.step_compact))
        try:
            with _utc_session(conn):
                for page in self._pages(conn, settings, marks, self._purge_floor(ctx, settings)):
                    per_module = {}
                    for module_id, start in page.entries:
                        ctx.check_time()
                        totals.modules_scanned += 1
                        totals.last_module = module_id
                        if start is None:
                            continue
                        with conn.cursor() as cur:
                            cur.execute(
                                "SELECT COUNT(*), COALESCE(SUM(n), 0) FROM (SELECT COUNT(*) AS n FROM " + TABLE +
                                " WHERE id_agente_modulo = %s AND utimestamp >= %s AND utimestamp < %s"
                                " GROUP BY utimestamp DIV %s HAVING COUNT(*) > 1) w",
                                (module_id, start, settings.boundary, settings.step))
                            windows, rows = (int(v) for v in cur.fetchone())
                        totals.marks_advanced += 1
                        totals.windows += windows
                        totals.rows += rows
                        per_module[module_id] = [windows, rows]
                    totals.add_modules(per_module)
        except OutOfTime:
            totals.stop_reason = "max_runtime"
        seconds = time.monotonic() - started
        self._log(ctx, "Check mode: %d elements would be compacted into %d elements (%d modules)." % (
            totals.rows, totals.windows, totals.modules_compacted))
        return [self._result(settings, totals, seconds, extra={"check_mode": True}, marks=marks)]

    # -- the real thing ------------------------------------------------------------------
    def run(self, ctx):
        if ctx.check_mode:
            return self.plan(ctx)
        started = time.monotonic()
        settings, conn, marks, skipped = self._prepare(ctx)
        if skipped:
            return skipped
        budget, chunk_rows = compact_limits(ctx.options)
        walker = _Walker(ctx, settings, conn, marks, budget, chunk_rows)
        totals = walker.totals
        self._log(ctx, "Compacting data older than %s (days_compact=%s) in windows of %s h%s." % (
            _utc(settings.boundary), settings.days_compact, settings.step_compact,
            "" if budget is None else ", row budget %d" % budget))
        marks.start_pass(settings.boundary)
        last_progress = time.monotonic()
        previous_autocommit = conn.get_autocommit()
        if not previous_autocommit:
            conn.autocommit(True)
        try:
            with _utc_session(conn), _window_table(conn):
                for page in self._pages(conn, settings, marks, self._purge_floor(ctx, settings)):
                    ctx.check_time()
                    walker.page(page)
                    if time.monotonic() - last_progress >= PROGRESS_EVERY:
                        last_progress = time.monotonic()
                        self._log(ctx, "Progress: %d modules scanned (up to id %d), %d elements compacted into %d"
                                  " (%.0f rows/s)." % (totals.modules_scanned, page.last_id, totals.rows,
                                                       totals.windows,
                                                       totals.rows / max(last_progress - started, 1e-6)))
        except OutOfTime:
            totals.stop_reason = "max_runtime"
        except _Stop:
            totals.stop_reason = "compact_row_budget"
        finally:
            if not previous_autocommit:
                conn.autocommit(False)
        marks.finish(totals.stop_reason is None)
        seconds = time.monotonic() - started
        self._log(ctx, "A total of %d elements has been compacted into %d elements (%d modules)." % (
            totals.rows, totals.windows, totals.modules_compacted))
        if totals.stop_reason:
            self._log(ctx, "Stopped early (%s) in the modules up to id %s, at %s; the next run resumes there." % (
                totals.stop_reason, totals.last_module, _utc(totals.position)))
        self._log(ctx, "Time taken: %.1f seconds." % seconds)
        return [self._result(settings, totals, seconds, marks=marks)]


def _option_int(options, key, default):
    value = (options or {}).get(key)
    if value is None:
        return default
    return int(parse_number(value, "option %s" % key, minimum=1))


def compact_limits(options):
    """``(compact_row_budget, compact_chunk_rows)`` from the options, validated (both 1 or more).

    The runner calls it before any step, in check mode too, so a value the run refuses is refused first.
    """
    return (_option_int(options, "compact_row_budget", None),
            _option_int(options, "compact_chunk_rows", DEFAULT_CHUNK_ROWS))


class _Walker(object):
    """Walks the pages of one run through time, one transaction per bounded range."""

    def __init__(self, ctx, settings, conn, marks, budget, chunk_rows):
        self.ctx = ctx
        self.settings = settings
        self.conn = conn
        self.marks = marks
        self.budget = budget
        self.chunk_rows = chunk_rows
        self.totals = _Totals()
        self.density = 12.0 * settings.step_compact   # first guess: 5-minute data

    def page(self, page):
        """Compact every module of ``page`` from its start to the boundary.

        The page is walked through time from its oldest start; a module joins
        the transactions when the walk reaches its own start, so each module's
        range is exactly [start, boundary), as check mode predicts.
        """
        totals, step, boundary = self.totals, self.settings.step, self.settings.boundary
        todo = sorted((start, module_id) for module_id, start in page.entries if start is not None)
        totals.modules_scanned += len(page.entries)
        totals.last_module = page.last_id
        if not todo:
            self.marks.page_done(page)
            return
        per_module, active, joined = {}, [], 0
        first = a = marks_at = todo[0][0]
        marks_written = time.monotonic()
        try:
            while a < boundary:
                while joined < len(todo) and todo[joined][0] <= a:
                    active.append(todo[joined][1])
                    per_module[todo[joined][1]] = [0, 0]
                    joined += 1
                    totals.marks_advanced += 1
                limit = min(boundary, todo[joined][0]) if joined < len(todo) else boundary
                b = min(limit, a + chunk_span(self.density, len(active), self.chunk_rows) * step)
                due = b >= boundary or time.monotonic() - marks_written >= self.marks.write_every
                if a != first:
                    self.ctx.check_time()
                windows, rows, seen = self._range(active, a, b, page, per_module, due)
                if due:
                    marks_written, marks_at = time.monotonic(), b
                totals.transactions += 1
                totals.windows += windows
                totals.rows += rows
                self.density = estimate_density((b - a) // step, len(active), seen, self.density)
                a = totals.position = b
                self.ctx.pause()
                if self.budget is not None and totals.rows >= self.budget and a < boundary:
                    raise _Stop()
            self.marks.page_done(page)
        except (OutOfTime, _Stop):
            # Stopping between two transactions: the marks catch up with the data.
            if marks_at < a:
                _transaction(self.conn, lambda cur: self.marks.save(cur, active, a, page))
            raise
        finally:
            totals.add_modules(per_module)
        if self.budget is not None and totals.rows >= self.budget:
            raise _Stop()

    def _range(self, active, a, b, page, per_module, save_marks):
        """One transaction: the windows of the ``active`` modules in ``[a, b)``."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._range_once(active, a, b, page, per_module, save_marks)
            except _Retry as exc:
                if attempt >= RETRIES:
                    raise OperationFailed(
                        "compaction of %d modules (ids %s to %s), %s to %s, failed %d times (%s); every attempt "
                        "was rolled back, nothing was lost" % (len(active), min(active), max(active), _utc(a),
                                                               _utc(b), attempt, exc))
                time.sleep(0.05 * attempt)

    def _range_once(self, active, a, b, page, per_module, save_marks):
        conn, step = self.conn, self.settings.step
        ids = _in_list(active)
        cur = conn.cursor()
        try:
            cur.execute("DELETE FROM " + TMP_TABLE)
            conn.begin()
            # The means of every window of the range.  This read locks the
            # range's rows, so no other session can slip a row in before the
            # delete below.
            cur.execute(
                "INSERT INTO " + TMP_TABLE + " (id, w, mean, n)"
                " SELECT id_agente_modulo, utimestamp DIV %s, AVG(datos), COUNT(*) FROM " + TABLE +
                " WHERE id_agente_modulo IN (" + ids + ") AND utimestamp >= %s AND utimestamp < %s"
                " GROUP BY id_agente_modulo, utimestamp DIV %s", (step, a, b, step))
            cur.execute("SELECT id, SUM(n > 1), COUNT(*), SUM(IF(n > 1, n, 0)), SUM(n) FROM " + TMP_TABLE +
                        " GROUP BY id")
            whole, mixed, found = [], [], {}
            windows = rows = seen = 0
            for module_id, compact, with_data, compact_rows, all_rows in cur.fetchall():
                compact, with_data, compact_rows = int(compact), int(with_data), int(compact_rows)
                seen += int(all_rows)
                if compact:
                    found[int(module_id)] = (compact, compact_rows)
                    windows += compact
                    rows += compact_rows
                    (whole if compact == with_data else mixed).append(int(module_id))
            deleted = 0
            if whole:
                # Every window holding data is compacted: the rows of the range go.
                deleted += cur.execute(
                    "DELETE FROM " + TABLE + " WHERE id_agente_modulo IN (" + _in_list(whole) + ")"
                    " AND utimestamp >= %s AND utimestamp < %s", (a, b))
            if mixed:
                # Some windows hold a single row, which stays: delete the others only.
                deleted += cur.execute(
                    "DELETE d FROM " + TABLE + " d STRAIGHT_JOIN " + TMP_TABLE + " t"
                    " ON t.id = d.id_agente_modulo AND t.w = d.utimestamp DIV %s AND t.n > 1"
                    " WHERE d.id_agente_modulo IN (" + _in_list(mixed) + ")"
                    " AND d.utimestamp >= %s AND d.utimestamp < %s", (step, a, b))
            if deleted != rows:
                # Only possible if another session added a row to the range in
                # between (READ COMMITTED); roll back and try the range again.
                raise _Retry("%d raw rows averaged but %d matched the delete" % (rows, deleted))
            if windows:
                inserted = cur.execute(
                    "INSERT INTO " + TABLE + " (id_agente_modulo, datos, utimestamp)"
                    " SELECT id, mean, w * %s FROM " + TMP_TABLE + " WHERE n > 1 ORDER BY id, w", (step,))
                if inserted != windows:
                    raise OperationFailed(
                        "compaction of modules %s to %s, %s to %s: %d means computed but %d inserted; rolled back"
                        % (min(active), max(active), _utc(a), _utc(b), windows, inserted))
            if save_marks:
                self.marks.save(cur, active, b, page)
            conn.commit()
        except _Retry:
            _rollback(conn)
            raise
        except Exception as exc:
            _rollback(conn)
            if pymysql is not None and isinstance(exc, pymysql.err.MySQLError):
                code = exc.args[0] if exc.args else None
                if code in RETRYABLE:
                    raise _Retry(str(exc))
                raise OperationFailed("compaction of modules %s to %s, %s to %s failed: %s (rolled back)" % (
                    min(active), max(active), _utc(a), _utc(b), exc))
            raise
        finally:
            cur.close()
        for module_id, (compact, compact_rows) in found.items():
            per_module[module_id][0] += compact
            per_module[module_id][1] += compact_rows
        return windows, rows, seen


class _Retry(Exception):
    pass


def _transaction(conn, statements):
    with conn.cursor() as cur:
        conn.begin()
        try:
            statements(cur)
            conn.commit()
        except Exception:
            _rollback(conn)
            raise


def _rollback(conn):
    try:
        conn.rollback()
    except Exception:  # the connection may be gone; the server rolls back by itself
        pass


def _utc(ts):
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


class _utc_session(object):
    """Session time zone UTC while compacting, restored afterwards.

    ``last_compact`` is a TIMESTAMP: writing ``FROM_UNIXTIME(x)`` in a zone
    with daylight saving time could land on an ambiguous local hour.
    """

    def __init__(self, conn):
        self.conn = conn
        self.previous = None

    def __enter__(self):
        with self.conn.cursor() as cur:
            cur.execute("SELECT @@session.time_zone")
            self.previous = cur.fetchone()[0]
            cur.execute("SET SESSION time_zone = '+00:00'")
        return self

    def __exit__(self, *exc):
        try:
            with self.conn.cursor() as cur:
                cur.execute("SET SESSION time_zone = %s", (self.previous,))
        except Exception:
            if exc[0] is None:
                raise


class _window_table(object):
    """The session's scratch table of per-window means (temporary, dropped afterwards)."""

    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        try:
            with self.conn.cursor() as cur:
                cur.execute("DROP TEMPORARY TABLE IF EXISTS " + TMP_TABLE)
                cur.execute("CREATE TEMPORARY TABLE " + TMP_TABLE + " (id INT UNSIGNED NOT NULL, w BIGINT NOT NULL,"
                            " mean DOUBLE NULL, n INT UNSIGNED NOT NULL, PRIMARY KEY (id, w)) ENGINE=MEMORY")
        except Exception as exc:
            if pymysql is not None and isinstance(exc, pymysql.err.MySQLError):
                raise OperationFailed("compaction needs a temporary table of its own and could not create it (%s);"
                                      " grant the database user CREATE TEMPORARY TABLES on the Pandora database"
                                      % exc)
            raise
        return self

    def __exit__(self, *exc):
        try:
            with self.conn.cursor() as cur:
                cur.execute("DROP TEMPORARY TABLE IF EXISTS " + TMP_TABLE)
        except Exception:
            if exc[0] is None:
                raise
