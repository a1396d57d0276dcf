# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Time-partitioned ``tagente_datos`` and ``tagente_datos_string``: layout, online conversion, drop/create.

The layout (``PARTITION BY RANGE (utimestamp)``), oldest first:

* ``p_undated``: ``VALUES LESS THAN (1)``.  Rows whose ``utimestamp`` is NULL
  (``tagente_datos`` allows it), 0 or negative land here.  It is never dropped:
  the purge deletes its non-NULL rows with the batched delete (as the plain-table
  purge does: ``0 < cutoff``) and keeps its NULL rows (the plain-table purge keeps
  them too, ``NULL < cutoff`` is not true).  So such rows never block dropping a
  dated partition, and are never dropped silently.
* ``pYYYYMMDD``: one partition per day, week (weeks start on Monday) or month,
  named by its start date in UTC, ``VALUES LESS THAN (<start of the next one>)``.
  The first dated partition also holds any row older than its start date.
* ``p_future``: ``VALUES LESS THAN MAXVALUE``, always last, so an insert with a
  future or wrong timestamp never fails.  Partitions are created ahead of time
  (``days_ahead``) by splitting it while it is empty (a metadata operation).

The interval and ``days_ahead`` are kept in the table's comment, so the layout
travels with the table (dumps, the history database) and the purge step knows
them without options.

The online conversion (both ways) copies the table into a shadow table with the
target layout while writers keep writing; see :class:`Conversion`.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import calendar
import contextlib
import datetime
import re
import time

from ansible_collections.pandorafms.server.plugins.module_utils._connection import pymysql
from ansible_collections.pandorafms.server.plugins.module_utils._errors import (
    ConfigError, OperationFailed, PreconditionFailed)

DB_ERRORS = (pymysql.err.MySQLError,) if pymysql is not None else ()
DAY = 86400
COLUMN = "utimestamp"
# Tables this layout is for: (table, index on utimestamp used by the copy).
SUPPORTED = {"tagente_datos": "idx_utimestamp", "tagente_datos_string": "idx_utimestamp"}
INTERVALS = ("day", "week", "month")
UNDATED = "p_undated"
CATCHALL = "p_future"
COMMENT_TAG = "pandorafms.server partitions"
MAX_PARTITIONS = 4000  # MariaDB allows 8192; older rows go into the first dated partition
DEFAULT_AHEAD = 7
DEFAULT_CHUNK = 20000
DEFAULT_LOCK_WAIT = 5
PROGRESS_TABLE = "pfms_partition_progress"
MIN_BIGINT = -(2 ** 63)
# Copy rate measured on the reference machine (2 shared vCPUs, MariaDB 10.11), rows/s; check mode's estimate.
ESTIMATED_COPY_RATE = 150000.0
_NAME_RE = re.compile(r"^p(\d{8})$")


# -- calendar (UTC) ----------------------------------------------------------------------------------------
def _utc(epoch):
    return datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=int(epoch))


def _epoch(dt):
    return calendar.timegm(dt.timetuple())


def period_start(epoch, interval):
    """Start (epoch, UTC) of the day / week (Monday) / month that holds ``epoch``."""
    dt = _utc(epoch)
    day = datetime.datetime(dt.year, dt.month, dt.day)
    if interval == "day":
        return _epoch(day)
    if interval == "week":
        return _epoch(day - datetime.timedelta(days=day.weekday()))
    if interval == "month":
        return _epoch(datetime.datetime(dt.year, dt.month, 1))
    raise ConfigError("interval %r: choose day, week or month" % (interval,))


def next_start(start, interval):
    if interval == "day":
        return start + DAY
    if interval == "week":
        return start + 7 * DAY
    dt = _utc(start)
    year, month = (dt.year + 1, 1) if dt.month == 12 else (dt.year, dt.month + 1)
    return _epoch(datetime.datetime(year, month, 1))


def partition_name(start):
    return "p" + _utc(start).strftime("%Y%m%d")


def name_start(name):
    """Start epoch encoded in a ``pYYYYMMDD`` name, or None."""
    match = _NAME_RE.match(name or "")
    if not match:
        return None
    try:
        return _epoch(datetime.datetime.strptime(match.group(1), "%Y%m%d"))
    except ValueError:
        return None


def parse_comment(comment):
    """``(interval, days_ahead)`` from a table comment written by :func:`make_comment`, or None."""
    text = comment or ""
    if COMMENT_TAG not in text:
        return None
    values = dict(re.findall(r"(\w+)=(\w+)", text.split(COMMENT_TAG, 1)[1]))
    interval = values.get("interval") if values.get("interval") in INTERVALS else "day"
    try:
        ahead = int(values.get("ahead", DEFAULT_AHEAD))
    except ValueError:
        ahead = DEFAULT_AHEAD
    return interval, ahead


def make_comment(interval, ahead):
    return "%s: interval=%s ahead=%d" % (COMMENT_TAG, interval, ahead)


def validate_options(interval, days_ahead, chunk_rows=DEFAULT_CHUNK, lock_wait=DEFAULT_LOCK_WAIT):
    if interval not in INTERVALS:
        raise ConfigError("option interval is %r; choose one of %s" % (interval, ", ".join(INTERVALS)))
    for name, value, low, high in (("days_ahead", days_ahead, 1, 3650), ("chunk_rows", chunk_rows, 100, 10000000),
                                   ("lock_wait", lock_wait, 1, 3600)):
        if value is None or not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ConfigError("option %s is %r; give a whole number from %d to %d" % (name, value, low, high))


# -- reading the layout ------------------------------------------------------------------------------------
class Partition(object):
    """One partition: ``upper`` is its ``VALUES LESS THAN`` bound (None = MAXVALUE)."""

    def __init__(self, name, upper, rows=0, data_bytes=0, index_bytes=0):
        self.name = name
        self.upper = upper
        self.rows = rows
        self.bytes = data_bytes + index_bytes
        self.start = name_start(name)

    @property
    def dated(self):
        return self.start is not None and self.upper is not None


class Layout(object):
    """What ``information_schema`` says about one table's partitioning."""

    def __init__(self, table, exists, partitions=(), method=None, expression=None, comment=""):
        self.table = table
        self.exists = exists
        self.partitions = list(partitions)
        self.method = method
        self.expression = (expression or "").strip("`")
        self.comment = comment
        settings = parse_comment(comment)
        self.interval, self.ahead = settings if settings else (None, None)

    @property
    def partitioned(self):
        return bool(self.partitions)

    @property
    def managed(self):
        """Our layout: RANGE on utimestamp, p_undated first, p_future (MAXVALUE) last, dated in between."""
        parts = self.partitions
        if len(parts) < 2 or self.method != "RANGE" or self.expression != COLUMN:
            return False
        if parts[0].name != UNDATED or parts[0].upper != 1 or parts[-1].name != CATCHALL or parts[-1].upper is not None:
            return False
        return all(p.dated for p in parts[1:-1])

    @property
    def dated(self):
        return [p for p in self.partitions if p.dated]

    def catchall(self):
        return self.partitions[-1] if self.managed else None

    def last_upper(self):
        dated = self.dated
        return dated[-1].upper if dated else None

    def kind(self):
        if not self.exists:
            return "missing"
        if self.managed:
            return "partitioned"
        return "partitioned (not managed by this collection)" if self.partitioned else "plain"

    def as_dict(self, exact_rows=None):
        out = {"table": self.table, "layout": self.kind(), "partitioned": self.partitioned,
               "partition_count": len(self.partitions)}
        if self.partitioned:
            dated = self.dated
            out.update(method=self.method, column=self.expression, interval=self.interval, days_ahead=self.ahead,
                       oldest_partition=dated[0].name if dated else None,
                       newest_partition=dated[-1].name if dated else None,
                       partitions=[{"name": p.name, "less_than": p.upper, "estimated_rows": p.rows, "bytes": p.bytes}
                                   for p in self.partitions])
            if exact_rows:
                out.update(exact_rows)
        return out


def read_layout(conn, table):
    with conn.cursor() as cur:
        cur.execute("SELECT table_comment FROM information_schema.tables WHERE table_schema = DATABASE()"
                    " AND table_name = %s", (table,))
        row = cur.fetchone()
        if row is None:
            return Layout(table, False)
        comment = row[0] or ""
        cur.execute("SELECT partition_name, partition_method, partition_expression, partition_description,"
                    " table_rows, data_length, index_length FROM information_schema.partitions"
                    " WHERE table_schema = DATABASE() AND table_name = %s AND partition_name IS NOT NULL"
                    " ORDER BY partition_ordinal_position", (table,))
        rows = cur.fetchall()
    parts = []
    method = expression = None
    for name, method, expression, description, est, data, index in rows:
        upper = None if description in (None, "MAXVALUE") else int(description)
        parts.append(Partition(name, upper, int(est or 0), int(data or 0), int(index or 0)))
    return Layout(table, True, parts, method, expression, comment)


def count_rows(conn, table, partitions=None, where=None, args=()):
    sql = "SELECT COUNT(*) FROM `%s`" % table
    if partitions is not None:
        if not partitions:
            return 0
        sql += " PARTITION (%s)" % ", ".join("`%s`" % p for p in partitions)
    if where:
        sql += " WHERE " + where
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return int(cur.fetchone()[0])


def partition_facts(conn, table):
    """The layout report of ``pandora_db_info`` for one table (estimated rows, exact for the special ones)."""
    layout = read_layout(conn, table)
    if not layout.exists:
        return None
    extra = None
    if layout.managed:
        extra = {"undated_rows": count_rows(conn, table, [UNDATED]),
                 "catchall_rows": count_rows(conn, table, [CATCHALL])}
    return layout.as_dict(extra)


# -- can this table be partitioned? ------------------------------------------------------------------------
def refusal(conn, table):
    """Why ``table`` cannot take this layout (None when it can)."""
    with conn.cursor() as cur:
        cur.execute("SELECT constraint_name, table_name, column_name, referenced_table_name,"
                    " referenced_column_name FROM information_schema.key_column_usage"
                    " WHERE table_schema = DATABASE() AND referenced_table_name IS NOT NULL"
                    " AND (table_name = %s OR referenced_table_name = %s) ORDER BY 1", (table, table))
        fks = cur.fetchall()
        cur.execute("SELECT index_name, GROUP_CONCAT(column_name ORDER BY seq_in_index) FROM"
                    " information_schema.statistics WHERE table_schema = DATABASE() AND table_name = %s"
                    " AND non_unique = 0 GROUP BY index_name", (table,))
        uniques = cur.fetchall()
        cur.execute("SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE()"
                    " AND table_name = %s AND column_name = %s", (table, COLUMN))
        has_column = cur.fetchone()[0]
    if fks:
        links = ", ".join("%s.%s -> %s.%s" % (r[1], r[2], r[3], r[4]) for r in fks)
        return ("%s has foreign keys (%s): MariaDB and MySQL refuse to partition a table that has or is the"
                " target of a foreign key" % (table, links))
    if table not in SUPPORTED:
        return ("%s is not one of the tables this layout is for (%s)" % (table, ", ".join(sorted(SUPPORTED))))
    if not has_column:
        return "%s has no %s column" % (table, COLUMN)
    for name, columns in uniques:
        if COLUMN not in (columns or "").split(","):
            return ("%s has the unique key %s (%s) without %s: MariaDB requires every unique key of a partitioned"
                    " table to include the partitioning column" % (table, name, columns, COLUMN))
    return None


# -- plans -------------------------------------------------------------------------------------------------
def ahead_plan(last_upper, now, interval, ahead_days):
    """The partitions to add after ``last_upper`` so that every timestamp up to ``now + ahead`` has one."""
    horizon = now + ahead_days * DAY
    start = last_upper if last_upper is not None else period_start(now, interval)
    out = []
    while start <= horizon:
        # A partition named by its start date; the bound is the next period's start.
        real_start = period_start(start, interval)
        upper = next_start(real_start, interval)
        if upper <= start:  # cannot happen with the calendar above; guards an endless loop
            break
        out.append((partition_name(real_start), upper))
        start = upper
        if len(out) > MAX_PARTITIONS:
            raise PreconditionFailed("more than %d partitions would be needed; check days_ahead" % MAX_PARTITIONS)
    return out


def initial_partitions(oldest, now, interval, ahead_days):
    """The dated partitions of a new layout: from the period of ``oldest`` (or now) to ``now + ahead``."""
    first = period_start(oldest if oldest is not None and oldest >= 1 else now, interval)
    first = min(first, period_start(now, interval))
    parts = ahead_plan(first, now, interval, ahead_days)
    if len(parts) > MAX_PARTITIONS:  # pragma: no cover - ahead_plan raises first
        parts = parts[-MAX_PARTITIONS:]
    while len(parts) > MAX_PARTITIONS - 1:
        parts.pop(0)
    return parts


def partition_clause(dated):
    items = ["PARTITION `%s` VALUES LESS THAN (1)" % UNDATED]
    items += ["PARTITION `%s` VALUES LESS THAN (%d)" % (name, upper) for name, upper in dated]
    items.append("PARTITION `%s` VALUES LESS THAN MAXVALUE" % CATCHALL)
    return "PARTITION BY RANGE (`%s`) (%s)" % (COLUMN, ", ".join(items))


def droppable(layout, cutoff):
    """Dated partitions whose whole range is older than ``cutoff`` (their bound is <= cutoff)."""
    return [p for p in layout.dated if p.upper <= cutoff]


# -- DDL with a short metadata-lock wait -------------------------------------------------------------------
@contextlib.contextmanager
def short_lock_wait(conn, seconds=DEFAULT_LOCK_WAIT):
    """The session's ``lock_wait_timeout`` at ``seconds`` inside the block, set back afterwards.

    The connection may be the maintenance run's: its other statements keep their own wait.
    """
    with conn.cursor() as cur:
        cur.execute("SELECT @@SESSION.lock_wait_timeout")
        previous = int(cur.fetchone()[0])
        cur.execute("SET SESSION lock_wait_timeout = %d" % int(seconds))
    try:
        yield
    finally:
        with conn.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = %d" % previous)


def ddl(conn, sql, lock_wait=DEFAULT_LOCK_WAIT, retries=3, what="table"):
    """Run a DDL statement, waiting at most ``lock_wait`` seconds for the metadata lock, a few times.

    A DDL statement that waits for a metadata lock also blocks every new query of
    the table while it waits, so the wait is kept short and retried.
    """
    attempt = 0
    while True:
        try:
            with short_lock_wait(conn, lock_wait), conn.cursor() as cur:
                cur.execute(sql)
            return
        except DB_ERRORS as exc:
            code = exc.args[0] if exc.args else None
            if code in (1205, 1213) and attempt < retries:
                attempt += 1
                time.sleep(0.5 * attempt)
                continue
            reason = exc.args[1] if len(exc.args) > 1 else str(exc)
            hint = (": a long query or transaction holds the table; try again later or raise lock_wait"
                    if code == 1205 else "")
            raise OperationFailed("changing the partitions of %s failed: (%s) %s%s" % (what, code, reason, hint),
                                  code=code, table=what)


def split_catchall(conn, table, new, lock_wait=DEFAULT_LOCK_WAIT):
    """Add ``new`` [(name, upper)] before p_future by splitting it (moves only the rows below the new bounds)."""
    items = ", ".join("PARTITION `%s` VALUES LESS THAN (%d)" % (name, upper) for name, upper in new)
    ddl(conn, "ALTER TABLE `%s` REORGANIZE PARTITION `%s` INTO (%s, PARTITION `%s` VALUES LESS THAN MAXVALUE)"
        % (table, CATCHALL, items, CATCHALL), lock_wait, what=table)


def drop_partitions(conn, table, names, lock_wait=DEFAULT_LOCK_WAIT):
    ddl(conn, "ALTER TABLE `%s` DROP PARTITION %s" % (table, ", ".join("`%s`" % n for n in names)), lock_wait,
        what=table)


# -- the purge on a partitioned table ----------------------------------------------------------------------
class PartitionPurgePlan(object):
    """What the purge does to one managed partitioned table; computed the same way in check mode and for real."""

    def __init__(self, conn, layout, cutoff, now, exact, count=True):
        self.table = layout.table
        self.cutoff = cutoff
        self.exact = exact
        interval = layout.interval or "day"
        ahead = layout.ahead if layout.ahead is not None else DEFAULT_AHEAD
        self.drop = [p.name for p in droppable(layout, cutoff)]
        dropped = [p for p in layout.dated if p.name in self.drop]
        self.drop_upper = dropped[-1].upper if dropped else None
        # Counting the rows of the partitions to drop reads them all (0.4 to 0.7 s for 2.4 million rows here,
        # several times the drop itself), so the default-mode real run reports InnoDB's estimate instead;
        # check mode and exact mode count.
        self.rows_estimated = not count and bool(self.drop)
        if not self.drop:
            self.rows_dropped = 0
        elif count:
            self.rows_dropped = count_rows(conn, self.table, self.drop)
        else:
            self.rows_dropped = sum(p.rows for p in dropped)
        self.create = ahead_plan(layout.last_upper(), now, interval, ahead)
        last = self.create[-1][1] if self.create else None
        self.rows_moved = count_rows(conn, self.table, [CATCHALL], "`%s` < %%s" % COLUMN, (last,)) if last else 0
        # Rows the batched delete removes after the drop: every row older than the cutoff in exact mode, else the
        # non-NULL undated rows (utimestamp <= 0) that the plain purge would delete too.
        self.delete_bound = cutoff if exact else 1

    def as_details(self, rows_deleted):
        return {"layout": "partitioned", "mode": "exact" if self.exact else "partitions",
                "partitions_dropped": self.drop, "partitions_created": [n for n, _u in self.create],
                "rows_dropped": self.rows_dropped, "rows_dropped_estimated": self.rows_estimated,
                "rows_deleted": rows_deleted,
                "catchall_rows_moved": self.rows_moved, "ddl_changed": bool(self.drop or self.create),
                "kept_below_cutoff": None}


# -- online conversion -------------------------------------------------------------------------------------
def shadow_name(table):
    return "%s__pfms_new" % table


def old_name(table):
    return "%s__pfms_old" % table


def trigger_names(table):
    return ["%s__pfms_%s" % (table, suffix) for suffix in ("ai", "au", "ad")]


class Conversion(object):
    """Convert ``table`` to the partitioned layout (``target='partitioned'``) or back (``'plain'``), online.

    Protocol (every state it can be interrupted in is either the old table or the
    new one, with every row):

    1. a progress row (``pfms_partition_progress``: ``below``, ``nulls_done``,
       ``all_done``), an empty shadow table with the target layout, and three
       triggers on the table that mirror each insert, update and delete into the
       shadow, **but only for rows in the already-copied region**
       (``utimestamp < below``, NULL once ``nulls_done``, anything once
       ``all_done``).  The triggers read the progress row with ``LOCK IN SHARE
       MODE``.
    2. the copy, in transactions of about ``chunk_rows`` rows in ``utimestamp``
       order: ``INSERT INTO shadow SELECT ... WHERE utimestamp >= lo AND
       utimestamp < hi LOCK IN SHARE MODE`` then ``UPDATE progress SET below =
       hi``, one commit.  The shared next-key locks make a concurrent insert,
       update or delete in ``[lo, hi)`` wait for the commit, after which its
       trigger sees ``below = hi`` and mirrors it; a write outside the range
       goes on (its trigger may wait for the progress row's lock, one chunk at
       most).  So each row reaches the shadow exactly once, by the copy or by a
       trigger, which matters because the table has no primary key to
       de-duplicate on.  The last chunk is open-ended and sets ``all_done``.
    3. ``RENAME TABLE t TO t__pfms_old, t__pfms_new TO t`` (atomic; writers wait
       for it only), then ``DROP TABLE t__pfms_old`` (its triggers go with it)
       and the progress row.

    A killed run leaves the transaction of its current chunk rolled back: a rerun
    goes on from ``below``.  A run killed before the triggers all exist starts
    over (the shadow is still empty then).
    """

    def __init__(self, conn, table, target, interval="day", ahead=DEFAULT_AHEAD, now=None, chunk_rows=DEFAULT_CHUNK,
                 lock_wait=DEFAULT_LOCK_WAIT, log=None, check_mode=False):
        self.conn = conn
        self.table = table
        self.target = target
        self.interval = interval
        self.ahead = ahead
        self.now = int(now if now is not None else time.time())
        self.chunk_rows = chunk_rows
        self.lock_wait = lock_wait
        self.log = log or (lambda text: None)
        self.check_mode = check_mode
        self.shadow = shadow_name(table)
        self.old = old_name(table)
        self.index = SUPPORTED.get(table, "idx_utimestamp")
        self.stats = {"rows_copied": 0, "chunks": 0, "longest_chunk_seconds": 0.0, "swap_seconds": 0.0,
                      "resumed": False, "restarted": False}

    # -- helpers
    def q(self, sql, args=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def exists(self, name):
        return bool(self.q("SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE()"
                           " AND table_name = %s", (name,)))

    def triggers_present(self):
        rows = self.q("SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = DATABASE()"
                      " AND event_object_table = %s", (self.table,))
        return set(r[0] for r in rows) & set(trigger_names(self.table))

    def progress(self):
        if not self.exists(PROGRESS_TABLE):
            return None
        rows = self.q("SELECT target, below, nulls_done, all_done FROM `%s` WHERE table_name = %%s" % PROGRESS_TABLE,
                      (self.table,))
        return rows[0] if rows else None

    def columns(self):
        rows = self.q("SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE()"
                      " AND table_name = %s ORDER BY ordinal_position", (self.table,))
        return [r[0] for r in rows]

    @staticmethod
    def _matches(layout, target):
        return layout.managed if target == "partitioned" else not layout.partitioned

    def layout_matches(self, layout):
        return self._matches(layout, self.target)

    # -- state
    def state(self):
        """``done`` / ``swapped`` (cleanup left) / ``copying`` (resumable) / ``broken`` (restart) / ``fresh``."""
        layout = read_layout(self.conn, self.table)
        if not layout.exists:
            raise PreconditionFailed("table %s does not exist" % self.table)
        progress = self.progress()
        if self.exists(self.old):
            if progress is None or progress[0] not in ("partitioned", "plain") or not self._matches(
                    layout, progress[0]):
                raise PreconditionFailed(
                    "%s and %s both exist but the progress record does not say which one is current; inspect"
                    " them and drop the stale one by hand" % (self.table, self.old))
            return "swapped", layout, progress
        if self.exists(self.shadow):
            if progress is not None and progress[0] == self.target and len(self.triggers_present()) == 3:
                return "copying", layout, progress
            return "broken", layout, progress
        if progress is not None or self.triggers_present():
            return "broken", layout, progress
        if self.layout_matches(layout):
            return "done", layout, progress
        return "fresh", layout, progress

    def plan(self):
        """What a run would do, without doing it."""
        state, layout, progress = self.state()
        rows = count_rows(self.conn, self.table) if state != "done" else 0
        copied = 0
        if state == "copying" and progress is not None:
            below = progress[1]
            copied = count_rows(self.conn, self.table, where="`%s` < %%s" % COLUMN, args=(below,))
            if progress[3]:
                copied = rows
        left = max(0, rows - copied)
        plan = {"table": self.table, "state": state, "target": self.target, "rows": rows, "rows_to_copy": left,
                "layout_before": layout.kind()}
        if state == "done":
            plan["actions"] = []
            return plan
        actions = []
        if state == "broken":
            actions.append("remove the leftovers of an interrupted start (empty %s, its triggers)" % self.shadow)
        if state in ("fresh", "broken"):
            if self.target == "partitioned":
                dated = initial_partitions(self.oldest(), self.now, self.interval, self.ahead)
                plan["partitions"] = [UNDATED] + [n for n, _u in dated] + [CATCHALL]
            actions += ["create %s with the %s layout and 3 triggers on %s" % (self.shadow, self.target, self.table)]
        if state != "swapped":
            actions.append("copy %d rows in chunks of %d rows" % (left, self.chunk_rows))
            actions.append("RENAME TABLE %s TO %s, %s TO %s" % (self.table, self.old, self.shadow, self.table))
        actions.append("DROP TABLE %s" % self.old)
        plan["actions"] = actions
        plan["estimated_seconds"] = round(left / ESTIMATED_COPY_RATE + 1.0, 1)
        # A writer waits at most for one chunk's transaction (or the rename).
        plan["estimated_stall_seconds"] = round(min(left, self.chunk_rows) / ESTIMATED_COPY_RATE + 0.1, 2)
        return plan

    def oldest(self):
        rows = self.q("SELECT MIN(`%s`) FROM `%s` WHERE `%s` >= 1" % (COLUMN, self.table, COLUMN))
        return rows[0][0] if rows and rows[0][0] is not None else None

    # -- the run
    def run(self):
        """Bring the table to the target layout; returns whether anything changed."""
        changed = False
        for _attempt in range(4):
            state, _layout, _progress = self.state()
            if state == "done":
                return changed
            changed = True
            if state == "swapped":
                self.log("%s: finishing a conversion interrupted after the swap" % self.table)
                self.stats["resumed"] = True
                self.finish()
                continue
            if state == "broken":
                self.log("%s: removing the leftovers of an interrupted start" % self.table)
                self.stats["restarted"] = True
                self.cleanup_attempt()
                continue
            if state == "fresh":
                self.start()
            else:
                self.stats["resumed"] = True
                self.log("%s: resuming an interrupted conversion" % self.table)
            self.copy()
            self.swap()
            self.finish()
            return True
        raise OperationFailed("%s: the conversion did not settle; inspect %s, %s and %s" % (
            self.table, self.shadow, self.old, PROGRESS_TABLE))

    def cleanup_attempt(self):
        for name in trigger_names(self.table):
            ddl(self.conn, "DROP TRIGGER IF EXISTS `%s`" % name, self.lock_wait, what=self.table)
        ddl(self.conn, "DROP TABLE IF EXISTS `%s`" % self.shadow, self.lock_wait, what=self.shadow)
        if self.exists(PROGRESS_TABLE):
            self.q("DELETE FROM `%s` WHERE table_name = %%s" % PROGRESS_TABLE, (self.table,))

    def start(self):
        self.q("CREATE TABLE IF NOT EXISTS `%s` (table_name VARCHAR(64) NOT NULL PRIMARY KEY, target VARCHAR(16)"
               " NOT NULL, below BIGINT NOT NULL, nulls_done TINYINT NOT NULL DEFAULT 0, all_done TINYINT NOT NULL"
               " DEFAULT 0, rows_copied BIGINT NOT NULL DEFAULT 0, started BIGINT NOT NULL DEFAULT 0) ENGINE=InnoDB"
               " COMMENT='pandorafms.server: online partition conversions in progress'" % PROGRESS_TABLE)
        self.q("INSERT INTO `%s` (table_name, target, below, started) VALUES (%%s, %%s, %%s, %%s)" % PROGRESS_TABLE,
               (self.table, self.target, MIN_BIGINT, int(time.time())))
        ddl(self.conn, "CREATE TABLE `%s` LIKE `%s`" % (self.shadow, self.table), self.lock_wait, what=self.table)
        if self.target == "partitioned":
            dated = initial_partitions(self.oldest(), self.now, self.interval, self.ahead)
            ddl(self.conn, "ALTER TABLE `%s` COMMENT = '%s' %s" % (
                self.shadow, make_comment(self.interval, self.ahead), partition_clause(dated)), what=self.shadow)
        else:
            ddl(self.conn, "ALTER TABLE `%s` COMMENT = '' REMOVE PARTITIONING" % self.shadow, what=self.shadow)
        self.create_triggers()
        self.log("%s: shadow table %s and triggers created" % (self.table, self.shadow))

    def create_triggers(self):
        cols = self.columns()
        names = trigger_names(self.table)
        collist = ", ".join("`%s`" % c for c in cols)

        def copied(ref):
            return ("((%s.`%s` IS NULL AND v_nulls = 1) OR v_all = 1 OR %s.`%s` < v_below)"
                    % (ref, COLUMN, ref, COLUMN))

        def insert(ref):
            values = ", ".join("%s.`%s`" % (ref, c) for c in cols)
            return "INSERT INTO `%s` (%s) VALUES (%s);" % (self.shadow, collist, values)

        def delete(ref):
            match = " AND ".join("`%s` <=> %s.`%s`" % (c, ref, c) for c in cols)
            return "DELETE FROM `%s` WHERE %s LIMIT 1;" % (self.shadow, match)

        head = ("BEGIN DECLARE v_below BIGINT; DECLARE v_nulls TINYINT; DECLARE v_all TINYINT;"
                " SELECT below, nulls_done, all_done INTO v_below, v_nulls, v_all FROM `%s`"
                " WHERE table_name = '%s' LOCK IN SHARE MODE;" % (PROGRESS_TABLE, self.table))
        bodies = {
            names[0]: ("AFTER INSERT", "IF %s THEN %s END IF;" % (copied("NEW"), insert("NEW"))),
            names[1]: ("AFTER UPDATE", "IF %s THEN %s END IF; IF %s THEN %s END IF;" % (
                copied("OLD"), delete("OLD"), copied("NEW"), insert("NEW"))),
            names[2]: ("AFTER DELETE", "IF %s THEN %s END IF;" % (copied("OLD"), delete("OLD"))),
        }
        for name in names:
            when, body = bodies[name]
            ddl(self.conn, "CREATE TRIGGER `%s` %s ON `%s` FOR EACH ROW %s %s END" % (
                name, when, self.table, head, body), self.lock_wait, what=self.table)

    def copy(self):
        progress = self.progress()
        _target, below, nulls_done, all_done = progress
        cols = ", ".join("`%s`" % c for c in self.columns())
        copy_sql = ("INSERT INTO `%s` (%s) SELECT %s FROM `%s` FORCE INDEX (`%s`) WHERE %%s LOCK IN SHARE MODE"
                    % (self.shadow, cols, cols, self.table, self.index))
        if not nulls_done:
            self.chunk(copy_sql % ("`%s` IS NULL" % COLUMN), (), "nulls_done = 1")
        lo = below
        while not all_done:
            edge = self.q("SELECT `%s` FROM `%s` FORCE INDEX (`%s`) WHERE `%s` >= %%s ORDER BY `%s` LIMIT %d, 1" % (
                COLUMN, self.table, self.index, COLUMN, COLUMN, self.chunk_rows), (lo,))
            if not edge:
                self.chunk(copy_sql % ("`%s` >= %%s" % COLUMN), (lo,), "all_done = 1")
                all_done = True
                break
            hi = edge[0][0]
            if hi <= lo:
                hi = lo + 1
            self.chunk(copy_sql % ("`%s` >= %%s AND `%s` < %%s" % (COLUMN, COLUMN)), (lo, hi), "below = %d" % hi)
            lo = hi

    def chunk(self, sql, args, progress_set):
        started = time.time()
        attempt = 0
        while True:
            try:
                with self.conn.cursor() as cur:
                    cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    cur.execute("START TRANSACTION")
                    count = cur.execute(sql, args)
                    cur.execute("UPDATE `%s` SET %s, rows_copied = rows_copied + %d WHERE table_name = %%s" % (
                        PROGRESS_TABLE, progress_set, count), (self.table,))
                self.conn.commit()
                break
            except DB_ERRORS as exc:
                try:
                    self.conn.rollback()
                except DB_ERRORS:
                    pass
                code = exc.args[0] if exc.args else None
                if code in (1205, 1213) and attempt < 5:
                    attempt += 1
                    time.sleep(0.2 * attempt)
                    continue
                raise OperationFailed("copying %s into %s failed: (%s) %s; run again to resume" % (
                    self.table, self.shadow, code, exc.args[1] if len(exc.args) > 1 else exc), code=code)
        seconds = time.time() - started
        self.stats["rows_copied"] += count
        self.stats["chunks"] += 1
        self.stats["longest_chunk_seconds"] = round(max(self.stats["longest_chunk_seconds"], seconds), 3)

    def swap(self):
        # Fresh index statistics for the optimizer (the copy left none); reads a sample of pages only.
        self.q("ANALYZE TABLE `%s`" % self.shadow)
        started = time.time()
        ddl(self.conn, "RENAME TABLE `%s` TO `%s`, `%s` TO `%s`" % (self.table, self.old, self.shadow, self.table),
            self.lock_wait, what=self.table)
        self.stats["swap_seconds"] = round(time.time() - started, 3)
        self.log("%s: swapped in the %s table" % (self.table, self.target))

    def finish(self):
        ddl(self.conn, "DROP TABLE IF EXISTS `%s`" % self.old, self.lock_wait, what=self.old)
        self.q("DELETE FROM `%s` WHERE table_name = %%s" % PROGRESS_TABLE, (self.table,))
        if not self.q("SELECT 1 FROM `%s` LIMIT 1" % PROGRESS_TABLE):
            ddl(self.conn, "DROP TABLE IF EXISTS `%s`" % PROGRESS_TABLE, self.lock_wait, what=PROGRESS_TABLE)


# -- the module's engine ------------------------------------------------------------------------------------
def ensure_ahead(conn, table, layout, now, interval, ahead, check_mode, lock_wait=DEFAULT_LOCK_WAIT):
    """Keep ``ahead`` days of partitions ready and the comment in step; returns what it did (or would do)."""
    new = ahead_plan(layout.last_upper(), now, interval, ahead)
    last = new[-1][1] if new else None
    moved = count_rows(conn, table, [CATCHALL], "`%s` < %%s" % COLUMN, (last,)) if last else 0
    comment = make_comment(interval, ahead)
    out = {"partitions_created": [n for n, _u in new], "catchall_rows_moved": moved,
           "comment_changed": layout.comment != comment}
    if not check_mode:
        if new:
            split_catchall(conn, table, new, lock_wait)
        if out["comment_changed"]:
            ddl(conn, "ALTER TABLE `%s` COMMENT = '%s'" % (table, comment), lock_wait, what=table)
    return out


def manage_tables(conn, tables, state="present", interval="day", days_ahead=DEFAULT_AHEAD, chunk_rows=DEFAULT_CHUNK,
                  lock_wait=DEFAULT_LOCK_WAIT, now=None, check_mode=False, log=None):
    """Bring each table to ``state`` (present = partitioned layout, absent = plain); one result dict per table.

    Every table is validated (exists, can be partitioned) before any is changed.
    """
    validate_options(interval, days_ahead, chunk_rows, lock_wait)
    if state not in ("present", "absent"):
        raise ConfigError("option state is %r; choose present or absent" % (state,))
    if not tables:
        raise ConfigError("option tables is empty; name tagente_datos and/or tagente_datos_string")
    now = int(now if now is not None else time.time())
    log = log or (lambda text: None)
    layouts = {}
    for table in tables:
        layout = read_layout(conn, table)
        if not layout.exists:
            raise PreconditionFailed("table %s does not exist in this database" % table)
        if state == "absent" and table not in SUPPORTED:
            raise ConfigError("option tables: %s is not one of the tables this layout is for (%s)" % (
                table, ", ".join(sorted(SUPPORTED))))
        if state == "present":
            reason = refusal(conn, table)
            if reason:
                raise PreconditionFailed("cannot partition %s: %s" % (table, reason))
            if layout.partitioned and not layout.managed and not Conversion(conn, table, "partitioned").exists(
                    shadow_name(table)):
                raise PreconditionFailed(
                    "%s is already partitioned, but not in the layout this collection manages (%s); convert it"
                    " back with state=absent first" % (table, ", ".join(p.name for p in layout.partitions[:5])))
        layouts[table] = layout
    results = []
    for table in tables:
        started = time.time()
        target = "partitioned" if state == "present" else "plain"
        conv = Conversion(conn, table, target, interval=interval, ahead=days_ahead, now=now, chunk_rows=chunk_rows,
                          lock_wait=lock_wait, log=log)
        res = {"table": table, "layout_before": layouts[table].kind(), "changed": False}
        plan = conv.plan()
        if plan["state"] != "done":
            res["conversion"] = plan
            res["changed"] = True
            if not check_mode:
                conv.run()
                res["conversion"].update(conv.stats)
        if state == "present":
            layout = read_layout(conn, table) if not check_mode else layouts[table]
            if layout.managed or not check_mode:
                ahead = ensure_ahead(conn, table, layout, now, interval, days_ahead, check_mode, lock_wait)
                res.update(ahead)
                if ahead["partitions_created"] or ahead["comment_changed"]:
                    res["changed"] = True
        after = read_layout(conn, table)
        res["layout"] = after.as_dict() if not check_mode else layouts[table].as_dict()
        res["seconds"] = round(time.time() - started, 3)
        results.append(res)
    return results


# -- the purge step on a partitioned table (called by _purge.PurgeRule) -------------------------------------
EXACT_OPTION = "partition_purge_exact"


def purge_partitioned(step, ctx, ex, check, cutoff, thr, started):
    """The purge of a managed partitioned table, or None when ``step.table`` is not one (the caller deletes rows).

    Drops every dated partition whose whole range is older than ``cutoff`` (a
    metadata operation), keeps ``days_ahead`` partitions ready (splitting the empty
    catch-all), then deletes with the batched delete either the rows left older than
    the cutoff (``partition_purge_exact``) or only the non-NULL undated rows
    (``utimestamp <= 0``, which the plain-table purge deletes too).  By default, rows
    of the partition that holds the cutoff stay until that whole partition is older.
    """
    if step.table not in SUPPORTED or step.kind != "epoch":
        return None
    conn = ex.conn
    layout = read_layout(conn, step.table)
    if not layout.managed:
        return None
    exact = bool((getattr(ctx, "options", None) or {}).get(EXACT_OPTION))
    plan = PartitionPurgePlan(conn, layout, cutoff, ctx.now, exact, count=check or exact)
    table = step.table
    predicate = "%s.%s < %%s" % (table, COLUMN)
    if check:
        below = ex.count(table, predicate, (plan.delete_bound,))
        deleted = below - plan.rows_dropped if exact else below
        sim = getattr(ctx, "simulation", None)
        if sim is not None:
            bound = cutoff if exact else max(1, plan.drop_upper or 1)
            # Everything below the last dropped bound is in a dropped partition or undated (< 1, deleted).
            sim.add_gone(table, predicate, (bound,))
        ctx.log(step.source, "  check mode: %d partitions of %s would be dropped (%d rows), %d rows deleted, %d"
                " partitions created" % (len(plan.drop), table, plan.rows_dropped, deleted, len(plan.create)))
    else:
        if plan.drop:
            ctx.log(step.source, "Dropping %d partitions of %s older than the cutoff (%s .. %s, %s%d rows)." % (
                len(plan.drop), table, plan.drop[0], plan.drop[-1], "about " if plan.rows_estimated else "",
                plan.rows_dropped))
            drop_partitions(conn, table, plan.drop)
        if plan.create:
            split_catchall(conn, table, plan.create)
        deleted = ex.delete_index_range(table, COLUMN, plan.delete_bound)
    details = plan.as_details(deleted)
    details.update(ex.accounting())
    if not exact:
        details["kept_below_cutoff"] = None if check else count_rows(conn, table, where="`%s` >= 1 AND `%s` < %%s" % (
            COLUMN, COLUMN), args=(cutoff,))
    from ansible_collections.pandorafms.server.plugins.module_utils._context import StepResult
    return StepResult(step.name, table, rows=plan.rows_dropped + deleted, seconds=time.time() - started,
                      threshold=thr, database=step.database, details=details)
