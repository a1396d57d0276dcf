# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The batched executor: every write of a maintenance run goes through here.

Rules it enforces, whatever the step:

* no statement changes more than ``batch_size`` rows of its table (each write
  carries ``LIMIT batch_size`` or covers a key range that holds at most that many
  rows); the executor checks the row count of every statement and keeps the
  largest one it saw;
* deletes walk an index in key order: a time column's index for the purges
  (``DELETE ... WHERE col >= lo AND col < cutoff ORDER BY col LIMIT n``, with
  ``lo`` moved forward after each batch so no statement re-reads rows already
  deleted), the primary key for tables that have no index on the purge column
  (find the key range of the candidates with one non-locking read, then delete
  key ranges of at most ``n`` rows);
* autocommit: each statement is its own transaction, so locks last one batch;
* a lock wait timeout (1205) or a deadlock (1213) is retried a bounded number of
  times, any other error stops the run with the statement's table named;
* ``ctx.check_time()`` between batches (``max_runtime``), ``ctx.pause()`` after
  each batch (``batch_sleep``), progress lines for long walks;
* in check mode nothing is written: the steps count with :meth:`count`, which
  also subtracts what earlier steps of the same run would have deleted
  (:class:`Simulation`), so the prediction matches the real run.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import time

from ansible_collections.pandorafms.server.plugins.module_utils._connection import pymysql
from ansible_collections.pandorafms.server.plugins.module_utils._errors import OperationFailed

DB_ERRORS = (pymysql.err.MySQLError,) if pymysql is not None else ()
RETRYABLE = (1205, 1213)  # lock wait timeout, deadlock
MAX_RETRIES = 5
PROGRESS_STEP = 10  # percent between two progress lines


class Simulation(object):
    """Check mode only: what the earlier steps of this run would have changed.

    Nothing is written in check mode, so a later step would count rows that an
    earlier step is going to delete (the events of an agent deleted by the
    agent purge, the status rows of pending modules, ...).  Each step's plan
    records its effect here as SQL and later counts exclude it.

    * ``gone[table]``: predicates (over ``table``'s own columns, the table named
      by its real name) matching rows earlier steps would delete;
    * ``agents`` / ``modules``: subqueries returning the ids of agents / modules
      that would be deleted; ``pending``: modules that would be marked
      ``delete_pending``.
    """

    def __init__(self):
        self.gone = {}
        self.agents = []
        self.modules = []
        self.pending = []

    def add_gone(self, table, predicate, args=()):
        self.gone.setdefault(table, []).append((predicate, tuple(args)))

    def exclusions(self, table):
        """``(" AND NOT (p1) AND NOT (p2)", args)`` for ``table``."""
        sql, args = "", []
        for predicate, pargs in self.gone.get(table, ()):
            sql += " AND NOT (%s)" % predicate
            args.extend(pargs)
        return sql, tuple(args)

    @staticmethod
    def _member(column, subqueries):
        if not subqueries:
            return "0", ()
        parts, args = [], []
        for sub, sargs in subqueries:
            parts.append("%s IN (%s)" % (column, sub))
            args.extend(sargs)
        return "(" + " OR ".join(parts) + ")", tuple(args)

    def agent_deleted(self, column):
        """SQL true when the agent id in ``column`` would be deleted by an earlier step."""
        return self._member(column, self.agents)

    def module_deleted(self, column):
        return self._member(column, self.modules)

    def module_pending(self, column):
        return self._member(column, self.pending)


def simulation(ctx):
    return getattr(ctx, "simulation", None)


def agent_gone_sql(ctx, column):
    """SQL (and args) true when the agent in ``column`` does not exist at this point of the run."""
    sql = "NOT EXISTS (SELECT 1 FROM tagente ag_x WHERE ag_x.id_agente = %s)" % column
    sim = simulation(ctx)
    if sim is None or not sim.agents:
        return sql, ()
    member, args = sim.agent_deleted(column)
    return "(%s OR %s)" % (sql, member), args


def module_gone_sql(ctx, column):
    """SQL (and args) true when the module in ``column`` does not exist at this point of the run."""
    sql = "NOT EXISTS (SELECT 1 FROM tagente_modulo am_x WHERE am_x.id_agente_modulo = %s)" % column
    sim = simulation(ctx)
    if sim is None or not sim.modules:
        return sql, ()
    member, args = sim.module_deleted(column)
    return "(%s OR %s)" % (sql, member), args


def _fraction(first, current, last):
    """How far ``current`` is between ``first`` and ``last`` (0..1), for numbers and datetimes."""
    try:
        if isinstance(first, datetime.datetime):
            span = (last - first).total_seconds()
            done = (current - first).total_seconds()
        else:
            span = float(last) - float(first)
            done = float(current) - float(first)
    except (TypeError, ValueError):
        return None
    if span <= 0:
        return None
    return max(0.0, min(1.0, done / span))


class Progress(object):
    """Emits ``<label> NN%`` lines every PROGRESS_STEP percent."""

    def __init__(self, ctx, source, label, first, last):
        self.ctx = ctx
        self.source = source
        self.label = label
        self.first = first
        self.last = last
        self.next_mark = PROGRESS_STEP

    def update(self, current):
        if not self.label:
            return
        fraction = _fraction(self.first, current, self.last)
        if fraction is None:
            return
        percent = int(fraction * 100)
        if percent >= self.next_mark and percent < 100:
            self.ctx.log(self.source, "%s %d%%" % (self.label, percent))
            self.next_mark = (percent // PROGRESS_STEP + 1) * PROGRESS_STEP


class BatchExecutor(object):
    """Runs one step's statements on one connection; keeps the accounting.

    ``rows`` is the total of the row counts of its writes, ``statements`` their
    number and ``max_rows`` the largest single row count (never above
    ``batch_size`` for the batched writes).
    """

    def __init__(self, ctx, conn=None, source="PURGE", batch_size=None):
        self.ctx = ctx
        self.conn = conn if conn is not None else ctx.conn
        self.source = source
        self.batch_size = int(batch_size or ctx.batch_size or 1000)
        if self.batch_size < 1:
            self.batch_size = 1
        self.rows = 0
        self.statements = 0
        self.max_rows = 0
        self.retries = 0

    # -- low level ------------------------------------------------------
    def _fail(self, sql, exc, table):
        code = exc.args[0] if exc.args else None
        reason = exc.args[1] if len(exc.args) > 1 else str(exc)
        where = ("table %s" % table) if table else "a statement"
        return OperationFailed("%s step failed on %s: (%s) %s" % (self.source, where, code, reason),
                               code=code, table=table, sql=sql.split(" WHERE ")[0][:200])

    def query(self, sql, args=None, table=None):
        """A read (SELECT); returns all rows (callers keep results small)."""
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall()
        except DB_ERRORS as exc:
            raise self._fail(sql, exc, table)

    def scalar(self, sql, args=None, table=None):
        rows = self.query(sql, args, table)
        return rows[0][0] if rows else None

    def write(self, sql, args=None, table=None):
        """One write statement in its own transaction; retried on lock wait timeout / deadlock."""
        if self.ctx.check_mode:
            raise OperationFailed("internal error: a write was attempted in check mode (%s)" % (table or sql[:40]))
        attempt = 0
        while True:
            try:
                with self.conn.cursor() as cur:
                    count = cur.execute(sql, args)
                break
            except DB_ERRORS as exc:
                code = exc.args[0] if exc.args else None
                if code in RETRYABLE and attempt < MAX_RETRIES:
                    attempt += 1
                    self.retries += 1
                    self.ctx.log(self.source, "%s on %s, retrying (%d/%d)" % (
                        "Deadlock" if code == 1213 else "Lock wait timeout", table or "a table", attempt, MAX_RETRIES))
                    time.sleep(min(0.2 * (2 ** attempt), 5.0))
                    continue
                raise self._fail(sql, exc, table)
        self.statements += 1
        self.rows += count
        if count > self.max_rows:
            self.max_rows = count
        note = getattr(self.ctx, "note_rows", None)
        if note is not None:
            note(count)
        hook = getattr(self.ctx, "statement_hook", None)
        if hook is not None:
            hook(table, count, sql)
        return count

    def between_batches(self):
        self.ctx.check_time()
        self.ctx.pause()

    def accounting(self):
        return {"statements": self.statements, "max_statement_rows": self.max_rows, "retries": self.retries,
                "batch_size": self.batch_size}

    # -- check mode -------------------------------------------------------
    def count(self, table, where="1=1", args=()):
        """``COUNT(*)`` of the rows matching ``where`` that earlier steps would not have removed."""
        sql = "SELECT COUNT(*) FROM %s WHERE (%s)" % (table, where)
        args = tuple(args)
        sim = simulation(self.ctx)
        if sim is not None:
            extra, extra_args = sim.exclusions(table)
            sql += extra
            args += extra_args
        return int(self.scalar(sql, args, table) or 0)

    # -- batched writes ---------------------------------------------------
    def delete_index_range(self, table, column, upper, label=None):
        """Delete rows with ``column < upper`` walking the index on ``column`` in key order.

        ``upper`` is a value (number or datetime).  Each statement deletes at
        most ``batch_size`` rows; the lower bound moves to the first remaining
        key after each batch.
        """
        n = self.batch_size
        first = self.scalar("SELECT MIN(%s) FROM %s WHERE %s < %%s" % (column, table, column), (upper,), table)
        if first is None:
            return 0
        progress = Progress(self.ctx, self.source, label, first, upper)
        lo = first
        deleted = 0
        while True:
            count = self.write("DELETE FROM %s WHERE %s >= %%s AND %s < %%s ORDER BY %s LIMIT %d"
                               % (table, column, column, column, n), (lo, upper), table)
            deleted += count
            if count < n:
                break
            lo = self.scalar("SELECT MIN(%s) FROM %s WHERE %s >= %%s AND %s < %%s" % (column, table, column, column),
                             (lo, upper), table)
            if lo is None:
                break
            progress.update(lo)
            self.between_batches()
        return deleted

    def delete_pk_walk(self, table, pk, where, args=(), label=None):
        """Delete rows matching ``where`` in primary-key ranges of at most ``batch_size`` rows.

        For tables without an index on the purge column: one consistent
        (non-locking) read finds the key range of the candidates, then each
        statement covers the next ``batch_size`` keys of that range only, so no
        statement locks more than one batch of rows.
        """
        n = self.batch_size
        args = tuple(args)
        row = self.query("SELECT MIN(%s), MAX(%s) FROM %s WHERE (%s)" % (pk, pk, table, where), args, table)
        if not row or row[0][0] is None:
            return 0
        lo, last = row[0]
        progress = Progress(self.ctx, self.source, label, lo, last)
        deleted = 0
        inclusive = True
        while True:
            cmp_lo = ">=" if inclusive else ">"
            edge = self.scalar("SELECT %s FROM %s WHERE %s %s %%s AND %s <= %%s ORDER BY %s LIMIT %d, 1"
                               % (pk, table, pk, cmp_lo, pk, pk, n - 1), (lo, last), table)
            hi = edge if edge is not None else last
            while True:
                count = self.write("DELETE FROM %s WHERE %s %s %%s AND %s <= %%s AND (%s) ORDER BY %s LIMIT %d"
                                   % (table, pk, cmp_lo, pk, where, pk, n), (lo, hi) + args, table)
                deleted += count
                if count < n:
                    break
                self.between_batches()
            if edge is None or hi >= last:
                break
            lo, inclusive = hi, False
            progress.update(lo)
            self.between_batches()
        return deleted

    def delete_limit_loop(self, table, where, args=(), order_by=None):
        """``DELETE ... WHERE <where> [ORDER BY] LIMIT n`` until a batch comes back short.

        For predicates an index serves (the rows of some modules, ...).
        """
        n = self.batch_size
        order = (" ORDER BY %s" % order_by) if order_by else ""
        deleted = 0
        while True:
            count = self.write("DELETE FROM %s WHERE %s%s LIMIT %d" % (table, where, order, n), tuple(args), table)
            deleted += count
            if count < n:
                return deleted
            self.between_batches()

    def update_limit_loop(self, table, assignments, where, args=(), order_by=None, expected=None):
        """``UPDATE ... SET <assignments> WHERE <where> LIMIT n`` until a batch comes back short.

        The assignment must make a row stop matching ``where``; ``expected`` (a
        count taken first) bounds the loop in any case.
        """
        n = self.batch_size
        order = (" ORDER BY %s" % order_by) if order_by else ""
        if expected is None:
            expected = self.count_plain(table, where, args)
        return self._repeat_until_short("UPDATE %s SET %s WHERE %s%s LIMIT %d" % (table, assignments, where, order, n),
                                        args, table, expected // n + 2)

    def insert_select_loop(self, table, columns, select_sql, args=(), order_by=None, expected=None):
        """``INSERT INTO t (cols) SELECT ... LIMIT n`` until a batch comes back short.

        ``select_sql`` must stop returning a row once it is inserted (a NOT
        EXISTS on the target); ``expected`` bounds the loop in any case.
        """
        n = self.batch_size
        order = (" ORDER BY %s" % order_by) if order_by else ""
        return self._repeat_until_short("INSERT INTO %s (%s) %s%s LIMIT %d" % (table, columns, select_sql, order, n),
                                        args, table, (expected if expected is not None else 0) // n + 2)

    def _repeat_until_short(self, sql, args, table, rounds):
        """Run a ``LIMIT batch_size`` write until it changes fewer rows, at most ``rounds`` times."""
        total = 0
        while rounds > 0:
            rounds -= 1
            count = self.write(sql, tuple(args), table)
            total += count
            if count < self.batch_size:
                break
            self.between_batches()
        return total

    def count_plain(self, table, where, args=()):
        return int(self.scalar("SELECT COUNT(*) FROM %s WHERE %s" % (table, where), tuple(args), table) or 0)

    def delete_orphans_by_key(self, table, column, parent_table, parent_column, chunk=1000):
        """Delete the rows of ``table`` whose ``column`` value has no row in ``parent_table``.

        Walks the distinct values of the (indexed) ``column`` in key order,
        ``chunk`` values at a time, keeps those missing from the parent, and
        deletes their rows with the index, ``batch_size`` rows per statement.
        Only key values are held in memory, never rows.
        """
        deleted = 0
        lo = None
        while True:
            cond = "" if lo is None else "WHERE %s > %%s" % column
            params = () if lo is None else (lo,)
            keys = self.query(
                "SELECT k.v, EXISTS (SELECT 1 FROM %s p WHERE p.%s = k.v) FROM"
                " (SELECT DISTINCT %s AS v FROM %s %s ORDER BY %s LIMIT %d) k ORDER BY k.v"
                % (parent_table, parent_column, column, table, cond, column, chunk), params, table)
            if not keys:
                return deleted
            for value, exists in keys:
                if not exists:
                    deleted += self.delete_limit_loop(table, "%s = %%s" % column, (value,))
                    self.between_batches()
            if len(keys) < chunk:
                return deleted
            lo = keys[-1][0]
