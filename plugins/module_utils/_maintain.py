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
5. run the steps in upstream order: PURGE, CHECKDB, INTEGRITY, the move to the
   history database (``_history_move``), COMPACT, the ``db_maintance`` token, the
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
from ansible_collections.pandorafms.server.plugins.module_utils._agents import MARKED_KEY, MODULE_CHILDREN
from ansible_collections.pandorafms.server.plugins.module_utils._connection import (
    check_port, connect, existing_tables, pymysql, server_info)
from ansible_collections.pandorafms.server.plugins.module_utils._context import (
    Context, OutOfTime, RunLog, StepResult)
from ansible_collections.pandorafms.server.plugins.module_utils._errors import (
    ConfigError, LockBusy, OperationFailed, PandoraError, PreconditionFailed, database_error_hint)
from ansible_collections.pandorafms.server.plugins.module_utils._history_move import (
    MOVE_OPTIONS, HistoryMoveStep, resolve_move_settings)
from ansible_collections.pandorafms.server.plugins.module_utils._history_purge import (
    history_purge_steps, history_settings, same_database, write_history_tokens)
from ansible_collections.pandorafms.server.plugins.module_utils._lock import MaintenanceLock
from ansible_collections.pandorafms.server.plugins.module_utils._purge import (
    THRESHOLD_KEYS, THRESHOLDS, purge_steps, resolve_batch_size, resolve_threshold, resolve_thresholds)
from ansible_collections.pandorafms.server.plugins.module_utils._serverconf import default_servername
from ansible_collections.pandorafms.server.plugins.module_utils._tconfig import (
    TConfig, parse_number, plan_token, write_token)

STEP_CHOICES = ("purge", "checkdb", "integrity", "history_move", "compact", "discovery_tasks", "history_purge")
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

# Tables every Pandora FMS schema the collection supports has, and that the purge works on: a database missing one
# is damaged or not a Pandora database, so the run warns (the steps on it are skipped).  The others the steps use
# are optional: Enterprise only (tagente_datos_inventory, tsesion_extended, tpolicy_agents), dropped in MR 67
# (tagent_access) or only in some versions (tgis_data_history, tvisual_console_elements_cache, tgroup_stat).
CORE_TABLES = ("tagente", "tagente_modulo", "tagente_estado", "tagente_datos", "tagente_datos_string",
               "tagente_datos_inc", "tevento", "tsesion", "tsessions_php", "ttrap", "tserver_export_data",
               "tplanned_downtime", "treport_content", "treport_content_item", "treport_content_sla_combined",
               "talert_special_days", "tgraph_source", "tmensajes", "taddress_agent")
HISTORY_CORE_TABLES = ("tagente_datos", "tagente_datos_string", "tevento")

# Limits of the run's own options; each is refused by name beyond them, before anything changes.
MAX_BATCH_SIZE = 100000   # rows per statement: more holds row locks for seconds and defeats batching
MAX_BATCH_SLEEP = 60.0    # seconds between batches
MAX_LOCK_TIMEOUT = 86400  # seconds to wait for the maintenance lock

# Tables a step may delete from besides its own ``table`` (the FK cascades of these are counted too).
_EXTRA_PARENTS = {
    "disabled_agents": ("tagente",) + tuple(t for t, c in MODULE_CHILDREN),
    "autodisabled_agents": ("tagente", "tagente_modulo", "tagente_estado") + tuple(t for t, c in MODULE_CHILDREN),
    "report_contents": ("treport_content", "treport_content_item", "treport_content_sla_combined"),
}


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


REQUIRED_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")


def missing_privileges(conn):
    """The privileges of :data:`REQUIRED_PRIVILEGES` the login surely lacks on the current database.

    Global and database-level grants are read from ``information_schema``; when the login also has table-level
    grants or an active role, what it may do cannot be told from there and nothing is reported (the statements
    themselves then fail with a clear message).
    """
    with conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER(), CURRENT_ROLE()")
        user, role = cur.fetchone()
        if role not in (None, "", "NONE") or "@" not in (user or ""):
            return []
        name, host = user.rsplit("@", 1)
        grantee = "'%s'@'%s'" % (name, host)
        cur.execute("SELECT COUNT(*) FROM information_schema.TABLE_PRIVILEGES WHERE GRANTEE = %s", (grantee,))
        if cur.fetchone()[0]:
            return []
        cur.execute("SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = %s"
                    " UNION SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = %s"
                    " AND (TABLE_SCHEMA = DATABASE() OR DATABASE() LIKE TABLE_SCHEMA)", (grantee, grantee))
        have = set(str(row[0]).upper() for row in cur.fetchall())
    return [priv for priv in REQUIRED_PRIVILEGES if priv not in have]


def normalise_steps(steps):
    """The selected step groups (``None`` = the default run); unknown names and an empty list are a ConfigError."""
    if steps is None:
        return list(DEFAULT_STEPS)
    if not steps:
        raise ConfigError("steps is an empty list, so the run would do nothing; leave steps out for the full"
                          " maintenance, or name the parts to run (%s)" % ", ".join(STEP_CHOICES))
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


def _bounded(value, name, minimum=0, maximum=None, allow_float=False, meaning=""):
    if value is None:
        return None
    number = parse_number(value, "option %s" % name, minimum=minimum, allow_float=allow_float)
    if maximum is not None and number > maximum:
        raise ConfigError("option %s is %s; it must be at most %s%s" % (name, value, maximum, meaning))
    return number


def _absolute(path, name):
    if path and not path.startswith("/"):
        raise ConfigError("option %s is %r, a relative path, which would be taken from the module's working"
                          " directory; give an absolute path" % (name, path))
    return path


def validate_options(steps, options, batch_size=None, batch_sleep=0.0, max_runtime=None, lock_timeout=0,
                     incomingdir=None, log_file=None, history=None):
    """Every check of the run's own options, before it connects, in check mode and real mode alike.

    Returns the values the run uses; a value out of range is a :class:`ConfigError` naming the option.
    The checks that need ``tconfig`` (thresholds, ``batch_size`` from ``small_operation_step_datos_purge``,
    compaction settings) run in :meth:`MaintenanceRun.validate_database`, also before any step.
    """
    out = {"steps": normalise_steps(steps)}
    known = THRESHOLD_KEYS + COMPACT_OPTIONS + MOVE_OPTIONS + PARTITION_OPTIONS
    unknown = [key for key in (options or {}) if key not in known]
    if unknown:
        raise ConfigError("unknown threshold option(s): %s" % ", ".join(sorted(unknown)))
    out["batch_size"] = _bounded(batch_size, "batch_size", 1, MAX_BATCH_SIZE,
                                 meaning=" rows per statement (the point of batching is short statements)")
    out["batch_sleep"] = _bounded(batch_sleep, "batch_sleep", 0, MAX_BATCH_SLEEP, allow_float=True,
                                  meaning=" seconds") or 0.0
    out["max_runtime"] = _bounded(max_runtime, "max_runtime", 0, allow_float=True)
    out["lock_timeout"] = _bounded(lock_timeout, "lock_timeout", 0, MAX_LOCK_TIMEOUT, meaning=" seconds") or 0
    for key in THRESHOLD_KEYS:
        if key in (options or {}) and options[key] is not None:
            spec = [t for t in THRESHOLDS if t.key == key][0]
            resolve_threshold(spec, None, options)
    for key in ("days_compact", "history_days_compact"):
        _bounded((options or {}).get(key), key, 0)
    for key in ("step_compact", "history_step_compact"):
        _bounded((options or {}).get(key), key, 1, meaning=" hours")
    compact = _compact_module()
    if compact is not None:
        compact.compact_limits(options)
    out["incomingdir"] = _absolute(incomingdir, "incomingdir")
    out["log_file"] = _absolute(log_file, "log_file")
    history = dict(history or {})
    if history.get("port") is not None:
        history["port"] = check_port(history["port"], "history_login_port")
    out["history"] = history
    return out


# Options passed on as they are (the engines validate them): the purge of partitioned tables (_partitions.py)
# and the compaction step.
PARTITION_OPTIONS = ("partition_purge_exact",)
COMPACT_OPTIONS = ("days_compact", "step_compact", "compact_row_budget", "compact_chunk_rows",
                   "history_days_compact", "history_step_compact")


def _compact_module():
    """The compaction engine's validation (imported as the step is, lazily: the runner works without it)."""
    try:
        from ansible_collections.pandorafms.server.plugins.module_utils._compact import (
            CompactSettings, compact_limits)
    except ImportError:
        return None
    return _CompactValidation(CompactSettings, compact_limits)


class _CompactValidation(object):
    def __init__(self, settings_class, limits):
        self.CompactSettings = settings_class
        self.compact_limits = limits


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
        unknown = [key for key in (thresholds or {}) if key not in THRESHOLD_KEYS]
        if unknown:
            raise ConfigError("unknown threshold option(s): %s" % ", ".join(sorted(unknown)))
        self.options = dict((key, None) for key in THRESHOLD_KEYS)
        self.options.update(thresholds or {})
        self.options.update(extra_options or {})
        valid = validate_options(steps, self.options, batch_size, batch_sleep, max_runtime, lock_timeout,
                                 incomingdir, log_file, history)
        self.steps = valid["steps"]
        self.check_mode = bool(check_mode)
        self.diff = bool(diff)
        self.batch_size_option = valid["batch_size"]
        self.batch_sleep = valid["batch_sleep"]
        self.max_runtime = valid["max_runtime"]
        self.lock_timeout = valid["lock_timeout"]
        self.require_master = require_master
        self.servername = servername or self.server_values.get("servername") or default_servername()
        self.incomingdir = valid["incomingdir"] or self.server_values.get("incomingdir") or DEFAULT_INCOMINGDIR
        self.log_file = valid["log_file"]
        self.history_options = valid["history"]
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
        self.move_step = None

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
            raise self._explained(OperationFailed(self.settings.redact("database error on %s: (%s) %s" % (
                self.settings.describe(), code, reason)), code=code))
        except PandoraError as exc:
            raise self._explained(exc)
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

    def _explained(self, exc):
        """The same error, its message completed with what was changed and what to do; never a password."""
        msg = exc.msg
        code = exc.details.get("code")
        hint = database_error_hint(code) if isinstance(exc, OperationFailed) else None
        if hint and hint not in msg:
            msg = "%s. %s" % (msg.rstrip("."), hint)
        changed = [r for r in self.results if r.changed]
        if self.check_mode:
            what = "Check mode: nothing was changed."
        elif not changed:
            what = "Nothing was changed."
        else:
            names = []
            for res in changed:
                if res.name not in names:
                    names.append(res.name)
            what = ("Steps that ran before the error committed their batches (%s: %d rows) and stay done;"
                    " db_maintance was not written. Fix the cause and run again: the next run continues with what"
                    " is left." % (", ".join(names[:10]) + (", ..." if len(names) > 10 else ""),
                                   sum(r.rows for r in changed)))
        if what not in msg:
            msg = "%s. %s" % (msg.rstrip("."), what)
        new = type(exc)(self.settings.redact(msg), **exc.details)
        return new

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
        thresholds, batch_size = self.validate_database(tconfig)
        if "history_move" in self.steps:  # validated here, before anything changes
            self.move_step = HistoryMoveStep(resolve_move_settings(tconfig, self.options))

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
            self._validate_compaction(history_tconfig, "history")

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
        self._warn_missing_core(ctx)
        ctx.cascades = {"main": _cascade_map(self.conn, tables)}
        if self.history_conn is not None:
            ctx.cascades["history"] = _cascade_map(self.history_conn, ctx.history_tables)

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

    # -- validation that needs the database ----------------------------------------------------
    def validate_database(self, tconfig):
        """Thresholds, batch size and compaction settings from ``tconfig`` and the options, all validated.

        Called before the locks and before any step, in check mode and real mode alike: whatever the real run
        would refuse, check mode refuses first, with the same message.
        """
        thresholds = resolve_thresholds(tconfig, self.options, self.steps)
        batch_size = resolve_batch_size(tconfig, self.batch_size_option)
        if batch_size > MAX_BATCH_SIZE:
            raise ConfigError("tconfig token small_operation_step_datos_purge is %s, more rows per statement than"
                              " this collection allows (%d); give batch_size, or lower the token in the console"
                              % (batch_size, MAX_BATCH_SIZE))
        self._validate_compaction(tconfig, "main")
        missing = missing_privileges(self.conn)
        if missing:
            raise PreconditionFailed(
                "the login %s lacks the %s privilege(s) on database '%s', which the maintenance needs to delete,"
                " insert and update rows; grant them (GRANT SELECT, INSERT, UPDATE, DELETE, CREATE TEMPORARY TABLES"
                " ON `%s`.* TO ...) or log in as the Pandora FMS user" % (
                    self.settings.describe(database=""), ", ".join(missing), self.settings.database,
                    self.settings.database))
        return thresholds, batch_size

    def _validate_compaction(self, tconfig, database):
        if "compact" not in self.steps:
            return
        compact = _compact_module()
        if compact is None:
            return
        if database == "main":
            compact.CompactSettings.resolve(self.now or int(time.time()), tconfig, self.options, source="tconfig")
        else:
            compact.CompactSettings.resolve(self.now or int(time.time()), tconfig, self.options, prefix="history_",
                                            source="the history database's tconfig")

    def _warn_missing_core(self, ctx):
        if "purge" not in self.steps and "checkdb" not in self.steps and "integrity" not in self.steps:
            return
        missing = [t for t in CORE_TABLES if t not in ctx.tables]
        if missing:
            ctx.warn("the main database %s lacks core Pandora FMS table(s) %s: the steps on them are skipped, so"
                     " this maintenance is incomplete. The schema is damaged or from an unsupported version; restore"
                     " the tables from pandoradb.sql (or a backup)" % (self.settings.describe(), ", ".join(missing)))
        if ctx.history_conn is not None and "history_purge" in self.steps:
            missing = [t for t in HISTORY_CORE_TABLES if t not in ctx.history_tables]
            if missing:
                ctx.warn("the history database %s lacks core table(s) %s: its purge skips them"
                         % (self.history_settings.describe(), ", ".join(missing)))

    # -- history connection ---------------------------------------------------------------------
    def _connect_history(self, tconfig, result):
        wants = "history_purge" in self.steps or "compact" in self.steps or (
            self.move_step is not None and self.move_step.settings.enabled)
        opts = self.history_options
        settings = history_settings(tconfig, opts, self.settings.connect_timeout) if wants else None
        if settings is None:
            if "history_purge" in self.steps:
                self.pre_notes.append(NO_HISTORY)
            return None
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
        # The move of old data to the history database (Enterprise's pandora_historydb), as in pandora_db.pl:
        # after INTEGRITY, before COMPACT.
        if self.move_step is not None:
            seq.append(self.move_step)
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
        self._stop_cascaded = None
        if isinstance(step, _Marker):
            return self._marker(ctx, step)
        database = "history" if getattr(step, "database", None) == "history" else "main"
        conn = ctx.history_conn if database == "history" else ctx.conn
        cascades = (getattr(ctx, "cascades", None) or {}).get(database) or {}
        sim = ctx.simulation if ctx.check_mode else None
        if ctx.check_mode:
            marks = dict((table, len(preds)) for table, preds in sim.gone.items()) if sim is not None else {}
            results = step.plan(ctx)
            cascaded = (_predict_cascades(conn, sim, marks, cascades, _explicit_deletes(results))
                        if sim is not None else {})
        else:
            children = _children_of(cascades, self._parents(step))
            before = _count_rows(conn, children)
            try:
                results = step.run(ctx)
            except OutOfTime:
                self._stop_cascaded = _measured_cascades(conn, children, before, {})
                raise
            cascaded = _measured_cascades(conn, children, before, _explicit_deletes(results))
        for res in results or []:
            if not isinstance(res, StepResult):
                raise OperationFailed("step %s returned %r instead of StepResult objects" % (step.name, res))
            if database == "history":
                res.database = "history"
            self.results.append(res)
        if cascaded and results:
            first = results[0]
            first.details = dict(first.details or {}, cascaded=cascaded)

    @staticmethod
    def _parents(step):
        """Tables ``step`` may delete rows from (their FK-cascade children are counted around it)."""
        out = set(_EXTRA_PARENTS.get(getattr(step, "name", None), ()))
        table = getattr(step, "table", None)
        if table:
            out.add(table)
        return out

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
            details = {"interrupted": True, "rows_left": left}
            if getattr(self, "_stop_cascaded", None):
                details["cascaded"] = self._stop_cascaded
            self.results.append(StepResult(name, getattr(step, "table", None), rows=ctx.current_rows,
                                           database=getattr(step, "database", "main"), details=details))
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
        totals = totals_of(self.results)
        # Partitions dropped or created (_partitions.py) are a change even when no row moved.
        changed = any(r.changed or (not r.skipped_reason and (r.details or {}).get("ddl_changed"))
                      for r in self.results)
        return {"changed": changed, "steps": steps, "totals": totals, "duration": round(time.time() - started, 3),
                "log": list(ctx.log.lines), "notes": self.pre_notes + list(ctx.notes), "warnings": list(ctx.warnings),
                "maintenance_tokens": self.tokens, "batch_size": ctx.batch_size}

    def _counts(self, ctx, before=None):
        """Rows per table (diff mode); in check mode ``after`` is ``before`` plus the predicted changes."""
        if before is not None and ctx.check_mode:
            after = dict((db, dict(tables)) for db, tables in before.items())
            for res in self.results:
                tables = after.get(res.database, {})
                for table, change in _table_changes(res).items():
                    if table in tables:
                        tables[table] += change[1] - change[0]
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


# -- what each result changed, and the totals ------------------------------------------------
def _table_changes(res):
    """``{table: [deleted, inserted, updated]}`` of one step result, FK-cascaded deletes included."""
    out = {}
    if res.skipped_reason:
        return out
    details = res.details or {}

    def add(table, index, count):
        if table and count:
            out.setdefault(table, [0, 0, 0])[index] += int(count)

    action = details.get("action", "delete")
    if "rows_deleted" in details and "rows_inserted" in details:
        # Compaction: raw rows deleted, their means inserted, in the same table.
        add(res.table, 0, details["rows_deleted"])
        add(res.table, 1, details["rows_inserted"])
    elif action == "insert":
        add(res.table, 1, res.rows)
    elif action.startswith("update"):
        add(res.table, 2, res.rows)
    elif details.get("rows_by_table"):
        for table, count in details["rows_by_table"].items():
            if table == MARKED_KEY:
                add("tagente_modulo", 2, count)
            else:
                add(table, 0, count)
    else:
        add(res.table, 0, res.rows)
    for table, count in (details.get("cascaded") or {}).items():
        add(table, 0, count)
    return out


def totals_of(results):
    """The run's totals, added up from the steps: deletes (cascaded ones too), inserts and updates per table."""
    by_table = {}
    deleted = inserted = updated = cascaded = 0
    for res in results:
        for table, change in _table_changes(res).items():
            key = "%s.%s" % (res.database, table) if res.database != "main" else table
            entry = by_table.setdefault(key, {"deleted": 0, "inserted": 0, "updated": 0})
            entry["deleted"] += change[0]
            entry["inserted"] += change[1]
            entry["updated"] += change[2]
            deleted += change[0]
            inserted += change[1]
            updated += change[2]
        if not res.skipped_reason:
            cascaded += sum((res.details or {}).get("cascaded", {}).values())
    return {"rows": deleted + inserted + updated, "deleted": deleted, "inserted": inserted, "updated": updated,
            "cascaded": cascaded, "by_table": by_table,
            "steps_run": sum(1 for r in results if not r.skipped_reason),
            "steps_skipped": sum(1 for r in results if r.skipped_reason)}


# -- rows deleted by FK cascades ------------------------------------------------------------------
def _cascade_map(conn, existing=None):
    """``{parent: {child: [(column, parent column), ...]}}`` of the ON DELETE CASCADE keys of this database."""
    out = {}
    with conn.cursor() as cur:
        cur.execute(
            "SELECT k.TABLE_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME"
            " FROM information_schema.REFERENTIAL_CONSTRAINTS r JOIN information_schema.KEY_COLUMN_USAGE k"
            " ON k.CONSTRAINT_SCHEMA = r.CONSTRAINT_SCHEMA AND k.CONSTRAINT_NAME = r.CONSTRAINT_NAME"
            " AND k.TABLE_NAME = r.TABLE_NAME"
            " WHERE r.CONSTRAINT_SCHEMA = DATABASE() AND r.DELETE_RULE = 'CASCADE'"
            " AND k.REFERENCED_TABLE_NAME IS NOT NULL ORDER BY k.TABLE_NAME, k.COLUMN_NAME")
        for child, column, parent, parent_column in cur.fetchall():
            if child == parent or (existing is not None and (child not in existing or parent not in existing)):
                continue
            out.setdefault(parent, {}).setdefault(child, []).append((column, parent_column))
    return out


def _explicit_deletes(results):
    out = {}
    for res in results or []:
        if isinstance(res, StepResult):
            for table, change in _table_changes(res).items():
                out[table] = out.get(table, 0) + change[0]
    return out


def _children_of(cascades, parents):
    return sorted(set(child for parent in parents for child in cascades.get(parent, {})))


def _count_rows(conn, tables):
    out = {}
    if not tables:
        return out
    with conn.cursor() as cur:
        for table in tables:
            cur.execute("SELECT COUNT(*) FROM `%s`" % table)
            out[table] = int(cur.fetchone()[0])
    return out


def _measured_cascades(conn, children, before, explicit):
    """Real run: rows the children lost during the step beyond the step's own deletes."""
    if not children:
        return {}
    after = _count_rows(conn, children)
    out = {}
    for table in children:
        gone = before[table] - after[table] - explicit.get(table, 0)
        if gone > 0:
            out[table] = gone
    return out


def _predict_cascades(conn, sim, marks, cascades, explicit):
    """Check mode: rows the children would lose through this step beyond the step's own deletes.

    The plan records each delete as a predicate in the :class:`Simulation`.  A child row goes when its parent
    matches one of this step's predicates, or the row itself matches one, and no earlier step removed it; what the
    step's own results count is subtracted, as the real run subtracts it from the measured row counts.
    """
    by_child = {}
    for parent, children in cascades.items():
        preds = sim.gone.get(parent, [])
        start = marks.get(parent, 0)
        new = preds[start:]
        if not new:
            continue
        new_sql = " OR ".join("(%s)" % p for p, a in new)
        new_args = [arg for p, a in new for arg in a]
        old_sql = "".join(" AND NOT (%s)" % p for p, a in preds[:start])
        old_args = [arg for p, a in preds[:start] for arg in a]
        for child, columns in children.items():
            conds, args = by_child.setdefault(child, ([], []))
            for column, parent_column in columns:
                conds.append("%s.%s IN (SELECT %s.%s FROM %s WHERE (%s)%s)" % (
                    child, column, parent, parent_column, parent, new_sql, old_sql))
                args += new_args + old_args
    out = {}
    for child, (conds, args) in sorted(by_child.items()):
        preds = sim.gone.get(child, [])
        start = marks.get(child, 0)
        own = preds[start:]
        conds = conds + ["(%s)" % p for p, a in own]
        args = args + [arg for p, a in own for arg in a]
        sql = "SELECT COUNT(*) FROM %s WHERE (%s)%s" % (
            child, " OR ".join(conds), "".join(" AND NOT (%s)" % p for p, a in preds[:start]))
        args += [arg for p, a in preds[:start] for arg in a]
        with conn.cursor() as cur:
            cur.execute(sql, tuple(args))
            gone = int(cur.fetchone()[0]) - explicit.get(child, 0)
        if gone > 0:
            out[child] = gone
    return out


def run_maintenance(settings, server_values=None, **options):
    """Run one maintenance; see :class:`MaintenanceRun` for the options."""
    return MaintenanceRun(settings, server_values, **options).run()


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
        extra_options=dict((key, get(key)) for key in COMPACT_OPTIONS + PARTITION_OPTIONS + MOVE_OPTIONS),
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
