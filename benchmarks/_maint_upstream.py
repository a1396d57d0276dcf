"""Benchmark-only reproduction of what pandora_db.pl 7.0NG.776 runs for PURGE, CHECKDB and INTEGRITY.

Written from the behaviour described in docs/pandora-reference.md sections 5, 6, 7 and 10 (statement
shapes, batch sizes BIG=100 / SMALL=1000, the 10 ms and 0.1 s sleeps, the per-row loops), to time
upstream's method on the same data as ours.  Enterprise hooks, file purges and steps whose threshold
is unset are skipped, as upstream does without Enterprise.  Not used by the collection.
"""

import time

DAY = 86400
BLACKLIST = ("SLA_services", "custom_graph", "sql_graph_vbar", "sql_graph_hbar", "sql_graph_pie",
             "database_serialized", "sql", "inventory", "inventory_changes", "netflow_area", "netflow_data",
             "netflow_summary", "netflow_top_N")


class UpstreamRun(object):
    def __init__(self, conn, now, sleep=time.sleep, log=None):
        self.conn = conn
        self.now = now
        self.sleep = sleep
        self.log = log or (lambda text: None)
        self.conf = {}
        self.statements = 0
        self.max_rows = 0
        self.rows = {}
        with conn.cursor() as cur:
            cur.execute("SELECT token, value FROM tconfig ORDER BY id_config")
            for token, value in cur.fetchall():
                self.conf.setdefault(token, value)
        self.big = int(self.conf.get("big_operation_step_datos_purge") or 100) or 100
        self.small = int(self.conf.get("small_operation_step_datos_purge") or 1000) or 1000

    # -- statement helpers ------------------------------------------------------------------------------
    def q(self, sql, args=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def do(self, sql, args=None, table=None):
        with self.conn.cursor() as cur:
            count = cur.execute(sql, args)
        self.statements += 1
        self.max_rows = max(self.max_rows, count)
        if table:
            self.rows[table] = self.rows.get(table, 0) + count
        return count

    def num(self, token, default=None):
        value = self.conf.get(token)
        if value is None or str(value).strip() == "":
            return default
        return int(float(value))

    def localtime(self, epoch):
        return self.q("SELECT FROM_UNIXTIME(%s)", (epoch,))[0][0]

    # -- pandora_delete_old_module_data ------------------------------------------------------------------
    def time_sliced(self, table, limit):
        first = self.q("SELECT utimestamp FROM %s ORDER BY utimestamp ASC LIMIT 1" % table)
        if not first:
            return
        first = first[0][0]
        slice_ = int((limit - first) / self.big)
        if slice_ <= 0:
            self.log("No data to purge in %s" % table)
            return
        for k in range(1, self.big + 1):
            lo, hi = first + (k - 1) * slice_, first + k * slice_
            count = self.q("SELECT COUNT(*) FROM %s WHERE utimestamp >= %%s AND utimestamp < %%s" % table,
                           (lo, hi))[0][0]
            while count > 0:
                self.do("DELETE FROM %s WHERE utimestamp >= %%s AND utimestamp < %%s LIMIT %d" % (table, self.small),
                        (lo, hi), table)
                count -= self.small
                self.sleep(0.01)

    # -- the three phases --------------------------------------------------------------------------------
    def purge(self):
        now = self.now
        self.do("DELETE FROM tsesion_extended WHERE id_sesion NOT IN (SELECT id_sesion FROM tsesion)", None,
                "tsesion_extended")
        inventory = self.num("inventory_purge")
        if inventory:
            self.time_sliced("tagente_datos_inventory", now - inventory * DAY)
        disabled = self.num("delete_disabled_agents")
        if disabled:
            self.delete_agents("modo <> 2", disabled)
        days = self.num("days_purge")
        if days:
            self.time_sliced("tagente_datos", now - days * DAY)
            while self.do("DELETE FROM tserver_export_data WHERE UNIX_TIMESTAMP(`timestamp`) < %%s LIMIT %d"
                          % self.small, (now - days * DAY,), "tserver_export_data"):
                self.sleep(0.01)
            if "session_timeout" in self.conf:
                timeout = self.num("session_timeout", 0)
                seconds = 90 * 60 if timeout == 0 else (10 * 365 * DAY if timeout == -1 else timeout * 60)
                while self.do("DELETE FROM tsessions_php WHERE last_active < %%s LIMIT %d" % self.small,
                              (now - seconds,), "tsessions_php"):
                    self.sleep(0.01)
                self.do("DELETE FROM tsessions_php WHERE data IS NULL OR id_session REGEXP '^cron-'", None,
                        "tsessions_php")
            self.do("DELETE FROM tplanned_downtime WHERE type_execution = 'once' AND date_to < %s",
                    (now - days * DAY,), "tplanned_downtime")
        self.time_sliced("tagente_datos_string", now - self.num("string_purge", 7) * DAY)
        events_limit = now - self.num("event_purge", 10) * DAY
        count = self.q("SELECT COUNT(*) FROM tevento WHERE utimestamp < %s", (events_limit,))[0][0]
        while count > 0:
            self.do("DELETE FROM tevento WHERE utimestamp < %%s LIMIT %d" % self.big, (events_limit,), "tevento")
            count -= self.big
            self.sleep(0.01)
        self.do("DELETE FROM tsesion WHERE utimestamp < %s", (now - self.num("audit_purge", 7) * DAY,), "tsesion")
        self.do("DELETE FROM ttrap WHERE `timestamp` < %s", (self.localtime(now - self.num("trap_purge", 7) * DAY),),
                "ttrap")
        self.do("DELETE FROM tgis_data_history WHERE end_timestamp < %s",
                (self.localtime(now - self.num("gis_purge", 15) * DAY),), "tgis_data_history")
        for (module_id,) in self.q("SELECT id_agente_modulo FROM tagente_modulo WHERE delete_pending = 1"):
            self.do("UPDATE tagente_modulo SET parent_module_id = 0 WHERE parent_module_id = %s", (module_id,))
            count = self.q("SELECT COUNT(*) FROM tagente_estado WHERE id_agente_modulo = %s", (module_id,))[0][0]
            while count > 0:
                self.do("DELETE FROM tagente_estado WHERE id_agente_modulo = %s LIMIT 1000", (module_id,),
                        "tagente_estado")
                count -= 1000
        self.do("DELETE FROM tagente_estado WHERE id_agente_modulo IN (SELECT id_agente_modulo FROM tagente_modulo"
                " WHERE delete_pending = 1)", None, "tagente_estado")
        self.do("DELETE FROM tagente_modulo WHERE delete_pending = 1", None, "tagente_modulo")
        bl = ", ".join("'%s'" % item for item in BLACKLIST)
        self.do("DELETE FROM treport_content WHERE id_agent_module != 0 AND id_agent_module NOT IN (SELECT"
                " id_agente_modulo FROM tagente_modulo) AND type NOT IN (%s)" % bl, None, "treport_content")
        self.do("DELETE FROM treport_content_item WHERE id_agent_module NOT IN (SELECT id_agente_modulo FROM"
                " tagente_modulo) AND id_report_content NOT IN (SELECT id_rc FROM treport_content WHERE type IN (%s))"
                % bl, None, "treport_content_item")
        self.do("DELETE FROM treport_content_sla_combined WHERE id_agent_module NOT IN (SELECT id_agente_modulo FROM"
                " tagente_modulo) AND id_report_content NOT IN (SELECT id_rc FROM treport_content WHERE type ="
                " 'SLA_services')", None, "treport_content_sla_combined")
        self.do("DELETE FROM treport_content WHERE id_agent != 0 AND id_agent NOT IN (SELECT id_agente FROM tagente)",
                None, "treport_content")
        self.do("DELETE FROM treport_content WHERE type = 'exception' AND NOT EXISTS (SELECT 1 FROM"
                " treport_content_item i WHERE i.id_report_content = treport_content.id_rc)", None, "treport_content")
        self.do("DELETE FROM treport_content WHERE type IN ('SLA', 'SLA_monthly', 'SLA_services') AND NOT EXISTS"
                " (SELECT 1 FROM treport_content_sla_combined s WHERE s.id_report_content = treport_content.id_rc)",
                None, "treport_content")
        autodisabled = self.num("days_autodisable_deletion")
        if autodisabled:
            self.delete_agents("modo = 2", autodisabled)
        special = self.num("num_past_special_days")
        if special:
            self.do("DELETE FROM talert_special_days WHERE `date` < CURDATE() - %s AND `date` > '0001-01-01'",
                    (special,), "talert_special_days")
        self.do("DELETE FROM tgraph_source WHERE id_graph NOT IN (SELECT id_graph FROM tgraph)", None,
                "tgraph_source")
        messages = self.num("delete_old_messages")
        if messages:
            self.do("DELETE FROM tmensajes WHERE `timestamp` < %s", (now - messages * DAY,), "tmensajes")
        self.do("DELETE FROM tvisual_console_elements_cache WHERE UNIX_TIMESTAMP(created_at) + expiration <"
                " UNIX_TIMESTAMP()", None, "tvisual_console_elements_cache")

    def delete_agents(self, mode, days):
        agents = self.q("SELECT id_agente, nombre FROM tagente WHERE disabled = 1 AND %s AND"
                        " UNIX_TIMESTAMP(ultimo_contacto) + %%s < %%s" % mode, (days * 8600, self.now))
        for agent_id, _name in agents:
            self.do("DELETE FROM tagente WHERE id_agente = %s", (agent_id,), "tagente")
            self.do("DELETE FROM taddress_agent WHERE id_ag = %s", (agent_id,))
            for (module_id,) in self.q("SELECT id_agente_modulo FROM tagente_modulo WHERE id_agente = %s",
                                       (agent_id,)):
                for table, column in (("tgraph_source", "id_agent_module"), ("tlayout_data", "id_agente_modulo"),
                                      ("treport_content", "id_agent_module"), ("tagente_estado", "id_agente_modulo"),
                                      ("talert_template_modules", "id_agent_module"), ("tevento", "id_agentmodule"),
                                      ("ttag_module", "id_agente_modulo")):
                    self.do("DELETE FROM %s WHERE %s = %%s" % (table, column), (module_id,), table)
                self.do("UPDATE tagente_modulo SET disabled = 1, delete_pending = 1, nombre = 'delete_pending'"
                        " WHERE id_agente_modulo = %s", (module_id,))

    def checkdb(self):
        # delete_notinit / days_delete_unknown / days_delete_not_initialized: unset or 0 in the benchmark data.
        missing = self.q("SELECT m.id_agente_modulo, m.id_agente FROM tagente_modulo m LEFT JOIN tagente_estado e"
                         " ON m.id_agente_modulo = e.id_agente_modulo WHERE e.id_agente_modulo IS NULL")
        for module_id, agent_id in missing:
            self.do("INSERT INTO tagente_estado (id_agente_modulo, datos, `timestamp`, estado, id_agente, last_try,"
                    " utimestamp, current_interval, running_by, last_execution_try) VALUES (%s, 0,"
                    " '1970-01-01 00:00:00', 1, %s, '1970-01-01 00:00:00', 0, 0, 0, 0)", (module_id, agent_id),
                    "tagente_estado")
        orphans = self.q("SELECT e.id_agente_modulo FROM tagente_estado e LEFT JOIN tagente_modulo m ON"
                         " e.id_agente_modulo = m.id_agente_modulo WHERE m.id_agente_modulo IS NULL")
        for (module_id,) in orphans:
            self.do("DELETE FROM tagente_estado WHERE id_agente_modulo = %s", (module_id,), "tagente_estado")
            self.sleep(0.1)
        self.do("UPDATE tagente SET alias = nombre WHERE alias = ''", None)

    def integrity(self):
        self.do("DELETE FROM tgroup_stat", None, "tgroup_stat")
        self.do("DELETE FROM talert_template_modules WHERE id_agent_module NOT IN (SELECT id_agente_modulo FROM"
                " tagente_modulo)", None, "talert_template_modules")
        self.do("DELETE FROM tagente_modulo WHERE id_agente NOT IN (SELECT id_agente FROM tagente)", None,
                "tagente_modulo")
        while self.q("SELECT COUNT(*) FROM tagente_estado WHERE id_agente NOT IN (SELECT id_agente FROM tagente)"
                     )[0][0]:
            self.do("DELETE FROM tagente_estado WHERE id_agente NOT IN (SELECT id_agente FROM tagente) LIMIT %d"
                    % self.big, None, "tagente_estado")
        self.do("DELETE FROM tagente_datos_inc WHERE id_agente_modulo NOT IN (SELECT id_agente_modulo FROM"
                " tagente_modulo)", None, "tagente_datos_inc")

    def whole_run(self):
        """``pandora_db.pl <conf> -p``: purge, checkdb, integrity, the db_maintance token."""
        self.purge()
        self.checkdb()
        self.integrity()
        self.do("DELETE FROM tconfig WHERE token = 'db_maintance'")
        self.do("INSERT INTO tconfig (token, value) VALUES ('db_maintance', %s)", (str(self.now),))
