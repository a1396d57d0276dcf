"""PURGE steps against the real server: what must go goes, what must stay (the cutoff row too) stays."""

import datetime
import os
import stat

import pytest

from harness.maint_seed import (DAY, NOW, add_agent, add_event, add_module, dt, engine_run, ids, step, tconfig)

CUT45 = NOW - 45 * DAY


def test_module_data_purge_keeps_the_cutoff_row(pandora_db):
    tconfig(pandora_db, days_purge=45)
    stamps = [CUT45 - 86400, CUT45 - 1, CUT45, CUT45 + 1, NOW - 60]
    for ts in stamps:
        pandora_db.query("INSERT INTO tagente_datos VALUES (1, 2.5, %s), (2, 3.5, %s)", (ts, ts))
    res = engine_run(pandora_db, steps=["purge"])
    assert ids(pandora_db, "SELECT DISTINCT utimestamp FROM tagente_datos") == [CUT45, CUT45 + 1, NOW - 60]
    s = step(res, "module_data")
    assert s["rows"] == 4
    assert s["threshold"]["value"] == 45 and s["threshold"]["source"] == "tconfig"
    assert s["threshold"]["cutoff"] == CUT45
    assert s["details"]["max_statement_rows"] <= s["details"]["batch_size"]


def test_days_purge_option_overrides_tconfig(pandora_db):
    tconfig(pandora_db, days_purge=45)
    pandora_db.query("INSERT INTO tagente_datos VALUES (1, 1, %s), (1, 1, %s)", (NOW - 11 * DAY, NOW - 9 * DAY))
    res = engine_run(pandora_db, steps=["purge"], thresholds={"days_purge": 10})
    assert ids(pandora_db, "SELECT utimestamp FROM tagente_datos") == [NOW - 9 * DAY]
    assert step(res, "module_data")["threshold"]["source"] == "option"


@pytest.mark.parametrize("value, reason", [(None, "days_purge is not defined"), ("0", "days_purge is 0")])
def test_days_purge_unset_or_zero_skips_its_steps(pandora_db, value, reason):
    tconfig(pandora_db, days_purge=value, session_timeout=10)
    pandora_db.query("INSERT INTO tagente_datos VALUES (1, 1, %s)", (NOW - 400 * DAY,))
    pandora_db.query("INSERT INTO tserver_export_data (agent_name, `timestamp`) VALUES ('a', %s)",
                     (dt(NOW - 400 * DAY),))
    pandora_db.query("INSERT INTO tsessions_php VALUES ('old', %s, 'x')", (NOW - 400 * DAY,))
    res = engine_run(pandora_db, steps=["purge"])
    for name in ("module_data", "export_data", "php_sessions"):
        assert step(res, name)["skipped_reason"].startswith(reason)
    assert pandora_db.scalar("SELECT COUNT(*) FROM tagente_datos") == 1
    assert pandora_db.scalar("SELECT COUNT(*) FROM tserver_export_data") == 1
    assert pandora_db.scalar("SELECT COUNT(*) FROM tsessions_php") == 1


def test_string_data_uses_upstream_default_of_7_days(pandora_db):
    tconfig(pandora_db, string_purge=None)
    cut = NOW - 7 * DAY
    for ts in (cut - 1, cut, NOW):
        pandora_db.query("INSERT INTO tagente_datos_string VALUES (4, 'text', %s)", (ts,))
    res = engine_run(pandora_db, steps=["purge"])
    assert ids(pandora_db, "SELECT utimestamp FROM tagente_datos_string") == [cut, NOW]
    assert step(res, "string_data")["threshold"]["source"] == "default"
    assert step(res, "string_data")["threshold"]["value"] == 7


def test_export_data_by_datetime_in_small_key_ranges(pandora_db):
    tconfig(pandora_db, days_purge=10)
    cut = NOW - 10 * DAY
    for i, ts in enumerate([cut - 5000, cut - 1, cut, cut + 1, NOW] * 3):
        pandora_db.query("INSERT INTO tserver_export_data (agent_name, `timestamp`) VALUES (%s, %s)",
                         ("a%d" % i, dt(ts)))
    res = engine_run(pandora_db, steps=["purge"], batch_size=2)
    remaining = [r[0] for r in pandora_db.query("SELECT `timestamp` FROM tserver_export_data ORDER BY 1")]
    assert len(remaining) == 9
    assert min(remaining) == datetime.datetime.utcfromtimestamp(cut)
    s = step(res, "export_data")
    assert s["rows"] == 6 and s["details"]["max_statement_rows"] <= 2


def test_php_sessions(pandora_db):
    tconfig(pandora_db, days_purge=45, session_timeout=30)
    cut = NOW - 30 * 60
    rows = [("idle", cut - 1, "d"), ("edge", cut, "d"), ("fresh", NOW, "d"), ("cron-abc", NOW, "d"),
            ("nodata", NOW, None)]
    for sid, last, data in rows:
        pandora_db.query("INSERT INTO tsessions_php VALUES (%s, %s, %s)", (sid, last, data))
    res = engine_run(pandora_db, steps=["purge"])
    assert ids(pandora_db, "SELECT id_session FROM tsessions_php") == ["edge", "fresh"]
    assert step(res, "php_sessions")["rows"] == 3


@pytest.mark.parametrize("timeout, survivors", [(0, ["recent"]), (-1, ["old", "recent"])])
def test_php_session_timeout_special_values(pandora_db, timeout, survivors):
    tconfig(pandora_db, days_purge=45, session_timeout=timeout)
    pandora_db.query("INSERT INTO tsessions_php VALUES ('old', %s, 'x'), ('recent', %s, 'x')",
                     (NOW - 91 * 60, NOW - 89 * 60))
    engine_run(pandora_db, steps=["purge"])
    assert ids(pandora_db, "SELECT id_session FROM tsessions_php") == survivors


def test_php_sessions_skipped_without_session_timeout(pandora_db):
    tconfig(pandora_db, days_purge=45, session_timeout=None)
    pandora_db.query("INSERT INTO tsessions_php VALUES ('old', 1, 'x')")
    res = engine_run(pandora_db, steps=["purge"])
    assert step(res, "php_sessions")["skipped_reason"] == "session_timeout is not defined"
    assert pandora_db.scalar("SELECT COUNT(*) FROM tsessions_php") == 1


def test_planned_downtimes(pandora_db):
    tconfig(pandora_db, days_purge=20)
    cut = NOW - 20 * DAY
    for i, (kind, date_to) in enumerate([("once", cut - 1), ("once", cut), ("periodically", cut - 99 * DAY),
                                         ("once", NOW)], start=1):
        pandora_db.query("INSERT INTO tplanned_downtime (id, name, date_from, date_to, type_execution)"
                         " VALUES (%s, %s, 0, %s, %s)", (i, "dt%d" % i, date_to, kind))
        pandora_db.query("INSERT INTO tplanned_downtime_agents (id_agent, id_downtime) VALUES (1, %s)", (i,))
    res = engine_run(pandora_db, steps=["purge"])
    assert ids(pandora_db, "SELECT id FROM tplanned_downtime") == [2, 3, 4]
    assert ids(pandora_db, "SELECT id_downtime FROM tplanned_downtime_agents") == [2, 3, 4]
    assert step(res, "planned_downtimes")["rows"] == 1


def test_events_and_their_comments(pandora_db):
    tconfig(pandora_db, event_purge=None)  # upstream default: 10 days
    cut = NOW - 10 * DAY
    old = add_event(pandora_db, 1, 1, cut - 1, comments=2)
    edge = add_event(pandora_db, 1, 1, cut, comments=1)
    new = add_event(pandora_db, 1, 1, NOW)
    res = engine_run(pandora_db, steps=["purge"], batch_size=1)
    assert ids(pandora_db, "SELECT id_evento FROM tevento") == [edge, new]
    assert ids(pandora_db, "SELECT DISTINCT id_event FROM tevent_comment") == [edge]
    assert old not in ids(pandora_db, "SELECT id_evento FROM tevento")
    assert step(res, "events")["threshold"]["value"] == 10


def test_audit_and_extended_session_data(pandora_db):
    tconfig(pandora_db, audit_purge=15)
    cut = NOW - 15 * DAY
    for sid, ts in ((1, cut - 1), (2, cut), (3, NOW)):
        pandora_db.query("INSERT INTO tsesion (id_sesion, id_usuario, accion, fecha, utimestamp)"
                         " VALUES (%s, 'admin', 'Logon', %s, %s)", (sid, dt(ts), ts))
    for ext_id, sid in ((10, 1), (11, 2), (12, 3), (13, 99)):  # 99: orphan already
        pandora_db.query("INSERT INTO tsesion_extended (id, id_sesion, extended_info) VALUES (%s, %s, 'x')",
                         (ext_id, sid))
    res = engine_run(pandora_db, steps=["purge"])
    assert ids(pandora_db, "SELECT id_sesion FROM tsesion") == [2, 3]
    assert ids(pandora_db, "SELECT id FROM tsesion_extended") == [11, 12]
    assert step(res, "extended_sessions")["rows"] == 1
    assert step(res, "audit")["rows"] == 1
    assert step(res, "audit_extended")["rows"] == 1


def test_traps_by_local_datetime(pandora_db):
    tconfig(pandora_db, trap_purge=3)
    cut = NOW - 3 * DAY
    for ts in (cut - 1, cut, NOW):
        pandora_db.query("INSERT INTO ttrap (source, oid, `timestamp`, utimestamp) VALUES ('10.0.0.1', '.1', %s, %s)",
                         (dt(ts), ts))
    engine_run(pandora_db, steps=["purge"])
    assert ids(pandora_db, "SELECT utimestamp FROM ttrap") == [cut, NOW]


def test_gis_history(pandora_db):
    tconfig(pandora_db, gis_purge=None)  # upstream default: 15 days
    cut = NOW - 15 * DAY
    for end in (cut - 1, cut, NOW, None):
        pandora_db.query("INSERT INTO tgis_data_history (longitude, latitude, start_timestamp, end_timestamp,"
                         " tagente_id_agente) VALUES (1, 2, %s, %s, 1)", (dt(cut - 2 * DAY), end and dt(end)))
    res = engine_run(pandora_db, steps=["purge"])
    left = [r[0] for r in pandora_db.query("SELECT end_timestamp FROM tgis_data_history ORDER BY id_tgis_data")]
    assert left == [datetime.datetime.utcfromtimestamp(cut), datetime.datetime.utcfromtimestamp(NOW), None]
    assert step(res, "gis_data")["rows"] == 1


def test_inventory_only_when_configured(pandora_db):
    for ts in (NOW - 22 * DAY, NOW - 21 * DAY, NOW):
        pandora_db.query("INSERT INTO tagente_datos_inventory (id_agent_module_inventory, data, utimestamp)"
                         " VALUES (1, 'x', %s)", (ts,))
    res = engine_run(pandora_db, steps=["purge"])
    assert step(res, "inventory")["skipped_reason"] == "inventory_purge is not defined"
    assert pandora_db.scalar("SELECT COUNT(*) FROM tagente_datos_inventory") == 3
    engine_run(pandora_db, steps=["purge"], thresholds={"inventory_purge": 21})
    assert ids(pandora_db, "SELECT utimestamp FROM tagente_datos_inventory") == [NOW - 21 * DAY, NOW]


def test_agent_access_on_773_schema(main_server, new_db):
    db = new_db(main_server, "legacy", legacy=True)
    for agent, ts in ((1, NOW - DAY - 1), (1, NOW - DAY), (2, NOW - 60)):
        db.query("INSERT INTO tagent_access (id_agent, utimestamp) VALUES (%s, %s)", (agent, ts))
    res = engine_run(db, steps=["purge"])
    assert ids(db, "SELECT utimestamp FROM tagent_access") == [NOW - DAY, NOW - 60]
    assert step(res, "agent_access")["rows"] == 1


def test_agent_access_absent_is_a_note_not_a_failure(pandora_db):
    res = engine_run(pandora_db, steps=["purge"])
    assert "tagent_access does not exist" in step(res, "agent_access")["skipped_reason"]
    assert any("tagent_access" in note for note in res["notes"])


def test_special_days_with_real_date_arithmetic(pandora_db):
    # NOW is the 21st: upstream's CURDATE() - 30 is the invalid "date" 20260891 and deletes nothing.
    assert datetime.datetime.utcfromtimestamp(NOW).day <= 30
    tconfig(pandora_db, num_past_special_days=30)
    pandora_db.query("INSERT INTO talert_calendar (id, name) VALUES (1, 'cal')")
    today = datetime.datetime.utcfromtimestamp(NOW).date()
    days = [today - datetime.timedelta(days=31), today - datetime.timedelta(days=30), today, datetime.date(1, 1, 1)]
    for i, day in enumerate(days, start=1):
        pandora_db.query("INSERT INTO talert_special_days (id, id_calendar, `date`, day_code) VALUES (%s, 1, %s, 1)",
                         (i, day))
    res = engine_run(pandora_db, steps=["purge"])
    assert ids(pandora_db, "SELECT id FROM talert_special_days") == [2, 3, 4]
    assert step(res, "special_days")["rows"] == 1


def test_graph_sources_of_deleted_graphs(pandora_db):
    pandora_db.query("INSERT INTO tgraph (id_graph, name) VALUES (1, 'g')")
    pandora_db.query("INSERT INTO tgraph_source (id_gs, id_graph, id_agent_module) VALUES (1, 1, 5), (2, 2, 5)")
    engine_run(pandora_db, steps=["purge"])
    assert ids(pandora_db, "SELECT id_gs FROM tgraph_source") == [1]


def test_messages(pandora_db):
    tconfig(pandora_db, delete_old_messages=21)
    pandora_db.query("INSERT INTO tnotification_source (id, description) VALUES (1, 's')")
    cut = NOW - 21 * DAY
    for i, ts in enumerate((cut - 1, cut, NOW), start=1):
        pandora_db.query("INSERT INTO tmensajes (id_mensaje, mensaje, `timestamp`, id_source) VALUES (%s, 'm', %s, 1)",
                         (i, ts))
    res = engine_run(pandora_db, steps=["purge"])
    assert ids(pandora_db, "SELECT id_mensaje FROM tmensajes") == [2, 3]
    assert step(res, "messages")["rows"] == 1


def test_expired_visual_console_cache(pandora_db):
    pandora_db.query("INSERT INTO tlayout (id, name, id_group, background) VALUES (1, 'vc', 0, '')")
    pandora_db.query("INSERT INTO tlayout_data (id, id_layout) VALUES (1, 1)")
    for i, (created, expiration) in enumerate([(NOW - 100, 50), (NOW - 100, 100), (NOW - 100, 500)], start=1):
        pandora_db.query("INSERT INTO tvisual_console_elements_cache (id, vc_id, vc_item_id, created_at, expiration)"
                         " VALUES (%s, 1, 1, %s, %s)", (i, dt(created), expiration))
    res = engine_run(pandora_db, steps=["purge"])
    assert ids(pandora_db, "SELECT id FROM tvisual_console_elements_cache") == [2, 3]
    assert step(res, "console_cache")["rows"] == 1


def test_pending_modules_are_removed_with_their_status_and_links(pandora_db):
    add_agent(pandora_db, 1)
    add_module(pandora_db, 10, 1, pending=1)
    add_module(pandora_db, 11, 1, parent=10)
    add_module(pandora_db, 12, 1)
    res = engine_run(pandora_db, steps=["purge"])
    assert ids(pandora_db, "SELECT id_agente_modulo FROM tagente_modulo") == [11, 12]
    assert ids(pandora_db, "SELECT id_agente_modulo FROM tagente_estado") == [11, 12]
    assert pandora_db.scalar("SELECT parent_module_id FROM tagente_modulo WHERE id_agente_modulo = 11") == 0
    assert step(res, "pending_modules")["rows"] == 1
    assert step(res, "pending_modules_status")["rows"] == 1
    assert step(res, "pending_modules_parents")["rows"] == 1


def test_report_cleanup(pandora_db):
    add_agent(pandora_db, 1)
    add_module(pandora_db, 10, 1)
    pandora_db.query("INSERT INTO treport (id_report, name) VALUES (1, 'r')")
    contents = [  # id, type, id_agent_module, id_agent
        (1, "simple_graph", 10, 0),   # module exists: stays
        (2, "simple_graph", 99, 0),   # module gone: goes
        (3, "custom_graph", 99, 0),   # blacklisted type: stays
        (4, "agent_detailed", 0, 1),  # agent exists: stays
        (5, "agent_detailed", 0, 77),  # agent gone: goes
        (6, "exception", 0, 0),       # its only item points at a gone module: item goes, then the content
        (7, "exception", 0, 0),       # keeps a valid item: stays
        (8, "SLA", 0, 0),             # no SLA rows at all: goes
        (9, "SLA", 0, 0),             # one valid SLA row: stays
        (10, "SLA_services", 0, 0),   # its SLA row points at a gone module, but SLA_services is exempt: stays
    ]
    for id_rc, kind, module, agent in contents:
        pandora_db.query("INSERT INTO treport_content (id_rc, id_report, type, id_agent_module, id_agent)"
                         " VALUES (%s, 1, %s, %s, %s)", (id_rc, kind, module, agent))
    pandora_db.query("INSERT INTO treport_content_item (id, id_report_content, id_agent_module) VALUES"
                     " (1, 6, 99), (2, 7, 10), (3, 3, 99)")
    pandora_db.query("INSERT INTO treport_content_sla_combined (id, id_report_content, id_agent_module,"
                     " id_agent_module_failover) VALUES (1, 9, 10, 0), (2, 10, 99, 0)")
    res = engine_run(pandora_db, steps=["purge"])
    assert ids(pandora_db, "SELECT id_rc FROM treport_content") == [1, 3, 4, 7, 9, 10]
    assert ids(pandora_db, "SELECT id FROM treport_content_item") == [2, 3]
    assert ids(pandora_db, "SELECT id FROM treport_content_sla_combined") == [1, 2]
    assert step(res, "report_contents_modules")["rows"] == 1
    assert step(res, "report_items")["rows"] == 1
    assert step(res, "report_contents_agents")["rows"] == 1
    assert step(res, "report_contents_empty_exception")["rows"] == 1
    assert step(res, "report_contents_empty_sla")["rows"] == 1


def test_enterprise_hooks_are_reported_not_faked(pandora_db):
    res = engine_run(pandora_db, steps=["purge"])
    for name in ("enterprise_cleanup", "log_data", "ncm_data"):
        assert "closed source" in step(res, name)["skipped_reason"]


def _fake_nfexpire(tmp_path, name):
    script = tmp_path / name
    record = tmp_path / (name + ".calls")
    script.write_text("#!/bin/sh\necho \"$@\" >> %s\nexit 0\n" % record)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script), record


def test_netflow_and_sflow_expire_with_their_own_tokens(pandora_db, tmp_path):
    netflow_bin, netflow_calls = _fake_nfexpire(tmp_path, "nfexpire")
    sflow_bin, sflow_calls = _fake_nfexpire(tmp_path, "sfexpire")
    os.mkdir(str(tmp_path / "netflow"))
    os.mkdir(str(tmp_path / "sflow"))
    tconfig(pandora_db, netflow_max_lifetime=5, netflow_nfexpire=netflow_bin, netflow_path=str(tmp_path / "netflow"),
            sflow_max_lifetime=3, sflow_nfexpire=sflow_bin, sflow_path=str(tmp_path / "sflow"))
    plan = engine_run(pandora_db, steps=["purge"], check_mode=True)
    assert step(plan, "sflow")["details"]["ran"] is False
    assert not sflow_calls.exists()
    res = engine_run(pandora_db, steps=["purge"])
    netflow = str(tmp_path / "netflow")
    assert netflow_calls.read_text().splitlines() == ["-u %s -t 5d -w 100" % netflow, "-r %s" % netflow,
                                                      "-e %s" % netflow]
    assert sflow_calls.read_text().splitlines() == ["-r %s -t 3d" % str(tmp_path / "sflow")]
    assert step(res, "sflow")["details"]["ran"] is True
    assert res["changed"] is False  # files only: not counted as row changes


def test_netflow_skipped_when_not_configured(pandora_db):
    res = engine_run(pandora_db, steps=["purge"])
    assert step(res, "netflow")["skipped_reason"] == "netflow_max_lifetime is not defined"
    assert step(res, "sflow")["skipped_reason"] == "sflow_max_lifetime is not defined"
