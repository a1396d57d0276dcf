# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PURGE: the 26 purge rows of pandora_db.pl, in upstream order.

* :data:`THRESHOLDS` lists every threshold the maintenance reads, with its
  ``tconfig`` token and upstream's default; :func:`resolve_thresholds` turns
  options and tokens into values once, before any step runs, and fails with
  the key's name on a negative or non-numeric value.
* :class:`Step` is the interface of every step (``plan(ctx)`` / ``run(ctx)``,
  both returning :class:`StepResult` lists); both call the same ``work``
  method, so check mode counts with exactly the predicates the real run
  deletes with.
* The simple "rows older than N days" purges are :class:`PurgeRule` rows
  (table, column, column kind, threshold, walk); the others are small classes.
* :func:`purge_steps` returns the steps in upstream order.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import subprocess
import time

from ansible_collections.pandorafms.server.plugins.module_utils._agents import (
    MARKED, MARKED_KEY, MODULE_CHILDREN, AgentDeleter, sim_agents_deleted, sim_modules_deleted,
    sim_report_contents_deleted)
from ansible_collections.pandorafms.server.plugins.module_utils._batch import (
    BatchExecutor, agent_gone_sql, module_gone_sql, simulation)
from ansible_collections.pandorafms.server.plugins.module_utils._context import DAY, StepResult
from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConfigError
from ansible_collections.pandorafms.server.plugins.module_utils._partitions import purge_partitioned
from ansible_collections.pandorafms.server.plugins.module_utils._tconfig import parse_number

TEN_YEARS = 10 * 365 * DAY


# -- thresholds -----------------------------------------------------------------------------
class ThresholdSpec(object):
    """One threshold: option name, tconfig token, upstream default, smallest valid value."""

    def __init__(self, key, token=None, default=None, minimum=0, database="main", unit="days", flag=False,
                 group="purge"):
        self.key = key
        self.token = token or key
        self.default = default
        self.minimum = minimum
        self.database = database
        self.unit = unit
        self.flag = flag
        self.group = group


THRESHOLDS = (
    ThresholdSpec("days_purge"),
    ThresholdSpec("string_purge", default=7),
    ThresholdSpec("event_purge", default=10),
    ThresholdSpec("audit_purge", default=7),
    ThresholdSpec("trap_purge", default=7),
    ThresholdSpec("gis_purge", default=15),
    ThresholdSpec("inventory_purge"),
    ThresholdSpec("delete_disabled_agents"),
    ThresholdSpec("days_autodisable_deletion"),
    ThresholdSpec("session_timeout", minimum=-1, unit="minutes"),
    ThresholdSpec("delete_old_messages"),
    ThresholdSpec("num_past_special_days"),
    ThresholdSpec("netflow_max_lifetime"),
    ThresholdSpec("sflow_max_lifetime"),
    ThresholdSpec("days_delete_unknown", group="checkdb"),
    ThresholdSpec("days_delete_not_initialized", group="checkdb"),
    ThresholdSpec("delete_notinit", flag=True, unit=None, group="checkdb"),
    ThresholdSpec("history_days_purge", token="days_purge", database="history", group="history_purge"),
    ThresholdSpec("history_string_purge", token="string_purge", default=7, database="history",
                  group="history_purge"),
    ThresholdSpec("history_event_purge", token="event_purge", database="history", group="history_purge"),
    ThresholdSpec("history_trap_purge", token="trap_history_purge", database="history", group="history_purge"),
)
THRESHOLD_KEYS = tuple(spec.key for spec in THRESHOLDS)


class Threshold(object):
    """A resolved threshold: ``value`` (None = unset) and where it came from."""

    def __init__(self, spec, value, source):
        self.spec = spec
        self.key = spec.key
        self.value = value
        self.source = source

    @property
    def active(self):
        """Upstream's rule: unset or 0 means "skip this step"."""
        return bool(self.value)

    def as_dict(self, **extra):
        out = {"key": self.spec.token if self.spec.database == "main" else "history:" + self.spec.token,
               "value": self.value, "unit": self.spec.unit, "source": self.source}
        out.update(extra)
        return out

    def skip_reason(self):
        if self.value is None:
            return "%s is not defined" % self.spec.token
        return "%s is 0" % self.spec.token


def _flag_value(raw):
    return str(raw).strip() == "1"


def resolve_threshold(spec, tconfig, options):
    """Resolve one threshold from the option (wins) or the tconfig token; ConfigError names the key."""
    option = options.get(spec.key)
    if option is not None:
        if spec.flag:
            return Threshold(spec, bool(option), "option")
        value = parse_number(option, "option %s" % spec.key, minimum=spec.minimum)
        return Threshold(spec, value, "option")
    raw = tconfig.get(spec.token) if tconfig is not None else None
    if raw is None or str(raw).strip() == "":
        if spec.default is None:
            return Threshold(spec, None if not spec.flag else False, "unset")
        return Threshold(spec, spec.default, "default")
    if spec.flag:
        return Threshold(spec, _flag_value(raw), "tconfig")
    where = "tconfig token %s%s" % (spec.token, " of the history database" if spec.database == "history" else "")
    value = parse_number(raw, where, minimum=spec.minimum)
    return Threshold(spec, value, "tconfig")


def resolve_thresholds(tconfig, options, groups, history_tconfig=None):
    """All thresholds of the selected step groups, validated before anything runs."""
    out = {}
    for spec in THRESHOLDS:
        if spec.group not in groups:
            continue
        source = history_tconfig if spec.database == "history" else tconfig
        if spec.database == "history" and history_tconfig is None:
            continue
        out[spec.key] = resolve_threshold(spec, source, options)
    return out


def resolve_batch_size(tconfig, option):
    """``batch_size``: the option, else ``small_operation_step_datos_purge``, else 1000."""
    if option is not None:
        return parse_number(option, "option batch_size", minimum=1)
    value = tconfig.get_number("small_operation_step_datos_purge", None, minimum=0)
    return value if value else 1000


# -- the step interface ---------------------------------------------------------------------
class Step(object):
    """Base of every maintenance step: ``plan`` and ``run`` share ``work``."""

    name = None
    group = "purge"
    source = "PURGE"
    table = None
    database = "main"
    message = None

    def plan(self, ctx):
        return self.work(ctx, True)

    def run(self, ctx):
        return self.work(ctx, False)

    def work(self, ctx, check):  # pragma: no cover - abstract
        raise NotImplementedError

    # helpers
    def conn(self, ctx):
        return ctx.history_conn if self.database == "history" else ctx.conn

    def has_table(self, ctx, table):
        tables = ctx.history_tables if self.database == "history" else ctx.tables
        return tables is None or table in tables

    def executor(self, ctx):
        return BatchExecutor(ctx, self.conn(ctx), self.source)

    def result(self, rows=0, started=None, threshold=None, details=None, table=None, name=None, skipped=None):
        return StepResult(name or self.name, table or self.table, rows=rows,
                          seconds=(time.time() - started) if started else 0.0, threshold=threshold,
                          skipped_reason=skipped, database=self.database, details=details)

    def skipped(self, ctx, reason, table=None, name=None, threshold=None, log=True):
        if log:
            text = (self.message or name or self.name).replace("{days}", "N").rstrip(".")
            ctx.log(self.source, "%s. Skipped: %s." % (text, reason))
        return self.result(table=table, name=name, skipped=reason, threshold=threshold)

    def missing_table(self, ctx, table, why=""):
        note = "table %s does not exist in this schema%s" % (table, why)
        ctx.note("%s: %s, skipped" % (self.name, note))
        return self.skipped(ctx, note, table=table)

    def threshold(self, ctx, key):
        return ctx.thresholds[key]

    def log_done(self, ctx, check, rows, what="rows", table=None):
        if check:
            ctx.log(self.source, "  check mode: %d %s of %s would be deleted" % (rows, what, table or self.table))


def epoch_cutoff(ctx, value, unit="days"):
    seconds = value * (60 if unit == "minutes" else DAY if unit == "days" else 1)
    return ctx.now - seconds


def db_datetime(ex, epoch):
    """The database's DATETIME for ``epoch`` in the session time zone (how Pandora writes these columns)."""
    return ex.scalar("SELECT FROM_UNIXTIME(%s)", (max(0, int(epoch)),))


# -- "older than N days" rules --------------------------------------------------------------------
class PurgeRule(Step):
    """Delete rows of ``table`` whose ``column`` is older than a threshold.

    ``kind``: ``epoch`` (integer seconds) or ``datetime`` (DATETIME/TIMESTAMP
    in the session time zone).  ``walk``: ``index`` when ``column`` has an
    index, else ``pk`` (primary-key ranges).  ``seconds``: a fixed age instead
    of a threshold key.
    """

    def __init__(self, name, table, column, kind, key, message, walk="index", pk=None, database="main",
                 seconds=None, optional_note="", progress=False, group="purge"):
        self.name = name
        self.table = table
        self.column = column
        self.kind = kind
        self.key = key
        self.message = message
        self.walk = walk
        self.pk = pk
        self.database = database
        self.seconds = seconds
        self.optional_note = optional_note
        self.progress = progress
        self.group = group

    def describe(self):
        return {"name": self.name, "table": self.table, "column": self.column, "kind": self.kind,
                "key": self.key, "walk": self.walk, "pk": self.pk, "database": self.database}

    def work(self, ctx, check):
        started = time.time()
        threshold = None
        if self.seconds is not None:
            cutoff = ctx.now - self.seconds
            thr = {"key": None, "value": self.seconds // 3600, "unit": "hours", "source": "fixed", "cutoff": cutoff}
            message = self.message
        else:
            threshold = self.threshold(ctx, self.key)
            if not threshold.active:
                return [self.skipped(ctx, threshold.skip_reason(), threshold=threshold.as_dict())]
            cutoff = epoch_cutoff(ctx, threshold.value)
            thr = threshold.as_dict(cutoff=cutoff)
            message = self.message.replace("{days}", str(threshold.value))
        if not self.has_table(ctx, self.table):
            return [self.missing_table(ctx, self.table, self.optional_note)]
        ex = self.executor(ctx)
        ctx.log(self.source, message)
        if cutoff <= 0:
            return [self.result(0, started, thr, table=self.table)]
        bound = cutoff if self.kind == "epoch" else db_datetime(ex, cutoff)
        purged = getattr(ctx, "purged_before", None)
        if purged is not None:
            # Later steps (compaction) may rely on it: in check mode these rows are still there.
            purged[(self.database, self.table)] = cutoff
        partitioned = purge_partitioned(self, ctx, ex, check, cutoff, thr, started)
        if partitioned is not None:  # a partitioned table: drop whole partitions (see _partitions.py)
            return [partitioned]
        predicate = "%s.%s < %%s" % (self.table, self.column)
        if check:
            rows = ex.count(self.table, predicate, (bound,))
            sim = simulation(ctx)
            if sim is not None:
                sim.add_gone(self.table, predicate, (bound,))
            self.log_done(ctx, check, rows)
            return [self.result(rows, started, thr)]
        label = message.rstrip(".") + "." if self.progress else None
        if self.walk == "index":
            rows = ex.delete_index_range(self.table, self.column, bound, label=label)
        else:
            rows = ex.delete_pk_walk(self.table, self.pk, predicate, (bound,), label=label)
        return [self.result(rows, started, thr, details=ex.accounting())]


class PredicatePurge(Step):
    """Delete rows matching a predicate built at run time, in primary-key ranges."""

    def __init__(self, name, table, pk, message, predicate, key=None, optional_note="", enterprise=False):
        self.name = name
        self.table = table
        self.pk = pk
        self.message = message
        self.predicate = predicate  # function(step, ctx, ex, threshold) -> (sql, args, threshold_dict) or str reason
        self.key = key
        self.optional_note = optional_note
        self.enterprise = enterprise

    def work(self, ctx, check):
        started = time.time()
        threshold = None
        message = self.message
        if self.key:
            threshold = self.threshold(ctx, self.key)
            if not threshold.active:
                return [self.skipped(ctx, threshold.skip_reason(), threshold=threshold.as_dict())]
            message = message.replace("{days}", str(threshold.value))
        if not self.has_table(ctx, self.table):
            return [self.missing_table(ctx, self.table, self.optional_note)]
        ex = self.executor(ctx)
        ctx.log(self.source, message)
        sql, args, thr = self.predicate(self, ctx, ex, threshold)
        return [self.delete_matching(ctx, ex, check, sql, args, started, thr)]

    def delete_matching(self, ctx, ex, check, sql, args, started, thr, table=None, pk=None, name=None):
        table = table or self.table
        if check:
            rows = ex.count(table, sql, args)
            sim = simulation(ctx)
            if sim is not None:
                sim.add_gone(table, sql, args)
            self.log_done(ctx, check, rows, table=table)
            return self.result(rows, started, thr, table=table, name=name)
        rows = ex.delete_pk_walk(table, pk or self.pk, sql, args)
        return self.result(rows, started, thr, details=ex.accounting(), table=table, name=name)


def _orphan_sessions(step, ctx, ex, threshold):
    return ("NOT EXISTS (SELECT 1 FROM tsesion s_x WHERE s_x.id_sesion = tsesion_extended.id_sesion)", (), None)


def _special_days(step, ctx, ex, threshold):
    limit = ex.scalar("SELECT DATE_SUB(DATE(FROM_UNIXTIME(%s)), INTERVAL %s DAY)", (ctx.now, threshold.value))
    return ("talert_special_days.`date` < %s AND talert_special_days.`date` > '0001-01-01'", (limit,),
            threshold.as_dict(cutoff=str(limit)))


def _orphan_graph_sources(step, ctx, ex, threshold):
    return ("NOT EXISTS (SELECT 1 FROM tgraph g_x WHERE g_x.id_graph = tgraph_source.id_graph)", (), None)


def _old_messages(step, ctx, ex, threshold):
    cutoff = epoch_cutoff(ctx, threshold.value)
    return ("tmensajes.`timestamp` < %s", (cutoff,), threshold.as_dict(cutoff=cutoff))


def _expired_cache(step, ctx, ex, threshold):
    return ("UNIX_TIMESTAMP(tvisual_console_elements_cache.created_at) + tvisual_console_elements_cache.expiration"
            " < %s", (ctx.now,), {"key": None, "value": None, "unit": "seconds", "source": "expiration column",
                                  "cutoff": ctx.now})


# -- steps with their own logic ----------------------------------------------------------------
class AgentPurge(Step):
    """Rows 3 and 18: delete disabled (or autodisabled) agents not seen for N days."""

    def __init__(self, name, key, autodisabled, message):
        self.name = name
        self.key = key
        self.autodisabled = autodisabled
        self.message = message
        self.table = "tagente"

    def predicate(self, qualifier):
        mode = "%s.modo = 2" % qualifier if self.autodisabled else "%s.modo <> 2" % qualifier
        return "%s.disabled = 1 AND %s AND %s.ultimo_contacto < %%s" % (qualifier, mode, qualifier)

    def plan_children(self, ctx, ex, agents_sub, args):
        """Check mode: the rows deleting these agents would delete, per table (as the real run counts them)."""
        modules = "SELECT md_y.id_agente_modulo FROM tagente_modulo md_y WHERE md_y.id_agente IN (%s)" % agents_sub
        out = {}
        for table, column in MODULE_CHILDREN:
            if self.has_table(ctx, table):
                out[table] = ex.count(table, "%s.%s IN (%s)" % (table, column, modules), args)
        for table in ("tpolicy_agents", "taddress_agent"):
            if self.has_table(ctx, table):
                out[table] = ex.count(table, "%s.id_agent IN (%s)" % (table, agents_sub), args)
        return out

    def work(self, ctx, check):
        started = time.time()
        threshold = self.threshold(ctx, self.key)
        if not threshold.active:
            return [self.skipped(ctx, threshold.skip_reason(), threshold=threshold.as_dict())]
        ex = self.executor(ctx)
        cutoff = epoch_cutoff(ctx, threshold.value)
        thr = threshold.as_dict(cutoff=cutoff)
        ctx.log(self.source, self.message.replace("{days}", str(threshold.value)))
        bound = db_datetime(ex, cutoff)
        deleter = AgentDeleter(ctx, ex, ctx.incomingdir)
        if check:
            rows = ex.count("tagente", self.predicate("tagente"), (bound,))
            sub = "SELECT ad_x.id_agente FROM tagente ad_x WHERE " + self.predicate("ad_x")
            sim = simulation(ctx)
            names = []
            files = 0
            modules = 0
            if rows:
                for agent_id, name in ex.query("SELECT id_agente, nombre FROM tagente WHERE %s ORDER BY id_agente"
                                               " LIMIT 1000" % self.predicate("tagente"), (bound,), "tagente"):
                    names.append(name)
                    files += len(deleter.existing_files(name))
                modules = ex.count("tagente_modulo", "tagente_modulo.id_agente IN (%s) AND NOT (%s)" % (
                    sub, MARKED.replace("{t}", "tagente_modulo")), (bound,))
            by_table = self.plan_children(ctx, ex, sub, (bound,)) if rows else {}
            by_table["tagente"] = rows
            by_table[MARKED_KEY] = modules
            if sim is not None:
                sim_agents_deleted(ctx, sub, (bound,))
            self.log_done(ctx, check, rows, "agents")
            return [self.result(rows, started, thr, details={
                "agents": names[:100], "rows_by_table": by_table, "files_to_remove": files})]
        rows = 0
        while True:
            batch = ex.query("SELECT id_agente, nombre FROM tagente WHERE %s ORDER BY id_agente LIMIT %d"
                             % (self.predicate("tagente"), ex.batch_size), (bound,), "tagente")
            for agent_id, name in batch:
                ctx.check_time()
                ctx.log(self.source, "Deleting agent %s (id %s)." % (name, agent_id))
                rows += deleter.delete(agent_id, name)
            if len(batch) < ex.batch_size:
                break
            ex.between_batches()
        details = deleter.details()
        details.update(ex.accounting())
        return [self.result(rows, started, thr, details=details)]


class AutodisabledAgentPurge(AgentPurge):
    """Row 18, followed by a second pass of rows 14, 15 and 17 when it deleted agents.

    Upstream deletes autodisabled agents after the pending modules were
    removed, so their modules (and the report items pointing at them) waited
    for the next run.  The second pass finishes the job in the same run, so a
    run leaves nothing for the next one.
    """

    def work(self, ctx, check):
        results = AgentPurge.work(self, ctx, check)
        if results[0].rows and not results[0].skipped_reason:
            ctx.log(self.source, "Removing the modules of the agents just deleted (second pass).")
            for step in (PendingModulesData(), PendingModules(), ReportCleanup()):
                for res in step.work(ctx, check):
                    res.details = dict(res.details or {}, second_pass=True)
                    res.name = res.name + "_second_pass"
                    results.append(res)
        return results


class PhpSessions(Step):
    """Row 6: console sessions idle longer than ``session_timeout`` minutes, then cron sessions."""

    name = "php_sessions"
    table = "tsessions_php"
    message = "Deleting old session data from tsessions_php"
    cookie_file = "/tmp/cron-session-cookies"

    def work(self, ctx, check):
        started = time.time()
        days = self.threshold(ctx, "days_purge")
        if not days.active:
            return [self.skipped(ctx, "%s (upstream runs the session purge only when days_purge is set)"
                                 % days.skip_reason(), threshold=days.as_dict())]
        timeout = self.threshold(ctx, "session_timeout")
        if timeout.value is None:
            return [self.skipped(ctx, "session_timeout is not defined", threshold=timeout.as_dict())]
        if timeout.value == 0:
            seconds = 90 * 60
        elif timeout.value == -1:
            seconds = TEN_YEARS
        else:
            seconds = timeout.value * 60
        if not self.has_table(ctx, self.table):
            return [self.missing_table(ctx, self.table)]
        cutoff = ctx.now - seconds
        thr = timeout.as_dict(cutoff=cutoff, seconds=seconds)
        ex = self.executor(ctx)
        ctx.log(self.source, self.message)
        idle = "tsessions_php.last_active < %s"
        cron = "(tsessions_php.data IS NULL OR tsessions_php.id_session LIKE 'cron-%%')"
        sim = simulation(ctx)
        if check:
            rows = ex.count(self.table, idle, (cutoff,))
            if sim is not None:
                sim.add_gone(self.table, idle, (cutoff,))
            rows += ex.count(self.table, cron)
            if sim is not None:
                sim.add_gone(self.table, cron)
            cookie = os.path.exists(self.cookie_file)
            self.log_done(ctx, check, rows)
            return [self.result(rows, started, thr, details={"cookie_file_to_remove": cookie})]
        rows = ex.delete_pk_walk(self.table, "id_session", idle, (cutoff,))
        rows += ex.delete_pk_walk(self.table, "id_session", cron)
        details = ex.accounting()
        try:
            os.unlink(self.cookie_file)
            details["cookie_file_removed"] = True
        except OSError:
            details["cookie_file_removed"] = False
        return [self.result(rows, started, thr, details=details)]


class PlannedDowntimes(PredicatePurge):
    """Row 7: finished one-time planned downtimes (children cascade)."""

    def __init__(self):
        PredicatePurge.__init__(self, "planned_downtimes", "tplanned_downtime", "id",
                                "Deleting data older than {days} days from tplanned_downtime.", None)

    def work(self, ctx, check):
        started = time.time()
        days = self.threshold(ctx, "days_purge")
        value, source = days.value, days.source
        htconfig = getattr(ctx, "history_tconfig", None)
        if htconfig is not None:
            hdays = htconfig.get_number("days_purge", None, minimum=0)
            if hdays:
                value, source = hdays, "history tconfig"
        if not value:
            return [self.skipped(ctx, days.skip_reason(), threshold=days.as_dict())]
        if not self.has_table(ctx, self.table):
            return [self.missing_table(ctx, self.table)]
        cutoff = epoch_cutoff(ctx, value)
        thr = {"key": "days_purge", "value": value, "unit": "days", "source": source, "cutoff": cutoff}
        ex = self.executor(ctx)
        ctx.log(self.source, self.message.replace("{days}", str(value)))
        sql = "tplanned_downtime.type_execution = 'once' AND tplanned_downtime.date_to < %s"
        return [self.delete_matching(ctx, ex, check, sql, (cutoff,), started, thr)]


class Audit(PredicatePurge):
    """Row 10: audit entries (``tsesion``), then the extended data of the entries just deleted."""

    def __init__(self):
        PredicatePurge.__init__(self, "audit", "tsesion", "id_sesion",
                                "Deleting old audit data (More than {days} days).", None, key="audit_purge")

    def work(self, ctx, check):
        started = time.time()
        threshold = self.threshold(ctx, self.key)
        if not threshold.active:
            return [self.skipped(ctx, threshold.skip_reason(), threshold=threshold.as_dict())]
        if not self.has_table(ctx, self.table):
            return [self.missing_table(ctx, self.table)]
        cutoff = epoch_cutoff(ctx, threshold.value)
        thr = threshold.as_dict(cutoff=cutoff)
        ex = self.executor(ctx)
        ctx.log(self.source, self.message.replace("{days}", str(threshold.value)))
        results = []
        if check and self.has_table(ctx, "tsesion_extended"):
            # Counted before the sessions are marked gone: the extended rows of the sessions this step deletes.
            started_ext = time.time()
            ext = ex.count("tsesion_extended", "EXISTS (SELECT 1 FROM tsesion s_x WHERE s_x.id_sesion ="
                           " tsesion_extended.id_sesion AND s_x.utimestamp < %s)", (cutoff,))
            ext_result = self.result(ext, started_ext, thr, table="tsesion_extended", name="audit_extended")
        results.append(self.delete_matching(ctx, ex, check, "tsesion.utimestamp < %s", (cutoff,), started, thr))
        if self.has_table(ctx, "tsesion_extended"):
            if check:
                results.append(ext_result)
            else:
                started_ext = time.time()
                ex2 = self.executor(ctx)
                rows = ex2.delete_pk_walk("tsesion_extended", "id", _orphan_sessions(self, ctx, ex2, None)[0])
                results.append(self.result(rows, started_ext, thr, details=ex2.accounting(), table="tsesion_extended",
                                           name="audit_extended"))
        return results


class EnterpriseHook(Step):
    """Upstream rows whose code lives in the closed Enterprise module: reported, not reproduced."""

    def __init__(self, name, message, what, key=None):
        self.name = name
        self.message = message
        self.what = what
        self.key = key

    def work(self, ctx, check):
        reason = "Enterprise hook (%s): its implementation is closed source and is not reproduced" % self.what
        thr = None
        if self.key:
            raw = ctx.tconfig.get(self.key)
            thr = {"key": self.key, "value": raw, "unit": "days", "source": "tconfig" if raw is not None else "unset"}
        return [self.skipped(ctx, reason, threshold=thr)]


def pending_subquery(ctx):
    """SQL returning the ids of the modules pending deletion at this point of the run."""
    sim = simulation(ctx)
    if sim is None:
        return "SELECT pm_x.id_agente_modulo FROM tagente_modulo pm_x WHERE pm_x.delete_pending = 1", ()
    pend, pend_args = sim.module_pending("pm_x.id_agente_modulo")
    gone, gone_args = sim.module_deleted("pm_x.id_agente_modulo")
    return ("SELECT pm_x.id_agente_modulo FROM tagente_modulo pm_x WHERE (pm_x.delete_pending = 1 OR %s)"
            " AND NOT %s" % (pend, gone), pend_args + gone_args)


def _pending_ids(ex):
    return [row[0] for row in ex.query("SELECT id_agente_modulo FROM tagente_modulo WHERE delete_pending = 1"
                                       " ORDER BY id_agente_modulo", None, "tagente_modulo")]


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]


class PendingModulesData(Step):
    """Row 14: for modules pending deletion, unlink their child modules and delete their status rows."""

    name = "pending_modules_status"
    table = "tagente_estado"
    message = "Deleting pending delete modules (data table)."

    def work(self, ctx, check):
        started = time.time()
        ex = self.executor(ctx)
        ctx.log(self.source, self.message)
        if check:
            sub, args = pending_subquery(ctx)
            parents = ex.count("tagente_modulo", "tagente_modulo.parent_module_id IN (%s)" % sub, args)
            status_sql = "tagente_estado.id_agente_modulo IN (%s)" % sub
            status = ex.count("tagente_estado", status_sql, args)
            sim = simulation(ctx)
            if sim is not None:
                sim.add_gone("tagente_estado", status_sql, args)
            parent_res = self.result(parents, started, name="pending_modules_parents", table="tagente_modulo",
                                     details={"action": "update parent_module_id = 0"})
            return [self.result(status, started), parent_res]
        parents = status = 0
        for chunk in _chunks(_pending_ids(ex), 500):
            marks = ",".join(["%s"] * len(chunk))
            parents += ex.update_limit_loop("tagente_modulo", "parent_module_id = 0",
                                            "parent_module_id IN (%s)" % marks, chunk)
            status += ex.delete_limit_loop("tagente_estado", "id_agente_modulo IN (%s)" % marks, chunk)
        details = ex.accounting()
        return [self.result(status, started, details=details),
                self.result(parents, started, name="pending_modules_parents", table="tagente_modulo",
                            details={"action": "update parent_module_id = 0"})]


class PendingModules(Step):
    """Row 15: delete the modules pending deletion (and any status row they still have)."""

    name = "pending_modules"
    table = "tagente_modulo"
    message = "Deleting pending delete modules (status, module table)."

    def work(self, ctx, check):
        started = time.time()
        ex = self.executor(ctx)
        ctx.log(self.source, self.message)
        if check:
            sub, args = pending_subquery(ctx)
            status_sql = "tagente_estado.id_agente_modulo IN (%s)" % sub
            status = ex.count("tagente_estado", status_sql, args)
            sim = simulation(ctx)
            if sim is not None:
                sim.add_gone("tagente_estado", status_sql, args)
            modules = ex.count("tagente_modulo", "tagente_modulo.id_agente_modulo IN (%s)" % sub, args)
            sim_modules_deleted(ctx, sub, args)
            return [self.result(modules, started, details={
                "status_rows": status, "rows_by_table": {"tagente_modulo": modules, "tagente_estado": status}})]
        status = modules = 0
        for chunk in _chunks(_pending_ids(ex), 500):
            marks = ",".join(["%s"] * len(chunk))
            status += ex.delete_limit_loop("tagente_estado", "id_agente_modulo IN (%s)" % marks, chunk)
            modules += ex.delete_limit_loop("tagente_modulo", "id_agente_modulo IN (%s) AND delete_pending = 1"
                                            % marks, chunk)
        details = ex.accounting()
        details["status_rows"] = status
        details["rows_by_table"] = {"tagente_modulo": modules, "tagente_estado": status}
        return [self.result(modules, started, details=details)]


REPORT_BLACKLIST = ("SLA_services", "custom_graph", "sql_graph_vbar", "sql_graph_hbar", "sql_graph_pie",
                    "database_serialized", "sql", "inventory", "inventory_changes", "netflow_area", "netflow_data",
                    "netflow_summary", "netflow_top_N")
_BLACKLIST_SQL = ", ".join("'%s'" % item for item in REPORT_BLACKLIST)


class ReportCleanup(PredicatePurge):
    """Row 17: report contents, items and SLA rows pointing at modules or agents that are gone."""

    def __init__(self):
        PredicatePurge.__init__(self, "report_contents", "treport_content", "id_rc",
                                "Deleting report contents of deleted modules and agents.", None)

    def _content_step(self, ctx, ex, check, name, pred):
        """Delete treport_content rows matching ``pred(qualifier) -> (sql, args)``; track cascades in check mode."""
        started = time.time()
        sql, args = pred("treport_content")
        if check:
            rows = ex.count("treport_content", sql, args)
            sub_sql, sub_args = pred("rq_x")
            sim_report_contents_deleted(ctx, "SELECT rq_x.id_rc FROM treport_content rq_x WHERE " + sub_sql, sub_args)
            return self.result(rows, started, table="treport_content", name=name)
        rows = ex.delete_pk_walk("treport_content", "id_rc", sql, args)
        return self.result(rows, started, table="treport_content", name=name)

    def work(self, ctx, check):
        tc = ctx.tconfig
        if str(tc.get("enterprise_installed", "")).strip() == "1" and str(tc.get("metaconsole", "")).strip() == "1":
            return [self.skipped(ctx, "metaconsole: upstream skips the report cleanup there")]
        for table in ("treport_content", "treport_content_item", "treport_content_sla_combined"):
            if not self.has_table(ctx, table):
                return [self.missing_table(ctx, table)]
        ex = self.executor(ctx)
        ctx.log(self.source, "Deleting report contents of deleted modules.")
        results = []

        def by_module(q):
            gone, args = module_gone_sql(ctx, "%s.id_agent_module" % q)
            return ("%s.id_agent_module <> 0 AND %s.type NOT IN (%s) AND %s" % (q, q, _BLACKLIST_SQL, gone), args)

        results.append(self._content_step(ctx, ex, check, "report_contents_modules", by_module))

        started = time.time()
        gone, args = module_gone_sql(ctx, "treport_content_item.id_agent_module")
        sql = ("%s AND treport_content_item.id_report_content NOT IN (SELECT bl_x.id_rc FROM treport_content bl_x"
               " WHERE bl_x.type IN (%s))" % (gone, _BLACKLIST_SQL))
        results.append(self.delete_matching(ctx, ex, check, sql, args, started, None, table="treport_content_item",
                                            pk="id", name="report_items"))
        started = time.time()
        gone, args = module_gone_sql(ctx, "treport_content_sla_combined.id_agent_module")
        sql = ("%s AND treport_content_sla_combined.id_report_content NOT IN (SELECT bl_x.id_rc FROM treport_content"
               " bl_x WHERE bl_x.type = 'SLA_services')" % gone)
        results.append(self.delete_matching(ctx, ex, check, sql, args, started, None,
                                            table="treport_content_sla_combined", pk="id", name="report_sla_items"))

        ctx.log(self.source, "Deleting report contents of deleted agents.")

        def by_agent(q):
            gone, args = agent_gone_sql(ctx, "%s.id_agent" % q)
            return "%s.id_agent <> 0 AND %s" % (q, gone), args

        results.append(self._content_step(ctx, ex, check, "report_contents_agents", by_agent))

        ctx.log(self.source, "Deleting empty exception and SLA report contents.")

        def empty(kind_sql, child):
            def pred(q):
                excl, excl_args = ("", ())
                sim = simulation(ctx)
                if sim is not None:
                    excl, excl_args = sim.exclusions(child)
                return ("%s.type %s AND NOT EXISTS (SELECT 1 FROM %s WHERE %s.id_report_content = %s.id_rc%s)"
                        % (q, kind_sql, child, child, q, excl), excl_args)
            return pred

        results.append(self._content_step(ctx, ex, check, "report_contents_empty_exception",
                                          empty("= 'exception'", "treport_content_item")))
        results.append(self._content_step(ctx, ex, check, "report_contents_empty_sla",
                                          empty("IN ('SLA', 'SLA_monthly', 'SLA_services')",
                                                "treport_content_sla_combined")))
        for res in results:
            self.log_done(ctx, check, res.rows, table=res.table)
        return results


class FilePurge(Step):
    """Rows 19 and 20: netflow / sflow capture files, expired with ``nfexpire``.

    Upstream never loaded the ``sflow_*`` tokens, so its sflow purge could not
    run; here both read their tokens.  These steps change files, not rows:
    they do not count towards ``changed``.
    """

    def __init__(self, name, key, binary_token, path_token, message, commands):
        self.name = name
        self.key = key
        self.binary_token = binary_token
        self.path_token = path_token
        self.message = message
        self.commands = commands
        self.table = None

    def work(self, ctx, check):
        started = time.time()
        threshold = self.threshold(ctx, self.key)
        if not threshold.active:
            return [self.skipped(ctx, threshold.skip_reason(), threshold=threshold.as_dict())]
        binary = ctx.tconfig.get(self.binary_token)
        path = ctx.tconfig.get(self.path_token)
        thr = threshold.as_dict()
        if not path or not os.path.isdir(path):
            return [self.skipped(ctx, "%s (%s) is not a directory" % (self.path_token, path), threshold=thr)]
        if not binary or not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            return [self.skipped(ctx, "%s (%s) is not an executable file" % (self.binary_token, binary), threshold=thr)]
        commands = self.commands(binary, path, threshold.value)
        ctx.log(self.source, self.message)
        if check:
            return [self.result(0, started, thr, details={"commands": commands, "ran": False})]
        outputs = []
        for command in commands:
            try:
                proc = subprocess.run(command, input=b"y\n" * 1000, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      timeout=3600, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                message = "%s: %s failed: %s" % (self.name, command[0], exc)
                ctx.warn(message)
                outputs.append({"command": command, "error": str(exc)})
                continue
            text = proc.stdout.decode("utf-8", "replace")[-2000:]
            outputs.append({"command": command, "rc": proc.returncode, "output": text})
            if proc.returncode != 0:
                ctx.warn("%s: %s exited with %s: %s" % (
                    self.name, " ".join(command), proc.returncode, text.strip()[-300:]))
        return [self.result(0, started, thr, details={"commands": commands, "ran": True, "outputs": outputs})]


def _netflow_commands(binary, path, days):
    return [[binary, "-u", path, "-t", "%dd" % days, "-w", "100"], [binary, "-r", path], [binary, "-e", path]]


def _sflow_commands(binary, path, days):
    return [[binary, "-r", path, "-t", "%dd" % days]]


# -- the purge, in upstream order --------------------------------------------------------------
def purge_steps():
    """The PURGE steps in pandora_db.pl's order (reference section 5, rows 1-26)."""
    return [
        PredicatePurge("extended_sessions", "tsesion_extended", "id",
                       "Deleting extended session data of deleted audit entries.", _orphan_sessions,
                       optional_note=" (Enterprise)"),
        PurgeRule("inventory", "tagente_datos_inventory", "utimestamp", "epoch", "inventory_purge",
                  "Deleting old inventory data.", optional_note=" (Enterprise)"),
        AgentPurge("disabled_agents", "delete_disabled_agents", False,
                   "Deleting old disabled agents (More than {days} days)."),
        PurgeRule("module_data", "tagente_datos", "utimestamp", "epoch", "days_purge",
                  "Deleting old data from tagente_datos.", progress=True),
        PurgeRule("export_data", "tserver_export_data", "`timestamp`", "datetime", "days_purge",
                  "Deleting old export data from tserver_export_data", walk="pk", pk="id"),
        PhpSessions(),
        PlannedDowntimes(),
        PurgeRule("string_data", "tagente_datos_string", "utimestamp", "epoch", "string_purge",
                  "Deleting old data from tagente_datos_string.", progress=True),
        PurgeRule("events", "tevento", "utimestamp", "epoch", "event_purge",
                  "Deleting old event data from tevento (More than {days} days).", progress=True),
        Audit(),
        PurgeRule("traps", "ttrap", "`timestamp`", "datetime", "trap_purge",
                  "Deleting old SNMP traps (More than {days} days)."),
        EnterpriseHook("enterprise_cleanup", "Policy, policy queue and service element cleanup.",
                       "policy group cleanup, policy queue purge, service elements purge"),
        PurgeRule("gis_data", "tgis_data_history", "end_timestamp", "datetime", "gis_purge",
                  "Deleting old GIS data (More than {days} days)."),
        PendingModulesData(),
        PendingModules(),
        PurgeRule("agent_access", "tagent_access", "utimestamp", "epoch", None,
                  "Deleting old access data (More than 24hr)", seconds=DAY,
                  optional_note=" (dropped in MR 67; present up to 7.0NG.773)"),
        ReportCleanup(),
        AutodisabledAgentPurge("autodisabled_agents", "days_autodisable_deletion", True,
                               "Delete autodisabled agents where last contact is bigger than {days} days."),
        FilePurge("netflow", "netflow_max_lifetime", "netflow_nfexpire", "netflow_path", "Deleting old netflow data.",
                  _netflow_commands),
        FilePurge("sflow", "sflow_max_lifetime", "sflow_nfexpire", "sflow_path", "Deleting old sflow data.",
                  _sflow_commands),
        EnterpriseHook("log_data", "Deleting old log data.", "log storage purge", key="Days_purge_old_information"),
        EnterpriseHook("ncm_data", "Deleting old network configuration manager data.", "NCM purge"),
        PredicatePurge("special_days", "talert_special_days", "id", "Deleting old special days.", _special_days,
                       key="num_past_special_days"),
        PredicatePurge("graph_sources", "tgraph_source", "id_gs", "Deleting old tgraph_source data.",
                       _orphan_graph_sources),
        PredicatePurge("messages", "tmensajes", "id_mensaje", "Deleting old messages.", _old_messages,
                       key="delete_old_messages"),
        PredicatePurge("console_cache", "tvisual_console_elements_cache", "id", "Deleting old cache data.",
                       _expired_cache),
    ]


def check_rule_table(steps=None):
    """Sanity of the step list (used by the unit tests): unique names, known groups."""
    names = [step.name for step in (steps or purge_steps())]
    duplicates = sorted(set(n for n in names if names.count(n) > 1))
    if duplicates:
        raise ConfigError("duplicate step names: %s" % ", ".join(duplicates))
    return names
