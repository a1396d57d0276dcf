"""Deterministic, realistic Pandora FMS monitoring data, generated inside the server.

Rows are produced by ``INSERT ... SELECT`` over MariaDB's SEQUENCE engine
(``seq_0_to_N``), so millions of rows load in seconds and nothing is held in
Python.  The same arguments always give the same rows (values are functions
of the module id and the sample index; no RAND()).

Module mix per agent (cycled): numeric dense (5 min), numeric dense, proc
(generic_proc), string, numeric sparse (one sample every 2 hours), keep_alive,
numeric with gaps (samples missing in 6-hour blocks), incremental.
"""

import time

DAY = 86400

# (id_tipo_modulo, name suffix, kind)
MODULE_KINDS = (
    (1, "cpu_load", "dense"),
    (1, "memory_free", "dense"),
    (2, "service_up", "proc"),
    (3, "last_log_line", "string"),
    (1, "disk_usage", "sparse"),
    (100, "keep_alive", "proc"),
    (34, "remote_latency", "gappy"),
    (4, "bytes_in", "inc"),
)


def _cur(conn):
    return conn.cursor()


def seed_tconfig(conn, overrides=None):
    """The tconfig rows of pandoradb_data.sql that maintenance reads (data-file defaults)."""
    values = {
        "days_purge": "45", "days_compact": "0", "step_compact": "1", "string_purge": "7",
        "event_purge": "7", "audit_purge": "15", "trap_purge": "7", "gis_purge": "7",
        "big_operation_step_datos_purge": "100", "small_operation_step_datos_purge": "1000",
        "days_delete_unknown": "0", "days_delete_not_initialized": "7",
        "days_autodisable_deletion": "30", "db_scheme_version": "7.0NG", "db_scheme_build": "PD230303",
        "MR": "64",
    }
    values.update(overrides or {})
    with _cur(conn) as cur:
        for token, value in values.items():
            cur.execute("DELETE FROM tconfig WHERE token = %s", (token,))
            if value is not None:
                cur.execute("INSERT INTO tconfig (token, value) VALUES (%s, %s)", (token, str(value)))


def _seq(cur, count):
    return "seq_0_to_%d" % max(0, count - 1)


def generate(conn, now=None, agents=10, modules_per_agent=8, days=60, interval=300,
             events=1000, traps=500, sessions=200, audit=500, servername="pandora-main",
             tconfig=None):
    """Fill an empty fixture database with ``days`` of data ending at ``now``.

    Returns a summary dict (row counts per table and the ``now`` used).
    """
    now = int(now if now is not None else time.time())
    start = now - days * DAY
    start -= start % interval
    samples = (now - start) // interval
    total_modules = agents * modules_per_agent
    with _cur(conn) as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute("SET SESSION unique_checks = 0")
        seed_tconfig(conn, tconfig)
        cur.execute("INSERT IGNORE INTO tgrupo (id_grupo, nombre) VALUES (10, 'Servers')")
        cur.execute(
            "INSERT INTO tserver (name, status, keepalive, master, server_type) VALUES"
            " (%s, 1, FROM_UNIXTIME(%s), 1, 0), (%s, 1, FROM_UNIXTIME(%s), 1, 3)",
            (servername, now, servername, now))
        # Agents: every 10th disabled; last contact spread over the last 90 days.
        cur.execute(
            "INSERT INTO tagente (id_agente, nombre, alias, direccion, comentarios, id_grupo,"
            " ultimo_contacto, disabled, modo, intervalo, id_os, os_version, agent_version,"
            " ultimo_contacto_remoto)"
            " SELECT seq + 1, CONCAT('agent-', LPAD(seq + 1, 5, '0')), CONCAT('Agent ', seq + 1),"
            " CONCAT('10.0.', (seq DIV 250) %% 250, '.', seq %% 250 + 1), '', 10,"
            " FROM_UNIXTIME(%s - (seq %% 10) * 300), IF(seq %% 10 = 9, 1, 0), 1, 300, 1, '', '7.0NG',"
            " FROM_UNIXTIME(%s)"
            " FROM " + _seq(cur, agents), (now, now))
        cur.execute(
            "INSERT INTO tagente_modulo (id_agente_modulo, id_agente, id_tipo_modulo, nombre,"
            " descripcion, module_interval, id_modulo, history_data)"
            " SELECT a.seq * %s + k.seq + 1, a.seq + 1, ELT(k.seq %% 8 + 1, 1, 1, 2, 3, 1, 100, 34, 4),"
            " ELT(k.seq %% 8 + 1, 'cpu_load', 'memory_free', 'service_up', 'last_log_line', 'disk_usage',"
            " 'keep_alive', 'remote_latency', 'bytes_in'), '', 300, 1, 1"
            " FROM " + _seq(cur, agents) + " a JOIN " + _seq(cur, modules_per_agent) + " k",
            (modules_per_agent,))
        cur.execute(
            "INSERT INTO tagente_estado (id_agente_modulo, datos, timestamp, estado, known_status,"
            " id_agente, last_try, utimestamp, current_interval, running_by, last_execution_try)"
            " SELECT id_agente_modulo, '1', FROM_UNIXTIME(%s), 0, 0, id_agente, FROM_UNIXTIME(%s), %s,"
            " 300, 0, %s FROM tagente_modulo", (now, now, now, now))
        kind = "(m.id_agente_modulo - 1) %%%% %d %%%% 8" % modules_per_agent
        # Numeric series: dense (kinds 0,1), proc (2,5: 0/1 values), gappy (6), sparse (4).
        cur.execute(
            "INSERT INTO tagente_datos (id_agente_modulo, datos, utimestamp)"
            " SELECT m.id_agente_modulo,"
            "  CASE WHEN " + kind + " IN (2, 5) THEN (s.seq DIV 37 + m.id_agente_modulo) %% 2"
            "   ELSE ROUND(50 + 30 * SIN(s.seq * 2 * PI() / 288 + m.id_agente_modulo)"
            "        + ((s.seq * 7919 + m.id_agente_modulo * 104729) %% 1000) / 100.0, 3) END,"
            "  %s + s.seq * %s"
            " FROM tagente_modulo m JOIN " + _seq(cur, samples) + " s"
            " WHERE " + kind + " IN (0, 1, 2, 5)"
            "  OR (" + kind + " = 4 AND s.seq %% 24 = 0)"
            "  OR (" + kind + " = 6 AND (s.seq DIV 72) %% 3 <> 1)",
            (start, interval))
        cur.execute(
            "INSERT INTO tagente_datos_inc (id_agente_modulo, datos, utimestamp)"
            " SELECT m.id_agente_modulo, s.seq * 1500, %s + s.seq * %s"
            " FROM tagente_modulo m JOIN " + _seq(cur, min(samples, 288)) + " s"
            " WHERE " + kind + " = 7", (now - 288 * interval, interval))
        cur.execute(
            "INSERT INTO tagente_datos_string (id_agente_modulo, datos, utimestamp)"
            " SELECT m.id_agente_modulo, CONCAT('log line ', s.seq, ' of module ', m.id_agente_modulo),"
            "  %s + s.seq * %s * 12"
            " FROM tagente_modulo m JOIN " + _seq(cur, samples // 12) + " s"
            " WHERE " + kind + " = 3", (start, interval))
        span = now - start
        cur.execute(
            "INSERT INTO tevento (id_agente, id_usuario, id_grupo, estado, timestamp, evento,"
            " utimestamp, event_type, id_agentmodule, criticity, tags, source, id_extra, owner_user,"
            " custom_data, data, module_status)"
            " SELECT s.seq %% %s + 1, '', 10, s.seq %% 3,"
            "  FROM_UNIXTIME(%s + (s.seq * 7919) %% %s), CONCAT('Module went critical #', s.seq),"
            "  %s + (s.seq * 7919) %% %s, 'going_up_critical', s.seq %% %s + 1, 4, '', 'Pandora',"
            "  '', '', '', '', 1"
            " FROM " + _seq(cur, events) + " s",
            (agents, start, span, start, span, total_modules))
        cur.execute(
            "INSERT INTO tevent_comment (id_event, utimestamp, comment, id_user, action)"
            " SELECT id_evento, utimestamp, 'checked', 'admin', 'Added comment' FROM tevento"
            " WHERE id_evento % 10 = 0")
        cur.execute(
            "INSERT INTO ttrap (source, oid, oid_custom, type, type_custom, value, value_custom,"
            " alerted, status, id_usuario, timestamp, priority, text, description, severity,"
            " utimestamp)"
            " SELECT CONCAT('10.1.0.', s.seq %% 200 + 1), '.1.3.6.1.4.1.2021.1', '', 6, '', 'up', '',"
            "  0, 0, '', FROM_UNIXTIME(%s + (s.seq * 6007) %% %s), 2, '', '', 2, %s + (s.seq * 6007) %% %s"
            " FROM " + _seq(cur, traps) + " s", (start, span, start, span))
        cur.execute(
            "INSERT INTO tsesion (id_usuario, ip_origen, accion, descripcion, fecha, utimestamp)"
            " SELECT 'admin', '127.0.0.1', 'Logon', 'Logged in', FROM_UNIXTIME(%s + (s.seq * 3001) %% %s),"
            "  %s + (s.seq * 3001) %% %s FROM " + _seq(cur, audit) + " s", (start, span, start, span))
        cur.execute(
            "INSERT INTO tsessions_php (id_session, last_active, data)"
            " SELECT CONCAT('sess', LPAD(s.seq, 40, '0')), %s - (s.seq * 911) %% (3 * 86400), 'x|s:1:\"y\";'"
            " FROM " + _seq(cur, sessions) + " s", (now,))
    conn.commit()
    return summary(conn, now)


COUNTED_TABLES = ("tagente", "tagente_modulo", "tagente_estado", "tagente_datos", "tagente_datos_string",
                  "tagente_datos_inc", "tevento", "tevent_comment", "ttrap", "tsesion", "tsessions_php")


def summary(conn, now=None):
    out = {"now": now}
    with _cur(conn) as cur:
        for table in COUNTED_TABLES:
            cur.execute("SELECT COUNT(*) FROM `%s`" % table)
            out[table] = cur.fetchone()[0]
    return out
