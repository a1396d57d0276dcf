"""Seeding helpers and an engine runner for the pandora_db_maintain tests.

Rows are written with explicit ids and timestamps relative to ``NOW`` so each
test states exactly which rows must go and which must stay.
"""

from harness.mariadb import ROOT_PASSWORD

NOW = 1790000000  # 2026-09-21 14:13:20 UTC; the test servers run in UTC
DAY = 86400


def settings_for(db):
    from ansible_collections.pandorafms.server.plugins.module_utils._connection import ConnectionSettings
    return ConnectionSettings(host="127.0.0.1", port=db.server.port, user="root", password=ROOT_PASSWORD,
                              database=db.name, connect_timeout=10)


def engine_run(db, **options):
    """Run the maintenance engine on ``db`` (no master check, fixed clock unless given)."""
    from ansible_collections.pandorafms.server.plugins.module_utils._maintain import run_maintenance
    options.setdefault("require_master", False)
    options.setdefault("now", NOW)
    return run_maintenance(settings_for(db), None, **options)


def step(result, name):
    """The result entry of step ``name`` (exactly one expected)."""
    found = [s for s in result["steps"] if s["name"] == name]
    assert len(found) == 1, "step %s: %r" % (name, [s["name"] for s in result["steps"]])
    return found[0]


def rows_of(result):
    """``{(database, name, table): rows}`` of the steps that were not skipped."""
    return dict(((s["database"], s["name"], s["table"]), s["rows"]) for s in result["steps"]
                if not s["skipped_reason"])


def tconfig(db, **values):
    """Set tconfig tokens (None deletes the token)."""
    for token, value in values.items():
        db.query("DELETE FROM tconfig WHERE token = %s", (token,))
        if value is not None:
            db.query("INSERT INTO tconfig (token, value) VALUES (%s, %s)", (token, str(value)))


def ids(db, sql, args=None):
    return sorted(row[0] for row in db.query(sql, args))


def dt(epoch):
    """A DATETIME literal for ``epoch`` (the test servers run in UTC)."""
    import datetime
    return datetime.datetime.utcfromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def add_server(db, name="pandora-main", master=1, status=1, server_type=0, id_server=None):
    db.query("INSERT INTO tserver (id_server, name, status, master, server_type) VALUES (%s, %s, %s, %s, %s)",
             (id_server, name, status, master, server_type))


def add_agent(db, id_agente, name=None, disabled=0, modo=1, last_contact=NOW, alias=None):
    name = name or "agent-%d" % id_agente
    db.query("INSERT INTO tagente (id_agente, nombre, alias, id_grupo, ultimo_contacto, disabled, modo)"
             " VALUES (%s, %s, %s, 10, %s, %s, %s)",
             (id_agente, name, name if alias is None else alias, dt(last_contact), disabled, modo))
    return name


def add_module(db, id_module, id_agente, tipo=1, pending=0, disabled=0, parent=0, policy=0, status=0,
               status_time=NOW, with_status=True, name=None):
    db.query("INSERT INTO tagente_modulo (id_agente_modulo, id_agente, id_tipo_modulo, nombre, disabled,"
             " delete_pending, parent_module_id, id_policy_module) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
             (id_module, id_agente, tipo, name or "module-%d" % id_module, disabled, pending, parent, policy))
    if with_status:
        add_status(db, id_module, id_agente, status, status_time)


def add_status(db, id_module, id_agente, estado=0, utimestamp=NOW):
    db.query("INSERT INTO tagente_estado (id_agente_modulo, id_agente, estado, utimestamp, datos, last_try)"
             " VALUES (%s, %s, %s, %s, '1', NOW())", (id_module, id_agente, estado, utimestamp))


def add_data(db, id_module, timestamps, table="tagente_datos"):
    value = "'x'" if table == "tagente_datos_string" else "1.5"
    for ts in timestamps:
        db.query("INSERT INTO %s (id_agente_modulo, datos, utimestamp) VALUES (%%s, %s, %%s)" % (table, value),
                 (id_module, ts))


def add_event(db, id_agente, id_module, utimestamp, comments=0):
    db.query("INSERT INTO tevento (id_agente, id_agentmodule, utimestamp, `timestamp`, evento, estado)"
             " VALUES (%s, %s, %s, %s, 'event', 0)", (id_agente, id_module, utimestamp, dt(utimestamp)))
    event_id = db.scalar("SELECT MAX(id_evento) FROM tevento")
    for dummy in range(comments):
        db.query("INSERT INTO tevent_comment (id_event, utimestamp, comment, id_user) VALUES (%s, %s, 'c', 'admin')",
                 (event_id, utimestamp))
    return event_id


def seed_month(db, now=NOW, agents=4, days=40, tconfig_values=None):
    """A small realistic database (datagen) plus tconfig thresholds that give several steps work."""
    from harness import datagen
    values = {"days_purge": "30", "string_purge": "7", "event_purge": "10", "audit_purge": "15",
              "trap_purge": "7", "gis_purge": "7", "days_compact": "0"}
    values.update(tconfig_values or {})
    conn = db.connect()
    try:
        return datagen.generate(conn, now=now, agents=agents, modules_per_agent=8, days=days, interval=3600,
                                events=300, traps=100, sessions=50, audit=100, tconfig=values)
    finally:
        conn.close()


EVERYTHING_TCONFIG = {
    "delete_disabled_agents": "20", "days_autodisable_deletion": "20", "session_timeout": "60",
    "delete_old_messages": "10", "num_past_special_days": "5", "delete_notinit": "1", "days_delete_unknown": "2",
    "days_delete_not_initialized": "3", "inventory_purge": "10",
}


def seed_everything(db, now=NOW):
    """seed_month plus at least one row for every step, including the steps' knock-on effects on each other."""
    import datetime
    summary = seed_month(db, now=now, tconfig_values=EVERYTHING_TCONFIG)
    old = now - 40 * DAY
    db.query("INSERT INTO talert_templates (id, name) VALUES (1, 't')")
    db.query("INSERT INTO tgraph (id_graph, name) VALUES (1, 'g')")
    db.query("INSERT INTO tlayout (id, name, id_group, background) VALUES (1, 'vc', 0, '')")
    db.query("INSERT INTO tlayout_data (id, id_layout) VALUES (1, 1)")
    db.query("INSERT INTO treport (id_report, name) VALUES (1, 'r')")
    db.query("INSERT INTO tnotification_source (id, description) VALUES (1, 's')")
    db.query("INSERT INTO talert_calendar (id, name) VALUES (1, 'c')")
    # A disabled agent gone for 40 days, with everything that points at its modules.
    add_agent(db, 101, disabled=1, last_contact=old)
    for module_id in (1001, 1002):
        add_module(db, module_id, 101)
        add_event(db, 101, module_id, now - 30 * DAY, comments=1)
        add_event(db, 101, module_id, now - 3600)
        db.query("INSERT INTO talert_template_modules (id_agent_module, id_alert_template) VALUES (%s, 1)",
                 (module_id,))
        db.query("INSERT INTO tgraph_source (id_graph, id_agent_module) VALUES (1, %s)", (module_id,))
        db.query("INSERT INTO treport_content (id_report, type, id_agent_module) VALUES (1, 'simple_graph', %s)",
                 (module_id,))
    db.query("INSERT INTO taddress (id_a, ip) VALUES (1, '10.9.9.9')")
    db.query("INSERT INTO taddress_agent (id_a, id_agent) VALUES (1, 101)")
    # An autodisabled agent gone for 40 days; an exception report item points at its module.
    add_agent(db, 102, disabled=1, modo=2, last_contact=old)
    add_module(db, 1021, 102)
    db.query("INSERT INTO treport_content (id_rc, id_report, type) VALUES (900, 1, 'exception')")
    db.query("INSERT INTO treport_content_item (id_report_content, id_agent_module) VALUES (900, 1021)")
    db.query("INSERT INTO treport_content (id_rc, id_report, type) VALUES (901, 1, 'SLA')")
    db.query("INSERT INTO treport_content (id_rc, id_report, type) VALUES (902, 1, 'SLA')")
    db.query("INSERT INTO treport_content_sla_combined (id_report_content, id_agent_module, id_agent_module_failover)"
             " VALUES (902, 1, 0), (902, 4242, 0)")
    db.query("INSERT INTO treport_content (id_rc, id_report, type, id_agent_module, id_agent) VALUES"
             " (903, 1, 'simple_graph', 4242, 0), (904, 1, 'simple_graph', 1034, 0), (905, 1, 'agent_detailed', 0, 101),"
             " (906, 1, 'agent_detailed', 0, 102), (907, 1, 'sql', 4242, 0), (908, 1, 'exception', 0, 0),"
             " (909, 1, 'exception', 0, 0)")
    db.query("INSERT INTO treport_content_item (id_report_content, id_agent_module) VALUES (908, 1), (908, 4242),"
             " (909, 4243)")
    # An enabled agent with modules in every state CHECKDB cares about.
    add_agent(db, 103)
    add_module(db, 1031, 103, status=4)                           # not initialised
    add_module(db, 1032, 103, status=3, status_time=now - 3 * DAY)  # unknown for 3 days
    add_module(db, 1033, 103, with_status=False)                  # no status row
    add_module(db, 1034, 103, pending=1)                          # pending deletion ...
    add_module(db, 1035, 103, parent=1034)                        # ... with a child
    add_module(db, 1036, 103, status=5, status_time=now - 4 * DAY)  # no data for 4 days
    add_status(db, 5000, 103)                                     # status of a module that does not exist
    add_agent(db, 104, alias="")                                  # empty alias
    add_module(db, 6000, 999)                                     # orphan module (agent 999 does not exist)
    db.query("INSERT INTO tagente_datos_inc VALUES (7000, 1, %s)", (now,))
    db.query("INSERT INTO tgroup_stat (id_group, modules) VALUES (10, 3)")
    db.query("INSERT INTO tserver (name, status, server_type) VALUES ('gone-discovery', -1, 3)")
    db.query("INSERT INTO trecon_task (name, id_recon_server) VALUES ('forgotten', 12345)")
    for session_id in (1, 2, 3):
        db.query("INSERT INTO tsesion_extended (id_sesion, extended_info) VALUES (%s, 'x')", (session_id,))
    db.query("INSERT INTO tsesion_extended (id_sesion, extended_info) VALUES (99999, 'orphan')")
    db.query("INSERT INTO tsessions_php VALUES ('cron-1', %s, 'x')", (now,))
    today = datetime.datetime.utcfromtimestamp(now).date()
    for delta in (6, 5, 0):
        db.query("INSERT INTO talert_special_days (id_calendar, `date`, day_code) VALUES (1, %s, 1)",
                 (today - datetime.timedelta(days=delta),))
    for ts in (now - 11 * DAY, now):
        db.query("INSERT INTO tmensajes (mensaje, `timestamp`, id_source) VALUES ('m', %s, 1)", (ts,))
    db.query("INSERT INTO tvisual_console_elements_cache (vc_id, vc_item_id, created_at, expiration) VALUES"
             " (1, 1, %s, 60), (1, 1, %s, 86400)", (dt(now - 3600), dt(now - 3600)))
    for ts in (now - 8 * DAY, now):
        db.query("INSERT INTO tgis_data_history (longitude, latitude, start_timestamp, end_timestamp,"
                 " tagente_id_agente) VALUES (1, 1, %s, %s, 1)", (dt(ts - 60), dt(ts)))
        db.query("INSERT INTO tserver_export_data (agent_name, `timestamp`) VALUES ('a', %s)", (dt(now - 31 * DAY),))
        db.query("INSERT INTO tagente_datos_inventory (id_agent_module_inventory, data, utimestamp)"
                 " VALUES (1, 'x', %s)", (ts - 3 * DAY,))
    db.query("INSERT INTO tplanned_downtime (name, date_to, type_execution) VALUES ('x', %s, 'once')",
             (now - 31 * DAY,))
    return summary
