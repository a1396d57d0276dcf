# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HISTORY MOVE: old data from the main database to the history database (reference 8.1, 18.2).

Upstream ships this only in its closed Enterprise build.  Here it is a step
of the maintenance run (``history_move``), between INTEGRITY and COMPACT, on
when the main ``tconfig`` has ``history_db_enabled`` = 1.

What moves (each table with its own cutoff ``now - days * 86400``):

* ``tagente_datos``: ``history_db_days``;
* ``tagente_datos_string``: ``history_db_string_days`` when ``history_db_adv``
  is 1, else ``history_db_days``;
* ``tevento`` with its child rows (``tevent_extended``, ``tevent_comment``),
  ids kept: ``history_event_days`` when ``history_event_enabled`` is 1;
* ``ttrap``: ``history_trap_days`` when ``history_trap_enabled`` is 1.

Never ahead of the console: the console reads the history database only for
periods that start before ``now - history_db_days`` (reference 18.2), so no
cutoff is ever later than that one; a smaller value of another table's days is
raised to ``history_db_days`` with a warning.

The protocol (one *block* = one bounded range of one table)
-----------------------------------------------------------

A range is a set of rows fixed by a predicate that never changes meaning:

* ``tagente_datos`` / ``tagente_datos_string`` (no primary key): the rows
  with ``lo <= utimestamp < hi``.  Bounds are distinct ``utimestamp`` values
  taken from the table, so all rows of one ``utimestamp`` are in one range;
  when a single ``utimestamp`` holds more rows than the step, that second is
  split by ``id_agente_modulo`` ranges (``utimestamp = lo AND mlo <=
  id_agente_modulo < mhi``); a single (second, module) pair bigger than the
  step is one oversized block.
* ``tevento`` / ``ttrap``: the rows with ``lo <= id <= hi`` that are older
  than the cutoff (the cutoff is stored with the range).

Two journals, each written in the same local transaction as that side's data
change, so each is exactly as durable as the data it describes:

* history ``tconfig`` token ``history_move_copied_<table>``: ``{n, range,
  count, sum, before}``, the last range *copied* (``n`` grows by one per
  block; ``count``/``sum`` are the count and the checksum of the copied rows;
  ``before`` the number of history rows in that range before the copy);
* main ``tconfig`` token ``history_move_moved_<table>``: ``{n}``, the last
  range *deleted from main* (or resolved).

One block, in this order:

1. main: ``BEGIN``; read the range's rows ``FOR UPDATE`` (they stay locked,
   so no row can enter or leave the range until step 3 ends) and compute,
   in SQL, their count and checksum (the sum of a 64-bit hash of every
   column);
2. history: ``BEGIN``; (tables with a key: delete the history rows with
   these ids, left by an earlier interrupted copy); count and checksum of the
   range; insert the rows (and the events' child rows); count and checksum
   again: the difference must equal main's, else roll back both and stop;
   write ``history_move_copied`` = ``n``; ``COMMIT``;
3. main: delete the range (the row count must equal the count of step 1),
   write ``history_move_moved`` = ``n``; ``COMMIT``.

The states a range can be in, and what a resumed run does in each:

* **A, untouched** (crash before the history commit, either server gone, the
  process killed): both transactions roll back; the rows are on main only,
  no journal names the range.  Resume: the range is chosen afresh.
* **B, copied** (history committed, main not): the rows are on both sides,
  ``copied.n = moved.n + 1``.  This is the only state with duplicates and the
  first thing every run (and every table) resolves: main is locked and
  checksummed over the journal's range; equal to the journal: delete and
  stamp ``moved`` (state C); empty: something else deleted them on main
  (the rows are on history), stamp ``moved``; different (rows entered the old
  range on main after the crash): for tables with a key the range is copied
  again (step 2 replaces the history copies by id); for the tables without
  one, when the history range held nothing before the copy
  (``before`` = 0) the copy is undone in one history transaction (history
  range verified equal to the journal, deleted, journal marked aborted), and
  the range is chosen afresh; otherwise the run stops with an error naming
  the range, nothing changed.
* **C, moved** (both committed): ``copied.n = moved.n``; the rows are on
  history only.  Resume: the next range.

A crash during a ``COMMIT`` leaves the transaction either committed or not;
the journals tell which.  No state has a row on neither side: main deletes
only rows it holds locked and has just seen committed, verified, on history.

The pipelined walk (``tagente_datos``, ``tagente_datos_string``, MariaDB, delay 0)
----------------------------------------------------------------------------------

The same blocks and journals, with both servers working at once: while the
history server copies block n+1, main deletes block n and reads block n+2.
Two rules keep the states above:

* block n+1 is committed on history only after block n is committed on main,
  so at most one range is ever in state B, the one the journals name;
* main reads a block without locks (adjacent ranges share the lock of their
  boundary row, so a locked read would wait for the block before it) and
  verifies when it deletes instead: ``DELETE ... RETURNING`` the rows' text,
  which must be exactly the text read and copied, else the delete rolls back.
  Main still deletes only rows it has seen committed, verified, on history.

A mismatch (rows written into, or deleted from, an old range between its read
and its delete) leaves that range in state B; it is resolved at once as
after a crash (above) and the walk starts again, at most ``MAX_RESTARTS``
times per run.  Runs with a ``history_db_delay`` (the sleeps set the pace
there), tables with a key, the events with their child rows, and MySQL (no
``DELETE ... RETURNING``) use the serial walk.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import threading
import time

from ansible_collections.pandorafms.server.plugins.module_utils import _partitions
from ansible_collections.pandorafms.server.plugins.module_utils._batch import BatchExecutor, simulation
from ansible_collections.pandorafms.server.plugins.module_utils._connection import pymysql, server_info
from ansible_collections.pandorafms.server.plugins.module_utils._context import DAY, OutOfTime, StepResult
from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConfigError, OperationFailed
from ansible_collections.pandorafms.server.plugins.module_utils._tconfig import parse_number

SOURCE = "HISTORY"
MOVE_OPTIONS = ("history_db_days", "history_db_string_days", "history_event_days", "history_trap_days",
                "history_db_step", "history_db_delay")
DEFAULT_STEP = 1000
MAX_STEP = 100000
COPIED_TOKEN = "history_move_copied_%s"
MOVED_TOKEN = "history_move_moved_%s"
PARTITION_TOKEN = "history_move_partition_%s"
ID_CHUNK = 1000
INSERT_BYTES = 1 << 20  # one INSERT statement carries about this much row text
PIPELINE = True  # the pipelined walk where it applies (tests turn it off to test the serial walk too)
MAX_RESTARTS = 3  # mismatches the pipelined walk resolves in one run before it gives up


class TableSpec(object):
    """How one table moves: its range key, age column, and child tables."""

    def __init__(self, table, days, key, age, kind="epoch", pk=False, split=None, children=()):
        self.table = table
        self.days = days          # which setting: data, string, event, trap
        self.key = key            # range column (utimestamp, or the primary key)
        self.age = age            # age column
        self.kind = kind          # epoch or datetime
        self.pk = pk
        self.split = split        # second column for an oversized utimestamp
        self.children = tuple(children)


TABLES = (
    TableSpec("tagente_datos", "data", "utimestamp", "utimestamp", split="id_agente_modulo"),
    TableSpec("tagente_datos_string", "string", "utimestamp", "utimestamp", split="id_agente_modulo"),
    TableSpec("tevento", "event", "id_evento", "utimestamp", pk=True,
              children=(("tevent_extended", "id_evento"), ("tevent_comment", "id_event"))),
    TableSpec("ttrap", "trap", "id_trap", "timestamp", kind="datetime", pk=True),
)


# -- settings -------------------------------------------------------------------------------
class MoveSettings(object):
    """The move's settings, resolved and validated before any step runs."""

    def __init__(self):
        self.enabled = False
        self.skip_reason = None
        self.days = {}            # table -> (days, source) or None when that table does not move
        self.step = DEFAULT_STEP
        self.delay = 0.0
        self.notes = []
        self.warnings = []


def _flag(tconfig, token):
    return str(tconfig.get(token, "") or "").strip() == "1"


def _setting(tconfig, options, key, token=None, default=None, allow_float=False):
    """(value, source) from the option (wins) or the main tconfig token; ConfigError names the key."""
    option = options.get(key)
    if option is not None:
        return parse_number(option, "option %s" % key, minimum=0, allow_float=allow_float), "option"
    raw = tconfig.get(token or key)
    if raw is None or str(raw).strip() == "":
        return default, "default" if default is not None else "unset"
    return parse_number(raw, "tconfig token %s" % (token or key), minimum=0, allow_float=allow_float), "tconfig"


def resolve_move_settings(tconfig, options):
    """Read and validate every setting of the move (reference 8.1); nothing is changed."""
    out = MoveSettings()
    options = options or {}
    days, days_source = _setting(tconfig, options, "history_db_days")
    string_days, string_source = _setting(tconfig, options, "history_db_string_days")
    event_days, event_source = _setting(tconfig, options, "history_event_days", default=90)
    trap_days, trap_source = _setting(tconfig, options, "history_trap_days", default=90)
    step, step_source = _setting(tconfig, options, "history_db_step")
    delay, _unused = _setting(tconfig, options, "history_db_delay", allow_float=True)
    if step is not None and step > MAX_STEP:
        raise ConfigError("history_db_step (%s) is %s; the most rows one block may move is %d, set it lower"
                          % (step_source, step, MAX_STEP))
    out.step = step or DEFAULT_STEP
    out.delay = float(delay or 0)
    if not _flag(tconfig, "history_db_enabled"):
        out.skip_reason = "tconfig history_db_enabled is not 1"
        return out
    if not days:
        out.skip_reason = "history_db_days is %s" % ("0" if days == 0 else "not defined")
        return out
    out.enabled = True
    out.days["tagente_datos"] = (days, days_source)
    if options.get("history_db_string_days") is None and not _flag(tconfig, "history_db_adv"):
        string_days, string_source = days, days_source
    out.days["tagente_datos_string"] = _not_ahead(out, "tagente_datos_string", "history_db_string_days",
                                                  string_days, string_source, days)
    if _flag(tconfig, "history_event_enabled"):
        out.days["tevento"] = _not_ahead(out, "tevento", "history_event_days", event_days, event_source, days)
    if _flag(tconfig, "history_trap_enabled"):
        out.days["ttrap"] = _not_ahead(out, "ttrap", "history_trap_days", trap_days, trap_source, days)
    return out


def _not_ahead(out, table, key, value, source, days):
    """Never ahead of the console: a table's days are at least ``history_db_days``."""
    if not value:
        out.notes.append("history_move: %s is %s, %s is not moved" % (key, value, table))
        return None
    if value < days:
        out.warnings.append("%s (%s) is lower than history_db_days (%s); %s moves at %s days so no row leaves"
                            " the main database before the console looks for it in the history database"
                            % (key, value, days, table, days))
        return (days, "history_db_days")
    return (value, source)


# -- SQL helpers ------------------------------------------------------------------------------
def _q(name):
    return "`%s`" % name.replace("`", "``")


def table_columns(conn, table):
    """Column names in table order (from the result metadata: no information_schema temporary table)."""
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM %s LIMIT 0" % _q(table))
        cur.fetchall()
        return [col[0] for col in cur.description]


def row_hash_sql(columns, alias=""):
    """A 64-bit hash of every column of a row: two independent CRCs (CRC-32, CRC-32C) of its quoted text.

    The quoted text (:func:`row_text_sql`) tells NULL from any value and keeps column boundaries.
    """
    text = row_text_sql(columns, alias)
    return "((CRC32(%s) << 32) | CRC32C(%s))" % (text, text)


def row_text_sql(columns, alias=""):
    """The row as an SQL ``VALUES`` tuple, quoted by the server (``QUOTE(NULL)`` is ``NULL``).

    Numbers come out in their shortest exact form, so the history server parses back the very same value; the
    verification would catch it otherwise.
    """
    return "CONCAT('(', %s, ')')" % ", ',', ".join("QUOTE(%s%s)" % (alias, _q(c)) for c in columns)


def _scalar(conn, sql, args=()):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        row = cur.fetchone()
    return row[0] if row else None


def _token(conn, token):
    raw = _scalar(conn, "SELECT value FROM tconfig WHERE token = %s ORDER BY id_config LIMIT 1", (token,))
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise OperationFailed("tconfig token %s holds %r, not this collection's journal; delete the token if no"
                              " move is interrupted" % (token, raw[:80]))


def _set_token(cur, token, value):
    """Inside the caller's transaction."""
    cur.execute("DELETE FROM tconfig WHERE token = %s", (token,))
    cur.execute("INSERT INTO tconfig (token, value) VALUES (%s, %s)", (token, json.dumps(value, sort_keys=True)))


def _rollback(conn):
    try:
        conn.rollback()
    except Exception:  # the connection may be gone; the server rolls back on its own
        pass


# -- one table --------------------------------------------------------------------------------
class TableMove(object):
    """The move of one table: ranges, blocks, resume; all SQL of the protocol."""

    def __init__(self, ctx, spec, days, settings, hook=None):
        self.ctx = ctx
        self.spec = spec
        self.days = days
        self.settings = settings
        self.main = ctx.conn
        self.hist = ctx.history_conn
        self.hook = hook
        self.cutoff_epoch = ctx.now - days * DAY
        self.cutoff = self.cutoff_epoch
        if spec.kind == "datetime":
            self.cutoff = str(_scalar(self.main, "SELECT FROM_UNIXTIME(%s)", (max(0, int(self.cutoff_epoch)),)))
        self.columns = table_columns(self.main, spec.table)
        self.children = []
        self.moved = 0
        self.child_rows = {}
        self.blocks = 0
        self.max_block = 0
        self.resumed = None
        self.partitions_moved = []
        self._hist_layout = None
        self.history_partitions_auto = _flag(getattr(ctx, "history_tconfig", None) or {},
                                             "history_partitions_auto")

    # -- checks ---------------------------------------------------------------------------------
    def check_schema(self, history_tables):
        spec = self.spec
        if self.table_missing(history_tables, spec.table):
            return "table %s does not exist in the history database" % spec.table
        hist_cols = table_columns(self.hist, spec.table)
        if hist_cols != self.columns:
            raise OperationFailed("history_move: table %s has different columns on the history database (%s) than on"
                                  " the main database (%s); bring the history schema to the main one's version"
                                  % (spec.table, ", ".join(hist_cols), ", ".join(self.columns)))
        for child, fk in spec.children:
            if child not in (self.ctx.tables or ()):
                continue
            if self.table_missing(history_tables, child):
                raise OperationFailed("history_move: table %s (child rows of %s) is missing on the history database;"
                                      " create it from pandoradb.sql" % (child, spec.table))
            cols = table_columns(self.main, child)
            if table_columns(self.hist, child) != cols:
                raise OperationFailed("history_move: table %s has different columns on the history database"
                                      % child)
            self.children.append((child, fk, cols))
        return None

    @staticmethod
    def table_missing(tables, table):
        return tables is not None and table not in tables

    # -- predicates -----------------------------------------------------------------------------
    def age_sql(self, cutoff):
        return "%s < %%s" % _q(self.spec.age), (cutoff,)

    def pred(self, rng):
        """(SQL, args) of a range; ``rng`` is the JSON-able dict stored in the journal."""
        spec = self.spec
        key = _q(spec.key)
        if not spec.pk:
            if rng.get("mlo") is None:
                return "%s >= %%s AND %s < %%s" % (key, key), (rng["lo"], rng["hi"])
            split = _q(spec.split)
            sql, args = "%s = %%s AND %s >= %%s" % (key, split), [rng["lo"], rng["mlo"]]
            if rng.get("mhi") is not None:
                sql += " AND %s < %%s" % split
                args.append(rng["mhi"])
            return sql, tuple(args)
        age, age_args = self.age_sql(rng["cutoff"])
        sql, args = "%s >= %%s" % key, [rng["lo"]]
        if rng.get("hi") is not None:
            sql += " AND %s <= %%s" % key
            args.append(rng["hi"])
        return sql + " AND " + age, tuple(args) + age_args

    def checksum(self, conn, table, columns, where, args, lock=False):
        sql = "SELECT COUNT(*), COALESCE(SUM(%s), 0) FROM %s WHERE %s%s" % (
            row_hash_sql(columns), _q(table), where, " FOR UPDATE" if lock else "")
        with conn.cursor() as cur:
            cur.execute(sql, args)
            count, total = cur.fetchone()
        return int(count), int(total)

    def child_where(self, fk, where):
        return "%s IN (SELECT %s FROM %s WHERE %s)" % (_q(fk), _q(self.spec.key), _q(self.spec.table), where)

    # -- ranges ---------------------------------------------------------------------------------
    def next_range(self, after=None):
        """The next range to move on main, or None when nothing older than the cutoff is left."""
        spec, step, key = self.spec, self.settings.step, _q(self.spec.key)
        table = _q(spec.table)
        if spec.pk:
            age, age_args = self.age_sql(self.cutoff)
            if after is None:
                lo = _scalar(self.main, "SELECT MIN(%s) FROM %s WHERE %s" % (key, table, age), age_args)
            else:
                lo = _scalar(self.main, "SELECT MIN(%s) FROM %s WHERE %s > %%s AND %s" % (key, table, key, age),
                             (after,) + age_args)
            if lo is None:
                return None
            hi = _scalar(self.main, "SELECT %s FROM %s WHERE %s >= %%s AND %s ORDER BY %s LIMIT %d, 1"
                         % (key, table, key, age, key, step - 1), (lo,) + age_args)
            return {"lo": int(lo), "hi": int(hi) if hi is not None else None, "cutoff": self.cutoff}
        split = _q(spec.split)
        if after is not None and after.get("mlo") is not None and after.get("mhi") is not None:
            # The rest of a split second first.
            mlo = _scalar(self.main, "SELECT MIN(%s) FROM %s WHERE %s = %%s AND %s >= %%s" % (split, table, key, split),
                          (after["lo"], after["mhi"]))
            if mlo is not None:
                return self._split_range(int(after["lo"]), int(mlo))
        if after is None:
            lo = _scalar(self.main, "SELECT MIN(%s) FROM %s WHERE %s < %%s" % (key, table, key), (self.cutoff,))
        else:
            # Past the previous range: rows behind it (written there later) wait for the next run, and the walk
            # never rereads the index entries the previous blocks deleted.
            low, op = (after["lo"], ">") if after.get("mlo") is not None else (after["hi"], ">=")
            lo = _scalar(self.main, "SELECT MIN(%s) FROM %s WHERE %s %s %%s AND %s < %%s" % (key, table, key, op, key),
                         (low, self.cutoff))
        if lo is None:
            return None
        lo = int(lo)
        edge = _scalar(self.main, "SELECT %s FROM %s WHERE %s >= %%s AND %s < %%s ORDER BY %s LIMIT %d, 1"
                       % (key, table, key, key, key, step), (lo, self.cutoff))
        if edge is None:
            return {"lo": lo, "hi": int(self.cutoff)}
        if int(edge) > lo:
            return {"lo": lo, "hi": int(edge)}
        # One utimestamp holds more rows than the step: split that second by module.
        mlo = int(_scalar(self.main, "SELECT MIN(%s) FROM %s WHERE %s = %%s" % (split, table, key), (lo,)))
        return self._split_range(lo, mlo)

    def _split_range(self, lo, mlo):
        spec, step, key = self.spec, self.settings.step, _q(self.spec.key)
        table, split = _q(spec.table), _q(spec.split)
        medge = _scalar(self.main, "SELECT %s FROM %s WHERE %s = %%s AND %s >= %%s ORDER BY %s LIMIT %d, 1"
                        % (split, table, key, split, split, step), (lo, mlo))
        if medge is None:
            return {"lo": lo, "mlo": mlo, "mhi": None}
        if int(medge) > mlo:
            return {"lo": lo, "mlo": mlo, "mhi": int(medge)}
        return {"lo": lo, "mlo": mlo, "mhi": mlo + 1}  # one (second, module) pair above the step: one block

    # -- the protocol ---------------------------------------------------------------------------
    def _point(self, name, count=0):
        if self.hook is not None:
            self.hook(self.spec.table, count, "history_move:" + name)

    def _insert(self, cur, table, columns, texts):
        """INSERT the server-quoted row tuples in statements of about INSERT_BYTES."""
        head = "INSERT INTO %s (%s) VALUES " % (_q(table), ", ".join(_q(c) for c in columns))
        batch, size = [], 0
        for text in texts:
            batch.append(text)
            size += len(text) + 1
            if size >= INSERT_BYTES:
                cur.execute(head + ",".join(batch))
                batch, size = [], 0
        if batch:
            cur.execute(head + ",".join(batch))

    def _read(self, table, columns, where, args, key=None, lock=True):
        """Rows of a range (locked unless ``lock`` is false): ``(keys, texts, (count, checksum))``; the checksum is
        computed by the server."""
        sql = "SELECT %s, %s, %s FROM %s WHERE %s%s" % (
            _q(key) if key else "NULL", row_text_sql(columns), row_hash_sql(columns), _q(table), where,
            " FOR UPDATE" if lock else "")
        keys, texts, total = [], [], 0
        with self.main.cursor() as cur:
            cur.execute(sql, args)
            for row in cur.fetchall():
                keys.append(row[0])
                texts.append(row[1])
                total += int(row[2])
        return keys, texts, (len(texts), total)

    def block(self, rng, number):
        """Move one range (states A -> B -> C); returns the rows moved from main."""
        spec = self.spec
        where, args = self.pred(rng)
        table = _q(spec.table)
        try:
            self.main.begin()
            keys, texts, main_sum = self._read(spec.table, self.columns, where, args, spec.key if spec.pk else None)
            if not texts:
                self.main.rollback()
                return 0
            child_data = []
            for child, fk, ccols in self.children:
                cwhere = self.child_where(fk, where)
                _k, ctexts, csum = self._read(child, ccols, cwhere, args)
                child_data.append((child, fk, ccols, ctexts, csum))
            self._point("locked", len(texts))
            self.copy(rng, number, where, args, keys, texts, main_sum, child_data)
            self._point("copied", len(texts))
            with self.main.cursor() as cur:
                deleted = cur.execute("DELETE FROM %s WHERE %s" % (table, where), args)
                if deleted != main_sum[0]:
                    raise OperationFailed("history_move: deleting range %s of %s removed %d rows instead of the %d"
                                          " copied; rolled back" % (json.dumps(rng), spec.table, deleted,
                                                                    main_sum[0]))
                _set_token(cur, MOVED_TOKEN % spec.table, {"n": number})
            self._point("deleted", deleted)
            self.main.commit()
        except Exception:
            _rollback(self.main)
            raise
        self._point("committed", deleted)
        self.account(deleted, child_data)
        return deleted

    def copy(self, rng, number, where, args, keys, texts, main_sum, child_data, ready=None):
        """Step 2: one history transaction; returns the history count of the range before the copy.

        ``ready`` (the pipelined walk) is called after the verification and before the journal is written: it
        returns once main has deleted the block before this one, or raises to roll this copy back.
        """
        spec = self.spec
        self.prepare_history_partitions(rng.get("lo"))
        try:
            self.hist.begin()
            with self.hist.cursor() as cur:
                if spec.pk:
                    for start in range(0, len(keys), ID_CHUNK):
                        chunk = keys[start:start + ID_CHUNK]
                        cur.execute("DELETE FROM %s WHERE %s IN (%s)" % (
                            _q(spec.table), _q(spec.key), ", ".join(["%s"] * len(chunk))), chunk)
                before = self.checksum(self.hist, spec.table, self.columns, where, args)
                self._insert(cur, spec.table, self.columns, texts)
                for child, fk, ccols, ctexts, _sum in child_data:
                    self._insert(cur, child, ccols, ctexts)
            after = self.checksum(self.hist, spec.table, self.columns, where, args)
            delta = (after[0] - before[0], after[1] - before[1])
            if delta != main_sum:
                raise OperationFailed("history_move: verification failed for range %s of %s: main has %d rows"
                                      " (checksum %d), the history copy %d (checksum %d); both sides rolled back,"
                                      " nothing moved" % (json.dumps(rng), spec.table, main_sum[0], main_sum[1],
                                                          delta[0], delta[1]))
            children = {}
            for child, fk, ccols, ctexts, csum in child_data:
                hsum = self.checksum(self.hist, child, ccols, self.child_where(fk, where), args)
                if hsum != csum:
                    raise OperationFailed("history_move: verification failed for the %s rows of range %s of %s;"
                                          " both sides rolled back" % (child, json.dumps(rng), spec.table))
                children[child] = list(csum)
            journal = {"n": number, "range": rng, "count": main_sum[0], "sum": str(main_sum[1]),
                       "before": before[0], "children": children}
            if ready is not None:
                ready()
            with self.hist.cursor() as cur:
                _set_token(cur, COPIED_TOKEN % spec.table, journal)
            self._point("verified", main_sum[0])
            self.hist.commit()
        except Exception:
            _rollback(self.hist)
            raise
        return before[0]

    def account(self, deleted, child_data):
        self.moved += deleted
        self.blocks += 1
        self.max_block = max(self.max_block, deleted)
        for child, _fk, _cols, _texts, csum in child_data:
            self.child_rows[child] = self.child_rows.get(child, 0) + csum[0]
        note = getattr(self.ctx, "note_rows", None)
        if note is not None:
            note(deleted)

    # -- resume ---------------------------------------------------------------------------------
    def journals(self):
        copied = _token(self.hist, COPIED_TOKEN % self.spec.table) or {}
        moved = _token(self.main, MOVED_TOKEN % self.spec.table) or {}
        return copied, moved

    def pending(self):
        """The journal of a range in state B, or None."""
        copied, moved = self.journals()
        if copied and not copied.get("aborted") and int(copied["n"]) > int(moved.get("n", 0)):
            return copied
        return None

    def next_number(self):
        copied, moved = self.journals()
        return max(int(copied.get("n", 0)), int(moved.get("n", 0))) + 1

    def resume(self):
        """Bring a range left in state B to C (or back to A); returns the rows moved from main."""
        journal = self.pending()
        if journal is None:
            return 0
        spec, rng, number = self.spec, journal["range"], int(journal["n"])
        self.resumed = {"n": number, "range": rng}
        self.ctx.log(SOURCE, "Resuming the interrupted move of %s range %s." % (spec.table, json.dumps(rng)))
        where, args = self.pred(rng)
        expected = (int(journal["count"]), int(journal["sum"]))
        try:
            self.main.begin()
            got = self.checksum(self.main, spec.table, self.columns, where, args, lock=True)
            same = got == expected
            for child, fk, ccols in self.children:
                csum = self.checksum(self.main, child, ccols, self.child_where(fk, where), args, lock=True)
                if list(csum) != list(journal.get("children", {}).get(child, [0, 0])):
                    same = False
            if same or got[0] == 0:
                with self.main.cursor() as cur:
                    deleted = cur.execute("DELETE FROM %s WHERE %s" % (_q(spec.table), where), args) if same else 0
                    _set_token(cur, MOVED_TOKEN % spec.table, {"n": number})
                self.main.commit()
                if same:
                    self.account(deleted, [])
                    for child, count in journal.get("children", {}).items():
                        self.child_rows[child] = self.child_rows.get(child, 0) + int(count[0])
                return deleted
            self.main.rollback()
        except Exception:
            _rollback(self.main)
            raise
        # Rows entered the range on main after the interrupted run: the copy no longer matches.
        if spec.pk:
            self.ctx.log(SOURCE, "  %s range %s changed on main since; copying it again."
                         % (spec.table, json.dumps(rng)))
            return self.block(rng, self.next_number())
        if int(journal.get("before", 1)) != 0:
            raise OperationFailed(
                "history_move: range %s of %s is on both databases after an interrupted run and the main database"
                " got new rows in it since; the history database already held rows in that range, so the copy"
                " cannot be told apart from them. Nothing was changed; compare the range on both sides and delete"
                " the duplicates from one, then remove the tconfig token %s of the history database"
                % (json.dumps(rng), spec.table, COPIED_TOKEN % spec.table))
        self.undo(journal, where, args, expected)
        return 0

    def undo(self, journal, where, args, expected, token=None):
        """State B -> A for a table without a key: the history range holds exactly the copy."""
        spec = self.spec
        try:
            self.hist.begin()
            got = self.checksum(self.hist, spec.table, self.columns, where, args, lock=True)
            if got != expected:
                raise OperationFailed("history_move: cannot undo the interrupted copy of range %s of %s: the history"
                                      " range no longer matches the journal; nothing was changed"
                                      % (json.dumps(journal["range"]), spec.table))
            with self.hist.cursor() as cur:
                cur.execute("DELETE FROM %s WHERE %s" % (_q(spec.table), where), args)
                done = dict(journal, aborted=True)
                _set_token(cur, token or COPIED_TOKEN % spec.table, done)
            self.hist.commit()
        except Exception:
            _rollback(self.hist)
            raise
        self.ctx.log(SOURCE, "  %s range %s changed on main since; the copy was undone, moving it again."
                     % (spec.table, json.dumps(journal["range"])))

    # -- the walk -------------------------------------------------------------------------------
    def run(self):
        moved = self.resume()
        moved += self.move_partitions()
        if self.pipelined():
            return moved + self.run_pipelined()
        number = self.next_number()
        after = None
        while True:
            rng = self.next_range(after)
            if rng is None:
                break
            if moved or self.blocks:
                self.ctx.check_time()
                if self.settings.delay:
                    time.sleep(self.settings.delay)
            moved += self.block(rng, number)
            number += 1
            if self.spec.pk:
                after = rng["hi"] if rng.get("hi") is not None else None
                if after is None:
                    break
            else:
                after = rng
        return moved

    # -- whole partitions (a main table in the partitioned layout, docs/partitions.md) ------------------
    def main_layout(self):
        """The main table's layout when it is the partitioned one this collection manages, else None."""
        if self.spec.pk:
            return None
        layout = _partitions.read_layout(self.main, self.spec.table)
        return layout if layout.managed else None

    @staticmethod
    def partition_ranges(layout):
        """``{name: (lo, hi)}`` of the dated partitions: the first also holds every dated row before its start."""
        out, lower = {}, 1
        for part in layout.dated:
            out[part.name] = (lower, part.upper)
            lower = part.upper
        return out

    def expired_partitions(self, layout):
        """``[(name, lo, hi)]`` of the dated partitions whose whole range is older than the cutoff."""
        ranges = self.partition_ranges(layout)
        return [(p.name,) + ranges[p.name] for p in _partitions.droppable(layout, self.cutoff_epoch)]

    def move_partitions(self):
        """Move every expired partition whole: copy, verify, then drop it on main (no row deleted on main)."""
        layout = self.main_layout()
        if layout is None:
            return 0
        moved = self.resume_partition(layout)
        if self.resumed:  # the resumed partition was dropped, or is to be copied again
            layout = _partitions.read_layout(self.main, self.spec.table)
        for index, (name, lo, hi) in enumerate(self.expired_partitions(layout)):
            if index or moved:
                self.ctx.check_time()
                if self.settings.delay:
                    time.sleep(self.settings.delay)
            moved += self.move_partition(name, lo, hi)
        return moved

    def _partition_sum(self, name):
        """Count and checksum of one main partition, the table locked by the caller or not."""
        sql = "SELECT COUNT(*), COALESCE(SUM(%s), 0) FROM %s PARTITION (%s)" % (
            row_hash_sql(self.columns), _q(self.spec.table), _q(name))
        with self.main.cursor() as cur:
            cur.execute(sql)
            count, total = cur.fetchone()
        return int(count), int(total)

    def move_partition(self, name, lo, hi):
        """One partition: states A (untouched) -> B (copied, journal on history) -> C (dropped on main)."""
        spec = self.spec
        table = spec.table
        where, args = self.pred({"lo": lo, "hi": hi})
        self.ctx.log(SOURCE, "  copying partition %s of %s to the history database." % (name, table))
        self.prepare_history_partitions(lo)
        count, total = 0, 0
        try:
            self.hist.begin()
            before = self.checksum(self.hist, table, self.columns, where, args)
            # Streamed from main by a reader thread while this one inserts on history (no lock: nothing writes
            # rows this old; the drop below verifies it under a table lock), in INSERT statements of about
            # INSERT_BYTES.
            reader = _PartitionReader(self, name)
            reader.start()
            try:
                with self.hist.cursor() as hcur:
                    for chunk in reader.chunks():
                        count += len(chunk)
                        total += sum(int(row[1]) for row in chunk)
                        self._insert(hcur, table, self.columns, [row[0] for row in chunk])
            finally:
                reader.finish()
            after = self.checksum(self.hist, table, self.columns, where, args)
            if (after[0] - before[0], after[1] - before[1]) != (count, total):
                raise OperationFailed("history_move: verification failed for partition %s of %s: main has %d rows,"
                                      " the history copy %d; rolled back, nothing moved"
                                      % (name, table, count, after[0] - before[0]))
            journal = {"partition": name, "range": {"lo": lo, "hi": hi}, "count": count, "sum": str(total),
                       "before": before[0]}
            with self.hist.cursor() as hcur:
                _set_token(hcur, PARTITION_TOKEN % table, journal)
            self._point("verified", count)
            self.hist.commit()
        except Exception:
            _rollback(self.hist)
            raise
        self._point("copied", count)
        return self.drop_copied(journal)

    def drop_copied(self, journal):
        """State B -> C: drop the partition if it still holds exactly the copy (checked under a table lock)."""
        spec, name = self.spec, journal["partition"]
        expected = (int(journal["count"]), int(journal["sum"]))
        rng = journal["range"]
        outcome = "kept"
        with _partitions.short_lock_wait(self.main), self.main.cursor() as cur:
            # Writers wait while the partition is checked and dropped: the time of one checksum.
            cur.execute("LOCK TABLES %s WRITE" % _q(spec.table))
            try:
                got = self._partition_sum(name)
                if got == expected or got[0] == 0:
                    cur.execute("ALTER TABLE %s DROP PARTITION %s" % (_q(spec.table), _q(name)))
                    outcome = "dropped" if got == expected else "empty"
                    self._point("deleted", got[0])
            finally:
                cur.execute("UNLOCK TABLES")
        if outcome == "kept":
            # Rows entered the old partition on main since the copy: undo the copy; the walk moves them.
            where, args = self.pred(rng)
            if int(journal.get("before", 1)) != 0:
                raise OperationFailed(
                    "history_move: partition %s of %s is on both databases and changed on main since it was copied;"
                    " the history database already held rows in its range, so the copy cannot be told apart from"
                    " them. Nothing was changed; compare the range on both sides, delete the duplicates from one,"
                    " then remove the tconfig token %s of the history database"
                    % (name, spec.table, PARTITION_TOKEN % spec.table))
            self.undo(journal, where, args, expected, token=PARTITION_TOKEN % spec.table)
            return 0
        self._mark_partition_done(journal)
        if outcome == "empty":
            return 0
        self._point("committed", expected[0])
        self.account(expected[0], [])
        self.partitions_moved.append(name)
        return expected[0]

    def _mark_partition_done(self, journal):
        try:
            self.hist.begin()
            with self.hist.cursor() as cur:
                _set_token(cur, PARTITION_TOKEN % self.spec.table, dict(journal, done=True))
            self.hist.commit()
        except Exception:
            _rollback(self.hist)
            raise

    def resume_partition(self, layout):
        """A partition left copied and not dropped (state B) by an interrupted run: drop it or undo the copy."""
        journal = _token(self.hist, PARTITION_TOKEN % self.spec.table)
        if not journal or journal.get("done") or journal.get("aborted"):
            return 0
        name = journal["partition"]
        self.resumed = {"partition": name, "range": journal["range"]}
        if name not in [p.name for p in layout.partitions]:
            # Dropped, the journal not marked yet: the rows are on history only.
            self._mark_partition_done(journal)
            return 0
        self.ctx.log(SOURCE, "Resuming the interrupted move of partition %s of %s." % (name, self.spec.table))
        return self.drop_copied(journal)

    def prepare_history_partitions(self, lo):
        """History ``tconfig`` ``history_partitions_auto`` = 1 and a history table in the managed layout: rows older
        than the history table's first dated partition get dated partitions of their own before they are copied
        (else they would all pile up in that first partition, which the history purge could not drop for long).

        Only while the first dated partition holds no row older than its start, so it is a metadata change; on the
        history connection (the pipelined walk calls it from its history thread).
        """
        if not self.history_partitions_auto or self.spec.pk or lo is None:
            return
        if self._hist_layout is None:
            layout = _partitions.read_layout(self.hist, self.spec.table)
            self._hist_layout = layout if layout.managed and layout.dated else False
        layout = self._hist_layout
        if not layout or lo >= layout.dated[0].start:
            return
        first = layout.dated[0]
        table = self.spec.table
        if _partitions.count_rows(self.hist, table, [first.name], "%s < %%s" % _q(self.spec.key), (first.start,)):
            self._hist_layout = False  # it holds older rows already: leave the layout alone this run
            return
        self._hist_layout = None  # changed below: read again next time
        interval = layout.interval or "day"
        start = _partitions.period_start(max(1, int(lo)), interval)
        items = []
        while start < first.start:
            upper = min(_partitions.next_start(start, interval), first.start)
            items.append("PARTITION %s VALUES LESS THAN (%d)" % (_q(_partitions.partition_name(start)), upper))
            start = upper
        items.append("PARTITION %s VALUES LESS THAN (%d)" % (_q(first.name), first.upper))
        _partitions.ddl(self.hist, "ALTER TABLE %s REORGANIZE PARTITION %s INTO (%s)" % (
            _q(table), _q(first.name), ", ".join(items)), what="the history database's %s" % table)
        self.ctx.log(SOURCE, "  history_partitions_auto: %d partitions added to the history database's %s."
                     % (len(items) - 1, table))

    # -- the pipelined walk (tables without a key, MariaDB) ------------------------------------------
    def pipelined(self):
        """Whether this table moves through the pipelined walk: a catch-up run (``history_db_delay`` 0) of a table
        without a key and without child rows, on a main server that has ``DELETE ... RETURNING`` (MariaDB)."""
        if not PIPELINE or self.spec.pk or self.children or self.settings.delay:
            # With a delay between blocks the sleeps set the pace: the pipeline would only load the main server
            # harder (a writer's p99 latency doubles with it, benchmarks/bench_history_move.py) for no gain.
            return False
        info = getattr(self.ctx, "server", None)
        if info is None:
            return server_info(self.main).is_mariadb
        return info.get("engine") == "mariadb"

    def run_pipelined(self):
        """Blocks as in :meth:`block`, with the two servers working at once.

        While the history server copies block n+1, main deletes block n and reads block n+2. The order that
        keeps the states of the protocol: block n+1 is committed on history only after block n was committed on
        main, so at most one range is ever in state B, the one the journals name. Main reads without locks and
        verifies instead, when it deletes: ``DELETE ... RETURNING`` the rows' text, which must be exactly the
        rows read and copied, else the delete is rolled back. A mismatch (rows written into or removed from the
        old range since it was read) leaves that range in state B, which is resolved at once as after a crash,
        and the walk starts over (at most MAX_RESTARTS times in one run).
        """
        restarts = 0
        moved = 0
        while True:
            done, mismatch = self._pipeline()
            moved += done
            if not mismatch:
                return moved
            restarts += 1
            if restarts > MAX_RESTARTS:
                raise OperationFailed(
                    "history_move: the rows of old ranges of %s kept changing on the main database while they were"
                    " moved (%d times in this run); whatever writes or deletes %s rows older than the cutoff must"
                    " stop, then run again. Nothing was lost: every range is on one side only or named by the"
                    " journals" % (self.spec.table, restarts, self.spec.table))
            self.ctx.log(SOURCE, "  %s range %s changed on main while it was moved; resolving it and going on."
                         % (self.spec.table, json.dumps(mismatch)))
            moved += self.resume()

    def _pipeline(self):
        """One pass of the pipelined walk: ``(rows moved, None)``, or ``(rows moved, range)`` for a mismatch."""
        number = self.next_number()
        worker = _CopyWorker(self, number - 1)
        worker.start()
        moved, prev, stop = 0, None, None
        rng = self.next_range(None)
        try:
            while rng is not None or prev is not None:
                item = None
                if rng is not None and (prev is not None or self.blocks):
                    try:
                        self.ctx.check_time()
                    except OutOfTime as exc:
                        stop, rng = exc, None
                    else:
                        if self.settings.delay:
                            time.sleep(self.settings.delay)
                if rng is not None:
                    item = self.read_block(rng, number)
                    if item is not None:
                        worker.submit(item)
                        number += 1
                if prev is not None:
                    worker.wait(prev.number)
                    self._point("copied", prev.count)
                    deleted = self.delete_block(prev)
                    if deleted is None:
                        return moved, prev.rng
                    worker.main_done(prev.number)
                    moved += deleted
                prev = item
                if rng is not None:
                    rng = self.next_range(rng)
        finally:
            worker.finish()
        if stop is not None:
            raise stop
        return moved, None

    def read_block(self, rng, number):
        where, args = self.pred(rng)
        _keys, texts, main_sum = self._read(self.spec.table, self.columns, where, args, lock=False)
        if not texts:
            return None
        self._point("locked", len(texts))
        return _Block(number, rng, where, args, texts, main_sum)

    def delete_block(self, item):
        """Step 3 of the pipelined walk: the rows deleted must be exactly the rows copied (else ``None``)."""
        spec = self.spec
        try:
            self.main.begin()
            with self.main.cursor() as cur:
                sql = "DELETE FROM %s WHERE %s RETURNING %s" % (_q(spec.table), item.where, row_text_sql(self.columns))
                cur.execute(sql, item.args)
                gone = sorted(row[0] for row in cur.fetchall())
                if gone != sorted(item.texts):
                    self.main.rollback()
                    return None
                _set_token(cur, MOVED_TOKEN % spec.table, {"n": item.number})
            self._point("deleted", len(gone))
            self.main.commit()
        except Exception:
            _rollback(self.main)
            raise
        self._point("committed", len(gone))
        self.account(len(gone), [])
        return len(gone)

    def count_left(self, executor=None):
        """Rows older than the cutoff on main (check mode: minus what earlier steps would delete)."""
        age, age_args = self.age_sql(self.cutoff)
        ex = executor or BatchExecutor(self.ctx, self.main, SOURCE)
        # The table by its plain name: that is how the earlier steps' simulated deletes are keyed.
        return ex.count(self.spec.table, age, age_args)

    def lag(self):
        """Age in seconds of the oldest row on main that should have moved (0 when none)."""
        age, age_args = self.age_sql(self.cutoff)
        col = _q(self.spec.age)
        expr = "UNIX_TIMESTAMP(MIN(%s))" % col if self.spec.kind == "datetime" else "MIN(%s)" % col
        oldest = _scalar(self.main, "SELECT %s FROM %s WHERE %s" % (expr, _q(self.spec.table), age), age_args)
        return 0 if oldest is None else max(0, int(self.ctx.now - int(oldest)))


class _Block(object):
    """A block read from main and handed to the history side."""

    def __init__(self, number, rng, where, args, texts, main_sum):
        self.number = number
        self.rng = rng
        self.where = where
        self.args = args
        self.texts = texts
        self.main_sum = main_sum
        self.count = main_sum[0]


class _PartitionReader(threading.Thread):
    """Streams one main partition's rows (text, hash) in chunks of the step, a few chunks ahead of the inserts."""

    AHEAD = 4

    def __init__(self, mover, partition):
        threading.Thread.__init__(self, name="history_move-read", daemon=True)
        self.mover = mover
        self.partition = partition
        self.cond = threading.Condition()
        self.queue = []
        self.stopping = False

    def _put(self, item):
        with self.cond:
            while len(self.queue) >= self.AHEAD and not self.stopping:
                self.cond.wait()
            if self.stopping:
                return False
            self.queue.append(item)
            self.cond.notify_all()
            return True

    def run(self):
        mover = self.mover
        try:
            with mover.main.cursor(pymysql.cursors.SSCursor) as cur:
                cur.execute("SELECT %s, %s FROM %s PARTITION (%s)" % (
                    row_text_sql(mover.columns), row_hash_sql(mover.columns), _q(mover.spec.table),
                    _q(self.partition)))
                while True:
                    chunk = cur.fetchmany(mover.settings.step)
                    if not chunk:
                        break
                    mover._point("locked", len(chunk))  # pylint: disable=protected-access
                    if not self._put(chunk):
                        return
            self._put(None)
        except BaseException as exc:  # pylint: disable=broad-except  # handed to the inserting thread
            self._put(exc)

    def chunks(self):
        while True:
            with self.cond:
                while not self.queue:
                    self.cond.wait()
                item = self.queue.pop(0)
                self.cond.notify_all()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def finish(self):
        with self.cond:
            self.stopping = True
            self.queue = []
            self.cond.notify_all()
        self.join()


class _Stopped(Exception):
    """The walk is ending: the copy in progress rolls back."""


class _CopyWorker(threading.Thread):
    """The history side of the pipelined walk: copies blocks in order, on the history connection only.

    A block's copy is committed only once main has deleted the block before it (``main_done``); the main thread
    waits for a block's commit (``wait``) before it deletes the block on main. ``finish`` rolls back a copy that is
    not committed and ends the thread.
    """

    def __init__(self, mover, done):
        threading.Thread.__init__(self, name="history_move-copy", daemon=True)
        self.mover = mover
        self.cond = threading.Condition()
        self.queue = []
        self.committed = done      # the last block number committed on history
        self.deleted = done        # the last block number deleted on main
        self.error = None
        self.stopping = False

    def submit(self, item):
        with self.cond:
            self.queue.append(item)
            self.cond.notify_all()

    def main_done(self, number):
        with self.cond:
            self.deleted = number
            self.cond.notify_all()

    def wait(self, number):
        """Until block ``number`` is committed on history; re-raises the history side's error."""
        with self.cond:
            while self.committed < number and self.error is None:
                self.cond.wait()
            if self.error is not None:
                raise self.error

    def finish(self):
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.join()

    def _ready(self, number):
        def ready():
            with self.cond:
                while self.deleted < number - 1 and not self.stopping:
                    self.cond.wait()
                if self.deleted < number - 1:
                    raise _Stopped()
        return ready

    def run(self):
        mover = self.mover
        try:
            while True:
                with self.cond:
                    while not self.queue and not self.stopping:
                        self.cond.wait()
                    if self.stopping:
                        return
                    item = self.queue.pop(0)
                mover.copy(item.rng, item.number, item.where, item.args, [], item.texts, item.main_sum, [],
                           ready=self._ready(item.number))
                with self.cond:
                    self.committed = item.number
                    self.cond.notify_all()
        except _Stopped:
            return
        except BaseException as exc:  # pylint: disable=broad-except  # handed to the main thread
            with self.cond:
                self.error = exc
                self.cond.notify_all()


# -- the step ---------------------------------------------------------------------------------
class HistoryMoveStep(object):
    """Step ``history_move`` of the maintenance run (see the module docstring)."""

    name = "history_move"
    group = "history_move"
    source = SOURCE
    table = None
    database = "main"

    def __init__(self, settings):
        self.settings = settings

    def plan(self, ctx):
        return self.work(ctx, True)

    def run(self, ctx):
        return self.work(ctx, False)

    def _skipped(self, ctx, reason, table=None):
        ctx.log(SOURCE, "Moving old data to the history database. Skipped: %s." % reason)
        return StepResult(self.name, table, skipped_reason=reason)

    def work(self, ctx, check):
        settings = self.settings
        if not settings.enabled:
            return [self._skipped(ctx, settings.skip_reason)]
        if ctx.history_conn is None:
            return [self._skipped(ctx, "no history database connection")]
        for text in settings.notes:
            if text not in ctx.notes:
                ctx.note(text)
        for text in settings.warnings:
            if text not in ctx.warnings:
                ctx.warn(text)
        with ctx.history_conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'")
        hook = getattr(ctx, "statement_hook", None)
        out = []
        for spec in TABLES:
            entry = settings.days.get(spec.table)
            if entry is None:
                reason = ("history_%s_enabled is not 1" % spec.days if spec.days in ("event", "trap")
                          else "its days are 0")
                out.append(StepResult(self.name, spec.table, skipped_reason=reason))
                continue
            if ctx.tables is not None and spec.table not in ctx.tables:
                out.append(StepResult(self.name, spec.table, skipped_reason="table %s does not exist" % spec.table))
                continue
            days, source = entry
            started = time.time()
            mover = TableMove(ctx, spec, days, settings, hook)
            missing = mover.check_schema(ctx.history_tables)
            threshold = {"key": {"data": "history_db_days", "string": "history_db_string_days",
                                 "event": "history_event_days", "trap": "history_trap_days"}[spec.days],
                         "value": days, "unit": "days", "source": source, "cutoff": mover.cutoff_epoch}
            if missing:
                out.append(StepResult(self.name, spec.table, skipped_reason=missing, threshold=threshold))
                continue
            details = {"action": "move", "step": settings.step, "delay": settings.delay}
            self._partition_notes(ctx, mover)
            if check:
                rows = mover.count_left()
                layout = mover.main_layout()
                if layout is not None:
                    details["partitions"] = [name for name, _lo, _hi in mover.expired_partitions(layout)]
                pending = mover.pending()
                details.update(blocks=-(-rows // settings.step), lag_seconds=mover.lag(),
                               pending_range=pending["range"] if pending else None)
                ctx.log(SOURCE, "  check mode: %d rows of %s would move to the history database" % (rows, spec.table))
            else:
                ctx.log(SOURCE, "Moving data older than %s days from %s to the history database."
                        % (days, spec.table))
                rows = mover.run()
                details.update(blocks=mover.blocks, max_block_rows=mover.max_block, lag_seconds=mover.lag(),
                               resumed_range=mover.resumed["range"] if mover.resumed else None)
                if mover.child_rows:
                    details["child_rows"] = dict(mover.child_rows)
                if mover.partitions_moved:
                    details["partitions_moved"] = list(mover.partitions_moved)
                seconds = time.time() - started
                details["rows_per_second"] = round(rows / seconds, 1) if seconds > 0 else None
                ctx.log(SOURCE, "  %d rows of %s moved in %d blocks." % (rows, spec.table, mover.blocks))
            self._moved_before(ctx, mover, check)
            out.append(StepResult(self.name, spec.table, rows=rows, seconds=time.time() - started,
                                  threshold=threshold, details=details))
        if check and any(r.rows for r in out):
            ctx.note("check mode: the history database's compaction and purge are predicted without the rows this"
                     " run would move there (they are not there yet)")
        return out

    @staticmethod
    def _partition_notes(ctx, mover):
        """history_partitions_auto = 1 with a history table that is not in the partitioned layout: say so."""
        if not mover.history_partitions_auto or mover.spec.pk:
            return
        layout = _partitions.read_layout(mover.hist, mover.spec.table)
        if layout.exists and not layout.managed:
            text = ("the history database's tconfig has history_partitions_auto = 1, but its %s is not in the"
                    " partitioned layout; convert it with pandorafms.server.pandora_partitions (state: present)"
                    " against the history database, so that its purge drops partitions" % mover.spec.table)
            if text not in ctx.warnings:
                ctx.warn(text)

    @staticmethod
    def _moved_before(ctx, mover, check):
        """What later steps must know: rows older than the cutoff have left the main database.

        The compaction of the main database starts at the first window after the cutoff (a mean stamped
        before it would be moved by the next run, so a rerun would not be a no-op); in check mode, later
        counts exclude the rows that would have moved.
        """
        table = mover.spec.table
        purged = getattr(ctx, "purged_before", None)
        if purged is not None and mover.spec.kind != "datetime":
            purged[("main", table)] = max(purged.get(("main", table)) or 0, mover.cutoff_epoch)
        sim = simulation(ctx) if check else None
        if sim is not None:
            age, age_args = mover.age_sql(mover.cutoff)
            sim.add_gone(table, "%s.%s" % (table, age), age_args)
