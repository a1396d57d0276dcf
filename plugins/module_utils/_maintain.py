# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The maintenance runner: one run of what pandora_db.pl does, step by step.

1. connect to the main database, read ``tconfig``;
2. master check (``tserver``), unless ``require_master`` is false: on a node
   that is not the master the run does nothing and says so;
3. validate every threshold of the selected steps (a bad value stops the run
   before anything changes);
4. take the locks: ``<db>_pandora_db`` (the one pandora_db.pl takes, so the two
   never run at once), upstream's ``merge-working`` / ``merging-events``, and
   ``<history db>_pandora_db`` on the history database;
5. run the steps in upstream order: PURGE, CHECKDB, INTEGRITY, (the move to the
   history database, a later issue), COMPACT, the ``db_maintance`` token, the
   forgotten discovery tasks, then on the history database its purge, its
   compaction and its tokens;
6. return per-step results, totals, the upstream-format run log, and the
   diff (rows per table before/after) when asked.

``max_runtime`` is checked between batches: the run stops cleanly, reports
what it did and what is left, and does not stamp ``db_maintance``.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible_collections.pandorafms.server.plugins.module_utils._batch import Simulation
from ansible_collections.pandorafms.server.plugins.module_utils._checks import (
    DiscoveryTasks, checkdb_steps, integrity_steps)
from ansible_collections.pandorafms.server.plugins.module_utils._connection import (
    ConnectionSettings, connect, existing_tables, pymysql, server_info)
from ansible_collections.pandorafms.server.plugins.module_utils._context import (
    Context, OutOfTime, RunLog, StepResult)
from ansible_collections.pandorafms.server.plugins.module_utils._errors import (
    ConfigError, LockBusy, OperationFailed, PandoraError, PreconditionFailed)
from ansible_collections.pandorafms.server.plugins.module_utils._history_purge import (
    history_purge_steps, same_database, write_history_tokens)
from ansible_collections.pandorafms.server.plugins.module_utils._lock import MaintenanceLock
from ansible_collections.pandorafms.server.plugins.module_utils._purge import (
    THRESHOLD_KEYS, purge_steps, resolve_batch_size, resolve_thresholds)
from ansible_collections.pandorafms.server.plugins.module_utils._serverconf import default_servername
from ansible_collections.pandorafms.server.plugins.module_utils._tconfig import (
    TConfig, parse_number, plan_token, write_token)

STEP_CHOICES = ("purge", "checkdb", "integrity", "compact", "discovery_tasks", "history_purge")
# What pandora_db.pl does when run from cron without flags.
DEFAULT_STEPS = STEP_CHOICES
MAIN_TOKEN = "db_maintance"
DB_ERRORS = (pymysql.err.MySQLError,) if pymysql is not None else ()
MERGE_LOCKS = (("merge-working", "Merge is running"), ("merging-events", "Merge events is running"))
DEFAULT_INCOMINGDIR = "/var/spool/pandora/data_in"
NO_HISTORY = ("no history database is configured (tconfig history_db_enabled is not 1 and history_login_host is not"
              " set): history purge skipped")
TOOL_NAME = "Pandora FMS DB Tool (pandorafms.server.pandora_db_maintain)"

# Tables whose row count only changes through this run's own statements (no FK cascade into them).
DIFF_TABLES = ("tagente", "tagente_modulo", "tagente_estado", "tagente_datos", "tagente_datos_string",
               "tagente_datos_inc", "tagente_datos_inventory", "tevento", "tsesion", "tsesion_extended",
               "tsessions_php", "tserver_export_data", "ttrap", "tgis_data_history", "tplanned_downtime",
               "treport_content", "talert_special_days", "tgraph_source", "tmensajes",
               "tvisual_console_elements_cache", "tgroup_stat", "tagent_access", "taddress_agent")
HISTORY_DIFF_TABLES = ("tagente_datos", "tagente_datos_string", "tevento", "ttrap")


class MaintenanceContext(Context):
    """:class:`Context` plus what the runner and its steps share."""

    def __init__(self, *args, **kwargs):
        self.simulation = kwargs.pop("simulation", None)
        self.thresholds = kwargs.pop("thresholds", {})
        self.tables = kwargs.pop("tables", None)
        self.history_tables = kwargs.pop("history_tables", None)
        self.statement_hook = kwargs.pop("statement_hook", None)
        self.history_dbname = kwargs.pop("history_dbname", None)
        Context.__init__(self, *args, **kwargs)
        self.notes = []
        self.current_rows = 0
        # {(database, table): epoch}: rows older than this are deleted by this run's purge (set in check mode
        # too, where they are still in the table), for the steps that come after it (compaction).
        self.purged_before = {}

    def note(self, text):
        self.notes.append(text)

    def note_rows(self, count):
        self.current_rows += count


def normalise_steps(steps):
    """The selected step groups (``None`` = the default run); unknown names are a ConfigError."""
    if steps is None:
        return list(DEFAULT_STEPS)
    out = []
    for step in steps:
        if step not in STEP_CHOICES:
            raise ConfigError("unknown step %r; choose from %s" % (step, ", ".join(STEP_CHOICES)))
        if step not in out:
            out.append(step)
    return out


def find_master(conn):
    """Name of the current master server (pandora_set_master's query), or None."""
    with conn.cursor() as cur:
        cur.execute("SELECT name FROM tserver WHERE master <> 0 AND status = 1 ORDER BY master DESC LIMIT 1")
        row = cur.fetchone()
    return row[0] if row else None


def _take_named_lock(conn, name, what):
    with conn.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, 0)", (name,))
        got = cur.fetchone()[0]
    if got != 1:
        raise LockBusy("%s (the named lock %s is held on the main database); try again when it ends" % (what, name))


def _release_named_lock(conn, name):
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT RELEASE_LOCK(%s)", (name,))
    except Exception:  # the connection may be gone; the lock goes with it
        pass


def _compact_step(database):
    """CompactStep (issue 4), imported lazily: the runner works without it."""
    try:
        from ansible_collections.pandorafms.server.plugins.module_utils._compact import CompactStep
    except ImportError:
        return None
    step = CompactStep(database=database)
    step.group = "compact"
    step.database = database
    return step


class _Marker(object):
    """A point in the step sequence where the runner itself does something (token, banner)."""

    def __init__(self, name, group, database="main"):
        self.name = name
        self.group = group
        self.database = database


class MaintenanceRun(object):
    """One run; ``run()`` returns the result dict (see the module's RETURN)."""

    def __init__(self, settings, server_values=None, steps=None, check_mode=False, diff=False, thresholds=None,
                 batch_size=None, batch_sleep=0.0, max_runtime=None, lock_timeout=0, require_master=True,
                 servername=None, incomingdir=None, log_file=None, history=None, now=None, statement_hook=None,
                 extra_options=None):
        self.settings = settings
        self.server_values = server_values or {}
        self.steps = normalise_steps(steps)
        self.check_mode = bool(check_mode)
        self.diff = bool(diff)
        self.options = dict((key, None) for key in THRESHOLD_KEYS)
        self.options.update(thresholds or {})
        self.options.update(extra_options or {})
        unknown = [key for key in (thresholds or {}) if key not in THRESHOLD_KEYS]
        if unknown:
            raise ConfigError("unknown threshold option(s): %s" % ", ".join(sorted(unknown)))
        self.batch_size_option = batch_size
        self.batch_sleep = self._non_negative(batch_sleep, "batch_sleep", allow_float=True) or 0.0
        self.max_runtime = self._non_negative(max_runtime, "max_runtime", allow_float=True)
        self.lock_timeout = self._non_negative(lock_timeout, "lock_timeout") or 0
        self.require_master = require_master
        self.servername = servername or self.server_values.get("servername") or default_servername()
        self.incomingdir = incomingdir or self.server_values.get("incomingdir") or DEFAULT_INCOMINGDIR
        self.log_file = log_file
        self.history_options = dict(history or {})
        self.now = int(now) if now is not None else None
        self.statement_hook = statement_hook
        self.conn = None
        self.history_conn = None
        self.history_settings = None
        self.locks = []
        self.named_locks = []
        self.results = []
        self.tokens = {}
        self.pre_notes = []

    @staticmethod
    def _non_negative(value, name, allow_float=False):
        if value is None:
            return None
        return parse_number(value, "option %s" % name, minimum=0, allow_float=allow_float)

    # -- entry point ----------------------------------------------------------------------------
    def run(self):
        started = time.time()
        if not self.settings.database:
            raise ConfigError("no database name: give login_db, or pandora_server_conf with dbname")
        log = self._open_log()
        try:
            return self._run(log, started)
        except DB_ERRORS as exc:
            code = exc.args[0] if exc.args else None
            reason = exc.args[1] if len(exc.args) > 1 else str(exc)
            raise OperationFailed(self.settings.redact("database error on %s: (%s) %s" % (
                self.settings.describe(), code, reason)), code=code)
        finally:
            for lock in reversed(self.locks):
                try:
                    lock.release()
                except Exception:
                    pass
            for name in self.named_locks:
                _release_named_lock(self.conn, name)
            for conn in (self.history_conn, self.conn):
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        pass
            log.close()

    def _open_log(self):
        try:
            return RunLog(self.log_file)
        except (IOError, OSError) as exc:
            raise ConfigError("cannot write the log_file %s: %s" % (self.log_file, exc.strerror or exc))

    def _base_result(self, info):
        return {
            "changed": False,
            "check_mode": self.check_mode,
            "steps": [],
            "totals": {},
            "duration": 0.0,
            "server": dict(info.as_dict(), servername=self.servername),
            "database": self.settings.database,
            "history_database": None,
            "skipped_reason": None,
            "stopped_early": False,
            "log": [],
            "notes": [],
            "warnings": [],
        }

    def _run(self, log, started):
        self.conn = connect(self.settings)
        info = server_info(self.conn)
        with self.conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'")
        tables = existing_tables(self.conn)
        if "tconfig" not in tables or "tserver" not in tables:
            raise PreconditionFailed("%s has no tconfig/tserver table: it is not a Pandora FMS database (or the"
                                     " schema was never loaded)" % self.settings.describe())
        result = self._base_result(info)
        master = find_master(self.conn)
        result["server"]["master"] = master
        if self.require_master and master != self.servername:
            reason = "not master"
            text = (" [*] Not a master server (master: %s, this server: %s)." % (master, self.servername)
                    if master else " [*] Not a master server: no running master in tserver (this server: %s)."
                    % self.servername)
            log.raw(text)
            result.update(skipped_reason=reason, log=list(log.lines), duration=round(time.time() - started, 3))
            result["notes"].append(text.strip())
            return result

        tconfig = TConfig.load(self.conn)
        thresholds = resolve_thresholds(tconfig, self.options, self.steps)
        batch_size = resolve_batch_size(tconfig, self.batch_size_option)

        # Locks: fail fast when pandora_db.pl (or another run) is busy.
        lock = MaintenanceLock(self.conn, self.settings.database, wait=self.lock_timeout, what="main")
        lock.acquire()
        self.locks.append(lock)
        for name, what in MERGE_LOCKS:
            _take_named_lock(self.conn, name, what)
            self.named_locks.append(name)

        history_tconfig = self._connect_history(tconfig, result)
        if history_tconfig is not None:
            thresholds.update(resolve_thresholds(tconfig, self.options, self.steps, history_tconfig))

        ctx = MaintenanceContext(
            self.conn, tconfig, now=self.now, check_mode=self.check_mode, options=self.options,
            history_conn=self.history_conn, history_tconfig=history_tconfig, batch_size=batch_size,
            batch_sleep=self.batch_sleep, max_runtime=self.max_runtime, log=log, server=info.as_dict(),
            servername=self.servername, incomingdir=self.incomingdir, dbname=self.settings.database,
            simulation=Simulation() if self.check_mode else None, thresholds=thresholds, tables=tables,
            history_tables=existing_tables(self.history_conn) if self.history_conn is not None else None,
            statement_hook=self.statement_hook,
            history_dbname=self.history_settings.database if self.history_settings else None)
        for warning in tconfig.duplicate_warnings():
            ctx.warn(warning)

        self._banner(ctx, tconfig)
        before = self._counts(ctx) if self.diff else None
        sequence = self._sequence(ctx)
        stopped = None
        for index, step in enumerate(sequence):
            try:
                ctx.check_time()
                self._run_step(ctx, step)
            except OutOfTime:
                stopped = self._stopped(ctx, step, sequence[index + 1:])
                break
            except PandoraError as exc:
                self._finish_log(ctx)
                exc.details["steps"] = [r.as_dict() for r in self.results]
                exc.details["log"] = list(ctx.log.lines)
                raise
        self._finish_log(ctx)
        after = self._counts(ctx, before) if self.diff else None

        result.update(self._assemble(ctx, started))
        if stopped:
            result["stopped_early"] = True
            result.update(stopped)
        if self.diff:
            result["diff"] = {"before": before, "after": after}
        result["history_database"] = self.history_settings.database if self.history_settings else None
        return result

    # -- history connection ---------------------------------------------------------------------
    def _connect_history(self, tconfig, result):
        wants = "history_purge" in self.steps or "compact" in self.steps
        opts = self.history_options
        enabled = str(tconfig.get("history_db_enabled", "")).strip() == "1"
        if not wants or not (enabled or opts.get("host")):
            if "history_purge" in self.steps:
                self.pre_notes.append(NO_HISTORY)
            return None
        host = opts.get("host") or tconfig.get("history_db_host")
        if not host:
            raise ConfigError("tconfig history_db_enabled is 1 but history_db_host is empty; set it in the console"
                              " or give history_login_host")
        port = opts.get("port") or tconfig.get("history_db_port") or 3306
        try:
            port = int(port)
        except (TypeError, ValueError):
            raise ConfigError("history database port %r (tconfig history_db_port) is not a number" % port)
        settings = ConnectionSettings(
            host=host, port=port,
            user=opts.get("user") or tconfig.get("history_db_user") or "pandora",
            password=opts.get("password") if opts.get("password") is not None else tconfig.get("history_db_pass", ""),
            database=opts.get("db") or tconfig.get("history_db_name") or "pandora",
            connect_timeout=self.settings.connect_timeout)
        self.history_settings = settings
        try:
            self.history_conn = connect(settings)
        except PandoraError as exc:
            hint = "" if opts.get("password") else (
                " (the password comes from tconfig history_db_pass, which Enterprise may store encrypted;"
                " give history_login_password)")
            raise type(exc)("history database: %s%s" % (settings.redact(exc.msg), hint))
        if same_database(self.conn, self.history_conn):
            raise PreconditionFailed("the history database (%s) is the main database itself; refusing to apply the"
                                     " history purge rules to it" % settings.describe())
        if "tconfig" not in existing_tables(self.history_conn):
            raise PreconditionFailed("the history database %s has no tconfig table; create it from pandoradb.sql"
                                     % settings.describe())
        lock = MaintenanceLock(self.history_conn, settings.database, wait=self.lock_timeout, what="history")
        lock.acquire()
        self.locks.append(lock)
        return TConfig.load(self.history_conn)

    # -- the sequence ---------------------------------------------------------------------------
    def _sequence(self, ctx):
        steps = self.steps
        seq = []
        if "purge" in steps:
            seq += purge_steps()
        if "checkdb" in steps:
            seq += checkdb_steps()
        if "integrity" in steps:
            seq += integrity_steps()
        # The move of old data to the history database (Enterprise's pandora_historydb, a later issue of this
        # collection) goes here, as in pandora_db.pl: after INTEGRITY, before COMPACT.
        if "compact" in steps:
            seq.append(_compact_step("main") or _Marker("compact", "compact"))
        seq.append(_Marker(MAIN_TOKEN, "token"))
        if "discovery_tasks" in steps:
            seq.append(DiscoveryTasks())
        if ctx.history_conn is not None:
            seq.append(_Marker("history_start", "history_start", "history"))
            if "history_purge" in steps:
                seq += history_purge_steps()
            if "compact" in steps:
                seq.append(_compact_step("history") or _Marker("compact", "compact", "history"))
            seq.append(_Marker("history_tokens", "history_tokens", "history"))
        elif "history_purge" in steps:
            seq.append(_Marker("history_purge", "no_history", "history"))
        return seq

    def _run_step(self, ctx, step):
        ctx.current_rows = 0
        if isinstance(step, _Marker):
            return self._marker(ctx, step)
        results = step.plan(ctx) if ctx.check_mode else step.run(ctx)
        for res in results or []:
            if not isinstance(res, StepResult):
                raise OperationFailed("step %s returned %r instead of StepResult objects" % (step.name, res))
            if getattr(step, "database", None) == "history":
                res.database = "history"
            self.results.append(res)

    def _marker(self, ctx, marker):
        if marker.group == "compact":
            reason = "compaction is not available in this version of the collection"
            ctx.log("COMPACT", "Skipped: %s." % reason)
            self.results.append(StepResult("compact", "tagente_datos", skipped_reason=reason,
                                           database=marker.database))
        elif marker.group == "token":
            self._main_token(ctx)
        elif marker.group == "no_history":
            self.results.append(StepResult("history_purge", None, skipped_reason="no history database configured",
                                           database="history"))
        elif marker.group == "history_start":
            ctx.log.raw(" [>] DB Tool running on historical database.")
            # Check mode: the history database has its own simulated state.
            ctx.simulation = Simulation() if ctx.check_mode else None
        elif marker.group == "history_tokens":
            if "history_purge" in self.steps and not ctx.stopped_early:
                changes = write_history_tokens(ctx.history_conn, ctx.now, ctx.check_mode)
                self.tokens["history"] = dict((token, ctx.now) for token in changes)

    def _main_token(self, ctx):
        """Upstream stamps db_maintance after the main maintenance; only when the purge ran."""
        if "purge" not in self.steps:
            return
        if ctx.check_mode:
            plan_token(ctx.conn, MAIN_TOKEN, ctx.now)
        else:
            write_token(ctx.conn, MAIN_TOKEN, ctx.now)
        self.tokens["main"] = {MAIN_TOKEN: ctx.now}

    def _stopped(self, ctx, step, rest):
        """max_runtime: what the interrupted step did, what is left."""
        name = getattr(step, "name", str(step))
        ctx.log("!", "max_runtime (%ss) reached during %s: stopping between batches." % (self.max_runtime, name))
        ctx.stopped_early = True
        left = None
        if not isinstance(step, _Marker) and hasattr(step, "plan"):
            saved = ctx.deadline
            ctx.deadline = None
            try:
                left = sum(r.rows for r in step.plan(ctx) if not r.skipped_reason)
            except Exception:  # counting what is left is best effort
                left = None
            finally:
                ctx.deadline = saved
        if not isinstance(step, _Marker):
            self.results.append(StepResult(name, getattr(step, "table", None), rows=ctx.current_rows,
                                           database=getattr(step, "database", "main"),
                                           details={"interrupted": True, "rows_left": left}))
        remaining = [getattr(s, "name", str(s)) for s in rest if not isinstance(s, _Marker)]
        return {"interrupted_step": name, "rows_left": left, "remaining_steps": remaining}

    # -- output ---------------------------------------------------------------------------------
    def _banner(self, ctx, tconfig):
        log = ctx.log
        log.raw(TOOL_NAME)
        log.raw("")
        log.raw("This program is free software, licensed under the GNU GPL v3 or later.")
        log.raw("Starting at %s" % time.strftime("%Y-%m-%d %H:%M:%S"))
        days = ctx.thresholds.get("days_purge")
        log.raw("DB Tool now initialized and running (PURGE=%s days, COMPACT=%s days, STEP=%s) ." % (
            days.value if days else tconfig.get("days_purge"),
            self.options.get("days_compact") if self.options.get("days_compact") is not None
            else tconfig.get("days_compact"),
            self.options.get("step_compact") if self.options.get("step_compact") is not None
            else tconfig.get("step_compact")))
        log.raw(" [*] DB Host is %s" % self.settings.describe())
        if ctx.check_mode:
            log.raw(" [*] Check mode: counting only, nothing is changed.")

    def _finish_log(self, ctx):
        ctx.log.raw("Ending at %s" % time.strftime("%Y-%m-%d %H:%M:%S"))

    def _assemble(self, ctx, started):
        steps = [r.as_dict() for r in self.results]
        by_table = {}
        deleted = inserted = updated = 0
        changed = False
        for res in self.results:
            if res.skipped_reason or not res.rows:
                continue
            changed = True
            action = (res.details or {}).get("action", "delete")
            if action == "insert":
                inserted += res.rows
            elif action.startswith("update"):
                updated += res.rows
            else:
                deleted += res.rows
            key = "%s.%s" % (res.database, res.table) if res.database != "main" else str(res.table)
            by_table[key] = by_table.get(key, 0) + res.rows
        totals = {"rows": deleted + inserted + updated, "deleted": deleted, "inserted": inserted, "updated": updated,
                  "by_table": by_table, "steps_run": sum(1 for r in self.results if not r.skipped_reason),
                  "steps_skipped": sum(1 for r in self.results if r.skipped_reason)}
        return {"changed": changed, "steps": steps, "totals": totals, "duration": round(time.time() - started, 3),
                "log": list(ctx.log.lines), "notes": self.pre_notes + list(ctx.notes), "warnings": list(ctx.warnings),
                "maintenance_tokens": self.tokens, "batch_size": ctx.batch_size}

    def _counts(self, ctx, before=None):
        """Rows per table (diff mode); in check mode ``after`` is ``before`` minus the predicted deletes."""
        if before is not None and ctx.check_mode:
            after = dict((db, dict(tables)) for db, tables in before.items())
            for res in self.results:
                if res.skipped_reason or not res.rows:
                    continue
                tables = after.get(res.database, {})
                action = (res.details or {}).get("action", "delete")
                if action.startswith("update"):
                    continue
                changes = (res.details or {}).get("rows_by_table") or {res.table: res.rows}
                for table, rows in changes.items():
                    if table in tables:
                        tables[table] += rows if action == "insert" else -rows
            return after
        out = {"main": self._count_tables(ctx.conn, ctx.tables, DIFF_TABLES)}
        if ctx.history_conn is not None:
            out["history"] = self._count_tables(ctx.history_conn, ctx.history_tables, HISTORY_DIFF_TABLES)
        return out

    @staticmethod
    def _count_tables(conn, existing, names):
        out = {}
        with conn.cursor() as cur:
            for table in names:
                if existing is not None and table not in existing:
                    continue
                cur.execute("SELECT COUNT(*) FROM `%s`" % table)
                out[table] = int(cur.fetchone()[0])
        return out


def run_maintenance(settings, server_values=None, **options):
    """Run one maintenance; see :class:`MaintenanceRun` for the options."""
    return MaintenanceRun(settings, server_values, **options).run()


# Options of the compaction step, passed on as they are (the engine validates them).
COMPACT_OPTIONS = ("days_compact", "step_compact", "compact_row_budget", "compact_chunk_rows",
                   "history_days_compact", "history_step_compact")


def options_from_params(params):
    """:func:`run_maintenance`'s keyword arguments from pandora_db_maintain's options.

    Used by the module and by the scheduled job of the db_maintenance role (which
    reads the same options from its options file), so both run the same way.  An
    option that is missing or ``None`` takes the module's default.
    """
    get = params.get
    return dict(
        steps=get("steps"),
        thresholds=dict((key, get(key)) for key in THRESHOLD_KEYS),
        extra_options=dict((key, get(key)) for key in COMPACT_OPTIONS),
        batch_size=get("batch_size"),
        batch_sleep=get("batch_sleep") if get("batch_sleep") is not None else 0.0,
        max_runtime=get("max_runtime"),
        lock_timeout=get("lock_timeout") if get("lock_timeout") is not None else 0,
        require_master=get("require_master") if get("require_master") is not None else True,
        servername=get("servername"),
        incomingdir=get("incomingdir"),
        log_file=get("log_file"),
        history=dict(host=get("history_login_host"), port=get("history_login_port"),
                     user=get("history_login_user"), password=get("history_login_password"),
                     db=get("history_login_db")),
        now=get("now"))
