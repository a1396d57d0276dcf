# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Agent deletion as the Pandora server does it (``pandora_delete_agent`` and
``pandora_delete_module``), with upstream's defects fixed.

For each agent:

1. each of its modules loses its rows in the tables that point at modules
   (graphs, visual consoles, report items, status, alert assignments, events,
   tags) and is marked ``disabled=1, delete_pending=1, nombre='delete_pending'``;
   the purge's "pending delete modules" steps remove the module rows;
2. its policy links go (``tpolicy_agents``, Enterprise schemas);
3. the ``tagente`` row goes (about a dozen child tables cascade);
4. its address links go, selected by ``taddress_agent.id_agent`` (upstream
   deleted by ``id_ag``, the link's own id: an unrelated link went and the
   agent's stayed);
5. ``<incomingdir>/conf/<md5(name)>.conf`` and ``<incomingdir>/md5/<md5(name)>.md5``
   are removed.

The selection of agents to delete uses real days (86400 s; upstream used 8600 s,
which deleted agents about ten times too early).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import hashlib
import os

from ansible_collections.pandorafms.server.plugins.module_utils._batch import simulation

# (table, column holding an id_agente_modulo) cleaned for each deleted module, in upstream's order.
MODULE_CHILDREN = (
    ("tgraph_source", "id_agent_module"),
    ("tlayout_data", "id_agente_modulo"),
    ("treport_content", "id_agent_module"),
    ("tagente_estado", "id_agente_modulo"),
    ("talert_template_modules", "id_agent_module"),
    ("tevento", "id_agentmodule"),
    ("ttag_module", "id_agente_modulo"),
)
MODULE_CHUNK = 500
MARKED_KEY = "tagente_modulo (marked delete_pending)"
MARKED = "{t}.disabled = 1 AND {t}.delete_pending <=> 1 AND {t}.nombre <=> 'delete_pending'"
DEFAULT_INCOMINGDIR = "/var/spool/pandora/data_in"


def agent_files(incomingdir, name):
    """The two files the server keeps per agent under ``incomingdir``."""
    digest = hashlib.md5((name or "").encode("utf-8")).hexdigest()
    return [os.path.join(incomingdir, "conf", digest + ".conf"), os.path.join(incomingdir, "md5", digest + ".md5")]


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _placeholders(items):
    return ",".join(["%s"] * len(items))


def sim_modules_deleted(ctx, subquery, args=()):
    """Check mode: record that the modules returned by ``subquery`` are deleted (with FK cascades)."""
    sim = simulation(ctx)
    if sim is None:
        return
    args = tuple(args)
    sim.modules.append((subquery, args))
    sim.add_gone("tagente_modulo", "tagente_modulo.id_agente_modulo IN (%s)" % subquery, args)
    sim.add_gone("talert_template_modules", "talert_template_modules.id_agent_module IN (%s)" % subquery, args)


def sim_report_contents_deleted(ctx, subquery, args=()):
    """Check mode: record that the report contents whose ``id_rc`` ``subquery`` returns are deleted."""
    sim = simulation(ctx)
    if sim is None:
        return
    args = tuple(args)
    sim.add_gone("treport_content", "treport_content.id_rc IN (%s)" % subquery, args)
    for child in ("treport_content_item", "treport_content_sla_combined"):
        sim.add_gone(child, "%s.id_report_content IN (%s)" % (child, subquery), args)


def sim_agents_deleted(ctx, agents_subquery, args=()):
    """Check mode: record everything deleting these agents does (see module docstring)."""
    sim = simulation(ctx)
    if sim is None:
        return
    args = tuple(args)
    modules = "SELECT md_x.id_agente_modulo FROM tagente_modulo md_x WHERE md_x.id_agente IN (%s)" % agents_subquery
    sim.agents.append((agents_subquery, args))
    sim.pending.append((modules, args))
    sim.add_gone("tagente", "tagente.id_agente IN (%s)" % agents_subquery, args)
    sim.add_gone("taddress_agent", "taddress_agent.id_agent IN (%s)" % agents_subquery, args)
    for table, column in MODULE_CHILDREN:
        if table == "treport_content":
            sim_report_contents_deleted(
                ctx, "SELECT rc_x.id_rc FROM treport_content rc_x WHERE rc_x.id_agent_module IN (%s)" % modules, args)
        else:
            sim.add_gone(table, "%s.%s IN (%s)" % (table, column, modules), args)


class AgentDeleter(object):
    """Deletes agents one at a time; keeps per-table counts and the files removed."""

    def __init__(self, ctx, executor, incomingdir=None):
        self.ctx = ctx
        self.ex = executor
        self.incomingdir = incomingdir or DEFAULT_INCOMINGDIR
        self.tables = getattr(ctx, "tables", None)
        self.counts = {}
        self.files_removed = []
        self.file_errors = []
        self.agents = []

    def _has(self, table):
        return self.tables is None or table in self.tables

    def _add(self, key, count):
        self.counts[key] = self.counts.get(key, 0) + count

    def delete(self, agent_id, name):
        ex = self.ex
        module_ids = [row[0] for row in ex.query(
            "SELECT id_agente_modulo FROM tagente_modulo WHERE id_agente = %s ORDER BY id_agente_modulo",
            (agent_id,), "tagente_modulo")]
        for chunk in _chunks(module_ids, MODULE_CHUNK):
            marks = _placeholders(chunk)
            for table, column in MODULE_CHILDREN:
                if self._has(table):
                    self._add(table, ex.delete_limit_loop(table, "%s IN (%s)" % (column, marks), chunk))
            self._add(MARKED_KEY, ex.update_limit_loop(
                "tagente_modulo", "disabled = 1, delete_pending = 1, nombre = 'delete_pending'",
                "id_agente_modulo IN (%s) AND NOT (%s)" % (marks, MARKED.replace("{t}", "tagente_modulo")), chunk,
                expected=len(chunk)))
        if self._has("tpolicy_agents"):
            self._add("tpolicy_agents", ex.delete_limit_loop("tpolicy_agents", "id_agent = %s", (agent_id,)))
        gone = ex.write("DELETE FROM tagente WHERE id_agente = %s", (agent_id,), "tagente")
        self._add("tagente", gone)
        if self._has("taddress_agent"):
            self._add("taddress_agent", ex.delete_limit_loop("taddress_agent", "id_agent = %s", (agent_id,)))
        self._remove_files(name)
        if gone:
            self.agents.append(name)
        return gone

    def _remove_files(self, name):
        for path in agent_files(self.incomingdir, name):
            try:
                os.unlink(path)
                self.files_removed.append(path)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    message = "could not remove %s: %s" % (path, exc.strerror or exc)
                    self.file_errors.append(message)
                    self.ctx.warn(message)

    def existing_files(self, name):
        return [path for path in agent_files(self.incomingdir, name) if os.path.exists(path)]

    def details(self):
        out = {"agents": self.agents[:100], "rows_by_table": dict(self.counts),
               "files_removed": self.files_removed[:200]}
        if self.file_errors:
            out["file_errors"] = self.file_errors[:50]
        return out
