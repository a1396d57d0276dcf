# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""CHECKDB (consistency), INTEGRITY and the forgotten discovery tasks of pandora_db.pl.

Same rules as upstream (reference sections 6, 7 and 1 step 8.8), done in
batches instead of one row at a time with 0.1 s sleeps, and without upstream's
wasted work: no status row is created for a module whose agent is gone or
that is pending deletion (INTEGRITY or the next purge would delete it again).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible_collections.pandorafms.server.plugins.module_utils._agents import sim_modules_deleted
from ansible_collections.pandorafms.server.plugins.module_utils._batch import (
    agent_gone_sql, module_gone_sql, simulation)
from ansible_collections.pandorafms.server.plugins.module_utils._context import DAY
from ansible_collections.pandorafms.server.plugins.module_utils._purge import Step

LOGGED_IDS = 100


def _marks(items):
    return ",".join(["%s"] * len(items))


# -- CHECKDB ----------------------------------------------------------------------------------
class ModuleCleanup(Step):
    """CHECKDB 1-3: delete modules stuck in not-initialised or unknown state.

    Policy modules (``id_policy_module <> 0``) are left alone, as the
    Enterprise hook does; the agents of deleted modules get their module and
    alert counters refreshed (``update_module_count`` / ``update_alert_count``).
    """

    group = "checkdb"
    source = "CHECKDB"
    table = "tagente_modulo"

    def __init__(self, name, message, states, age_key=None, needs_notinit=False, skip_disabled_agent=False,
                 skip_message=None):
        self.name = name
        self.message = message
        self.states = states
        self.age_key = age_key
        self.needs_notinit = needs_notinit
        self.skip_disabled_agent = skip_disabled_agent
        self.skip_message = skip_message

    def candidates(self, ctx, cutoff):
        """``(FROM ... WHERE ... sql, args)`` selecting the modules to delete (alias ``m``)."""
        sql = ("FROM tagente_estado JOIN tagente_modulo m ON m.id_agente_modulo = tagente_estado.id_agente_modulo"
               " WHERE tagente_estado.estado IN (%s) AND m.id_policy_module = 0 AND m.disabled = 0"
               % ",".join(str(s) for s in self.states))
        args = []
        if cutoff is not None:
            sql += " AND tagente_estado.utimestamp < %s"
            args.append(cutoff)
        if self.skip_disabled_agent:
            sql += " AND NOT EXISTS (SELECT 1 FROM tagente ad_x WHERE ad_x.id_agente = m.id_agente AND ad_x.disabled <> 0)"
        sim = simulation(ctx)
        if sim is not None:
            excl, excl_args = sim.exclusions("tagente_estado")
            gone, gone_args = sim.module_deleted("m.id_agente_modulo")
            sql += excl + " AND NOT %s" % gone
            args.extend(excl_args)
            args.extend(gone_args)
        return sql, tuple(args)

    def work(self, ctx, check):
        started = time.time()
        notinit = ctx.thresholds["delete_notinit"]
        thr = None
        cutoff = None
        if self.needs_notinit and not notinit.value:
            ctx.log(self.source, self.skip_message or "Ignoring not-init data.")
            return [self.result(skipped="delete_notinit is not 1", threshold=notinit.as_dict())]
        if self.age_key:
            threshold = ctx.thresholds[self.age_key]
            if not threshold.active:
                return [self.result(skipped=threshold.skip_reason(), threshold=threshold.as_dict())]
            cutoff = ctx.now - threshold.value * DAY
            thr = threshold.as_dict(cutoff=cutoff)
        ex = self.executor(ctx)
        ctx.log(self.source, self.message)
        from_sql, args = self.candidates(ctx, cutoff)
        if check:
            rows = int(ex.scalar("SELECT COUNT(DISTINCT m.id_agente_modulo) " + from_sql, args, "tagente_modulo") or 0)
            sim_modules_deleted(ctx, "SELECT m.id_agente_modulo " + from_sql, args)
            self.log_done(ctx, check, rows, "modules")
            return [self.result(rows, started, thr)]
        rows = agents = 0
        logged = 0
        while True:
            batch = ex.query("SELECT DISTINCT m.id_agente_modulo, m.id_agente %s ORDER BY m.id_agente_modulo LIMIT %d"
                             % (from_sql, ex.batch_size), args, "tagente_modulo")
            if not batch:
                break
            module_ids = [row[0] for row in batch]
            agent_ids = sorted(set(row[1] for row in batch))
            agents += ex.write("UPDATE tagente SET update_module_count = 1, update_alert_count = 1 WHERE id_agente IN"
                               " (%s)" % _marks(agent_ids), agent_ids, "tagente")
            deleted = ex.write("DELETE FROM tagente_modulo WHERE disabled = 0 AND id_agente_modulo IN (%s)"
                               % _marks(module_ids), module_ids, "tagente_modulo")
            ex.write("DELETE FROM talert_template_modules WHERE id_agent_module IN (%s)" % _marks(module_ids),
                     module_ids, "talert_template_modules")
            rows += deleted
            for module_id in module_ids:
                if logged < LOGGED_IDS:
                    ctx.log(self.source, "Deleting module %s." % module_id)
                logged += 1
            if len(batch) < ex.batch_size or not deleted:
                break
            ex.between_batches()
        details = ex.accounting()
        details["agents_counters_refreshed"] = agents
        return [self.result(rows, started, thr, details=details)]


class MissingStatus(Step):
    """CHECKDB 4: a default status row for every module that has none.

    Modules pending deletion and modules whose agent is gone get none (upstream
    created them and INTEGRITY deleted them again in the same run).
    """

    name = "missing_status"
    group = "checkdb"
    source = "CHECKDB"
    table = "tagente_estado"
    message = "Checking database consistency (Missing status)."
    COLUMNS = ("id_agente_modulo, datos, `timestamp`, estado, id_agente, last_try, utimestamp, current_interval,"
               " running_by, last_execution_try")

    def candidates(self, ctx):
        sql = ("FROM tagente_modulo m JOIN tagente a_x ON a_x.id_agente = m.id_agente"
               " WHERE COALESCE(m.delete_pending, 0) <> 1"
               " AND NOT EXISTS (SELECT 1 FROM tagente_estado WHERE tagente_estado.id_agente_modulo = m.id_agente_modulo%s)")
        sim = simulation(ctx)
        if sim is None:
            return sql % "", ()
        excl, excl_args = sim.exclusions("tagente_estado")
        gone, gone_args = sim.module_deleted("m.id_agente_modulo")
        pending, pending_args = sim.module_pending("m.id_agente_modulo")
        agent, agent_args = sim.agent_deleted("m.id_agente")
        return ((sql % excl) + " AND NOT %s AND NOT %s AND NOT %s" % (gone, pending, agent),
                excl_args + gone_args + pending_args + agent_args)

    def work(self, ctx, check):
        started = time.time()
        ex = self.executor(ctx)
        ctx.log(self.source, self.message)
        from_sql, args = self.candidates(ctx)
        if check:
            rows = int(ex.scalar("SELECT COUNT(*) " + from_sql, args, "tagente_modulo") or 0)
            if rows:
                ctx.log(self.source, "  check mode: %d modules would get a status row" % rows)
            return [self.result(rows, started, details={"action": "insert"})]
        rows = 0
        while True:
            batch = [row[0] for row in ex.query("SELECT m.id_agente_modulo %s ORDER BY m.id_agente_modulo LIMIT %d"
                                                % (from_sql, ex.batch_size), args, "tagente_modulo")]
            if not batch:
                break
            inserted = ex.write(
                "INSERT INTO tagente_estado (%s) SELECT m.id_agente_modulo, '0', '1970-01-01 00:00:00', 1, m.id_agente,"
                " '1970-01-01 00:00:00', 0, 0, 0, 0 FROM tagente_modulo m WHERE m.id_agente_modulo IN (%s)"
                " AND NOT EXISTS (SELECT 1 FROM tagente_estado e_x WHERE e_x.id_agente_modulo = m.id_agente_modulo)"
                % (self.COLUMNS, _marks(batch)), batch, "tagente_estado")
            for module_id in batch[:max(0, LOGGED_IDS - rows)]:
                ctx.log(self.source, "Inserting module %s in state table." % module_id)
            rows += inserted
            if len(batch) < ex.batch_size or not inserted:
                break
            ex.between_batches()
        details = ex.accounting()
        details["action"] = "insert"
        return [self.result(rows, started, details=details)]


class MissingModule(Step):
    """CHECKDB 5: status rows of modules that do not exist."""

    name = "missing_module_status"
    group = "checkdb"
    source = "CHECKDB"
    table = "tagente_estado"
    message = "Checking database consistency (Missing module)."

    def work(self, ctx, check):
        started = time.time()
        ex = self.executor(ctx)
        ctx.log(self.source, self.message)
        if check:
            gone, args = module_gone_sql(ctx, "tagente_estado.id_agente_modulo")
            rows = ex.count("tagente_estado", gone, args)
            sim = simulation(ctx)
            if sim is not None:
                sim.add_gone("tagente_estado", gone, args)
            self.log_done(ctx, check, rows)
            return [self.result(rows, started)]
        rows = ex.delete_orphans_by_key("tagente_estado", "id_agente_modulo", "tagente_modulo", "id_agente_modulo")
        if rows:
            ctx.log(self.source, "Deleted %d status rows of non-existing modules." % rows)
        return [self.result(rows, started, details=ex.accounting())]


class EmptyAliases(Step):
    """CHECKDB 6: agents with an empty alias get their name as alias."""

    name = "empty_aliases"
    group = "checkdb"
    source = "CHECKDB"
    table = "tagente"
    message = "Updating empty aliases."
    WHERE = "tagente.alias = '' AND tagente.nombre <> ''"

    def work(self, ctx, check):
        started = time.time()
        ex = self.executor(ctx)
        ctx.log(self.source, self.message)
        if check:
            return [self.result(ex.count("tagente", self.WHERE), started, details={"action": "update"})]
        rows = ex.update_limit_loop("tagente", "alias = nombre", self.WHERE, order_by="id_agente")
        details = ex.accounting()
        details["action"] = "update"
        return [self.result(rows, started, details=details)]


def checkdb_steps():
    return [
        ModuleCleanup("notinit_modules", "Deleting not-init data.", (4,), needs_notinit=True,
                      skip_disabled_agent=True),
        ModuleCleanup("unknown_modules", "Deleting unknown modules.", (3,), age_key="days_delete_unknown"),
        ModuleCleanup("old_notinit_modules", "Deleting old not-init modules.", (4, 5),
                      age_key="days_delete_not_initialized", needs_notinit=True,
                      skip_message="Ignoring old not-init modules (delete_notinit is not 1)."),
        MissingStatus(),
        MissingModule(),
        EmptyAliases(),
    ]


# -- INTEGRITY --------------------------------------------------------------------------------
class GroupStats(Step):
    """INTEGRITY 1: the per-group statistics; the server rebuilds them."""

    name = "group_stats"
    group = "integrity"
    source = "INTEGRITY"
    table = "tgroup_stat"
    message = "Cleaning up group stats."

    def work(self, ctx, check):
        started = time.time()
        ex = self.executor(ctx)
        ctx.log(self.source, self.message)
        if check:
            return [self.result(ex.count(self.table), started)]
        rows = ex.delete_limit_loop(self.table, "1=1", order_by="id_group")
        return [self.result(rows, started, details=ex.accounting())]


class Orphans(Step):
    """INTEGRITY 2-5: rows whose parent (module or agent) does not exist."""

    group = "integrity"
    source = "INTEGRITY"

    def __init__(self, name, table, column, parent, message):
        self.name = name
        self.table = table
        self.column = column
        self.parent = parent  # "module" or "agent"
        self.message = message

    def work(self, ctx, check):
        started = time.time()
        if not self.has_table(ctx, self.table):
            return [self.missing_table(ctx, self.table)]
        ex = self.executor(ctx)
        ctx.log(self.source, self.message)
        gone_fn = module_gone_sql if self.parent == "module" else agent_gone_sql
        if check:
            gone, args = gone_fn(ctx, "%s.%s" % (self.table, self.column))
            rows = ex.count(self.table, gone, args)
            sim = simulation(ctx)
            if self.table == "tagente_modulo":
                sub_gone, sub_args = gone_fn(ctx, "om_x.%s" % self.column)
                sim_modules_deleted(ctx, "SELECT om_x.id_agente_modulo FROM tagente_modulo om_x WHERE " + sub_gone,
                                    sub_args)
            elif sim is not None:
                sim.add_gone(self.table, gone, args)
            self.log_done(ctx, check, rows)
            return [self.result(rows, started)]
        parent_table, parent_column = (("tagente_modulo", "id_agente_modulo") if self.parent == "module"
                                       else ("tagente", "id_agente"))
        rows = ex.delete_orphans_by_key(self.table, self.column, parent_table, parent_column)
        return [self.result(rows, started, details=ex.accounting())]


def integrity_steps():
    return [
        GroupStats(),
        Orphans("orphan_alerts", "talert_template_modules", "id_agent_module", "module", "Deleting orphan alerts."),
        Orphans("orphan_modules", "tagente_modulo", "id_agente", "agent", "Deleting orphan modules."),
        Orphans("orphan_status", "tagente_estado", "id_agente", "agent", "Deleting orphan status rows."),
        Orphans("orphan_inc_data", "tagente_datos_inc", "id_agente_modulo", "module",
                "Deleting orphan incremental data."),
    ]


# -- forgotten discovery tasks ----------------------------------------------------------------
class DiscoveryTasks(Step):
    """Step 8.8: discovery tasks bound to a missing or dead server go to the first live discovery server."""

    name = "discovery_tasks"
    group = "discovery_tasks"
    source = "FORGOTTEN DISCOVERY TASKS"
    table = "trecon_task"
    message = "Reassigning discovery tasks of missing or dead servers."
    WHERE = ("NOT EXISTS (SELECT 1 FROM tserver s_x WHERE s_x.id_server = trecon_task.id_recon_server"
             " AND s_x.status <> -1)")

    def work(self, ctx, check):
        started = time.time()
        for table in ("trecon_task", "tserver"):
            if not self.has_table(ctx, table):
                return [self.missing_table(ctx, table)]
        ex = self.executor(ctx)
        ctx.log(self.source, self.message)
        target = ex.scalar("SELECT id_server FROM tserver WHERE server_type = 3 AND status <> -1"
                           " ORDER BY id_server LIMIT 1", None, "tserver")
        forgotten = ex.count("trecon_task", self.WHERE)
        if target is None:
            if forgotten:
                ctx.warn("%d discovery tasks belong to missing or dead servers, and no live discovery server"
                         " (tserver.server_type 3) can take them" % forgotten)
            return [self.result(skipped="no live discovery server", details={"forgotten_tasks": forgotten})]
        if check or not forgotten:
            return [self.result(forgotten, started, details={"target_server": target, "action": "update"})]
        rows = ex.update_limit_loop("trecon_task", "id_recon_server = %d" % int(target), self.WHERE,
                                    order_by="id_rt", expected=forgotten)
        ctx.log(self.source, "%d discovery tasks moved to server %s." % (rows, target))
        details = ex.accounting()
        details.update({"target_server": target, "action": "update"})
        return [self.result(rows, started, details=details)]
