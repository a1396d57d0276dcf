"""pandora_db_info's health report: each signal gives the right finding with the right severity."""

import json
import os
import time


from harness.maint_seed import tconfig
from harness.mariadb import ROOT_PASSWORD

MODULE = "pandorafms.server.pandora_db_info"
DAY = 86400


def _now():
    return int(time.time())


def _fresh(db, now=None, servername="pandora-main"):
    """A database whose maintenance ran a minute ago, with a little data and a master server."""
    now = now or _now()
    tconfig(db, db_maintance=now - 60, MR=64, db_scheme_version="7.0NG.776", days_purge=30, string_purge=7,
            event_purge=10, days_compact=0)
    db.query("INSERT INTO tserver (name, status, master, server_type, keepalive) VALUES (%s, 1, 1, 0, NOW())",
             (servername,))
    for age in (1, 2, 5):
        db.query("INSERT INTO tagente_datos VALUES (1, 1, %s)", (now - age * DAY,))
    return now


def _task(db, register="out", **options):
    args = dict(db.login(), servername="pandora-main", check_host=False)
    args.update(options)
    return {MODULE: args, "register": register}


def _run(playbook, db, **options):
    return playbook.run([_task(db, **options)], expect_rc=0).last


def _findings(result, check=None):
    items = result["health"]["findings"]
    return [f for f in items if check is None or f["check"] == check]


def _link(main, history):
    tconfig(main, history_db_enabled=1, history_db_host="127.0.0.1", history_db_port=history.server.port,
            history_db_user="root", history_db_pass=ROOT_PASSWORD, history_db_name=history.name,
            history_db_days=15)


def test_fresh_database_is_ok_and_read_only(pandora_db, playbook):
    _fresh(pandora_db)
    before = pandora_db.checksums()
    out = playbook.run([_task(pandora_db)], check=True, expect_rc=0).last
    assert out["changed"] is False
    assert pandora_db.checksums() == before
    health = out["health"]
    assert health["worst"] == "ok", health["findings"]
    assert health["main"]["maintenance"]["age_hours"] < 0.1
    assert health["main"]["master"]["this_host_is_master"] is True
    assert health["main"]["lock"]["free"] is True
    assert health["main"]["tagente_datos_span"]["newest"] > health["main"]["tagente_datos_span"]["oldest"]
    assert health["main"]["layout"]["tagente_datos"] == {"partitioned": False}
    assert health["main"]["backlog"]["tagente_datos"]["rows"] == 0
    assert health["summary"]["worst"] == "ok"
    assert ROOT_PASSWORD not in json.dumps(out)


def test_maintenance_age_against_upstream_thresholds(pandora_db, playbook):
    """30 h old: critical by default (24 h: the server's event), graded by the thresholds given."""
    now = _fresh(pandora_db)
    tconfig(pandora_db, db_maintance=now - 30 * 3600)
    cases = [({}, "critical", False), ({"maintenance_critical_hours": 40}, "warning", False),
             ({"maintenance_warning_hours": 31, "maintenance_critical_hours": 40}, "ok", False),
             ({"maintenance_notice_hours": 29}, "critical", True)]
    results = playbook.run([_task(pandora_db, register="r%d" % i, thresholds=th) for i, (th, dummy, dummy2)
                            in enumerate(cases)], expect_rc=0).results
    for result, (th, severity, notice) in zip(results, cases):
        finding = _findings(result, "maintenance_main")[0]
        assert finding["severity"] == severity, (th, finding)
        assert "30.0 h" in finding["reason"]
        assert ("console notifies" in finding["reason"]) == notice
        assert finding["action"] or severity == "ok"


def test_never_run_is_critical(pandora_db, playbook):
    _fresh(pandora_db)
    tconfig(pandora_db, db_maintance=None)
    assert _findings(_run(playbook, pandora_db), "maintenance_main")[0]["severity"] == "critical"


def test_purge_backlog_counted_and_graded(pandora_db, playbook):
    now = _fresh(pandora_db)
    # 40 rows 10 days past days_purge=30, 5 event rows 2 days past event_purge=10.
    pandora_db.query("INSERT INTO tagente_datos SELECT 2, seq, %s - seq FROM seq_1_to_40", (now - 40 * DAY,))
    for i in range(5):
        pandora_db.query("INSERT INTO tevento (id_agente, utimestamp, `timestamp`) VALUES (1, %s, NOW())",
                         (now - 12 * DAY - i,))
    out = _run(playbook, pandora_db)
    backlog = out["health"]["main"]["backlog"]
    assert backlog["tagente_datos"]["rows"] == 40 and backlog["tagente_datos"]["exact"] is True
    assert backlog["tagente_datos"]["threshold_days"] == 30
    assert backlog["tevento"]["rows"] == 5
    by_table = dict((f["reason"].split(" ")[0], f["severity"]) for f in _findings(out, "purge_backlog"))
    assert by_table == {"tagente_datos": "critical", "tevento": "warning"}


def test_lagging_history_move_and_mr_mismatch(pandora_db, history_db, playbook):
    now = _fresh(pandora_db)
    _fresh(history_db)
    _link(pandora_db, history_db)
    tconfig(history_db, MR=63, db_maintance=now - 30 * 3600)
    # Rows 25 days old on main with history_db_days=15: 10 days behind.
    pandora_db.query("INSERT INTO tagente_datos SELECT 3, seq, %s - seq FROM seq_1_to_20", (now - 25 * DAY,))
    out = _run(playbook, pandora_db)
    health = out["health"]
    assert health["history"]["schema"]["MR"] == "63"
    assert health["history_lag"]["rows"] == 20 and health["history_lag"]["lag_days"] > 9
    assert _findings(out, "history_lag")[0]["severity"] == "critical"
    assert _findings(out, "schema_mr")[0]["severity"] == "critical"
    # The history database's own maintenance age, not the main one's (upstream's console bug).
    hist = _findings(out, "maintenance_history")[0]
    assert hist["severity"] == "critical" and "30.0 h" in hist["reason"]
    assert _findings(out, "maintenance_main")[0]["severity"] == "ok"
    assert health["summary"]["mr_match"] is False
    assert ROOT_PASSWORD not in json.dumps(out)


def test_unreachable_history_is_a_critical_finding_not_a_failure(pandora_db, playbook):
    _fresh(pandora_db)
    tconfig(pandora_db, history_db_enabled=1, history_db_host="127.0.0.1", history_db_port=1,
            history_db_user="root", history_db_pass="secret-Pw-1", history_db_name="nope")
    out = _run(playbook, pandora_db, connect_timeout=2)
    finding = _findings(out, "database_history")[0]
    assert finding["severity"] == "critical"
    assert "secret-Pw-1" not in json.dumps(out)


def test_held_lock_reports_its_holder(pandora_db, playbook):
    _fresh(pandora_db)
    conn = pandora_db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT GET_LOCK(%s, 0)", ("%s_pandora_db" % pandora_db.name,))
            cur.execute("SELECT CONNECTION_ID()")
            holder = cur.fetchone()[0]
        time.sleep(1.1)
        out = _run(playbook, pandora_db, thresholds={"lock_warning_hours": 0})
    finally:
        conn.close()
    lock = out["health"]["main"]["lock"]
    assert lock["free"] is False and lock["connection"] == holder and lock["held_seconds"] >= 1
    assert _findings(out, "lock")[0]["severity"] == "warning"


def test_not_master_says_so(pandora_db, playbook):
    _fresh(pandora_db)
    out = _run(playbook, pandora_db, servername="pandora-node2")
    master = out["health"]["main"]["master"]
    assert master["master"] == "pandora-main" and master["this_host_is_master"] is False
    assert "is not the master" in _findings(out, "master")[0]["reason"]


def _cron(tmp_path, name="pandora_db", mode=0o755, tool=None):
    folder = tmp_path / "cron.hourly"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text('#!/bin/sh\n"%s" "/etc/pandora/pandora_server.conf" >/dev/null 2>&1\n' % (
        tool or str(tmp_path / "pandora_db.pl")))
    os.chmod(str(path), mode)
    return str(path)


def _tool(tmp_path, name, version):
    path = tmp_path / name
    path.write_text("#!/bin/sh\necho 'Pandora FMS DB Tool %s Build 240328'\n" % version)
    os.chmod(str(path), 0o755)
    return str(path)


def test_cron_file_mode_0644_and_version_mismatch(pandora_db, playbook, tmp_path):
    _fresh(pandora_db)
    tool = _tool(tmp_path, "pandora_db", "7.0NG.775")
    server = _tool(tmp_path, "pandora_server", "7.0NG.776")
    out = _run(playbook, pandora_db, check_host=True, cron_file=_cron(tmp_path, mode=0o644, tool=tool),
               server_binary=server)
    cron = out["health"]["host"]["cron"]
    assert cron["mode"] == "0644" and cron["tool_version"]["version"] == "7.0NG.775"
    severities = dict((f["check"], f["severity"]) for f in _findings(out))
    assert severities["cron_mode"] == "critical"   # not executable: run-parts skips it
    assert any(f["check"] == "cron_mode" and "0755" in f["reason"] for f in _findings(out))
    assert severities["cron_tool_version"] == "warning"
    assert "7.0NG.775" in _findings(out, "cron_tool_version")[0]["reason"]


def test_cron_file_names_run_parts_runs_or_skips(pandora_db, playbook, tmp_path):
    _fresh(pandora_db)
    tool = _tool(tmp_path, "pandora_db", "7.0NG.776")
    server = _tool(tmp_path, "pandora_server", "7.0NG.776")
    good, bad = _cron(tmp_path, tool=tool), _cron(tmp_path, "pandora_db.sh", tool=tool)
    results = playbook.run([_task(pandora_db, register="good", check_host=True, cron_file=good, server_binary=server),
                            _task(pandora_db, register="bad", check_host=True, cron_file=bad, server_binary=server)],
                           expect_rc=0).results
    assert not [f for f in _findings(results[0]) if f["check"].startswith("cron")]
    assert results[0]["health"]["host"]["cron"]["name_runs"] is True
    finding = _findings(results[1], "cron_name")[0]
    assert finding["severity"] == "critical" and "run-parts" in finding["reason"]


def test_backup_older_than_its_schedule(pandora_db, playbook, tmp_path):
    _fresh(pandora_db)
    folder = tmp_path / "backups"
    folder.mkdir()
    old = folder / "pandorafms_backup_2026-01-01-03-17-00.tar.gz"
    old.write_bytes(b"x")
    os.utime(str(old), (time.time() - 50 * 3600, time.time() - 50 * 3600))
    out = _run(playbook, pandora_db, check_host=True, cron_file=_cron(tmp_path), backup_dir=str(folder))
    finding = _findings(out, "backup")[0]
    assert finding["severity"] == "warning" and "50." in finding["reason"]
    assert out["health"]["host"]["backup"]["archives"] == 1
    out = _run(playbook, pandora_db, check_host=True, cron_file=_cron(tmp_path), backup_dir=str(folder),
               verify_backup=True)
    assert _findings(out, "backup")[-1]["severity"] == "critical"   # one byte is no archive


def test_bad_options_are_refused_by_name(pandora_db, playbook):
    cases = [({"count_timeout": 0}, "count_timeout"),
             ({"thresholds": {"maintenance_warning_hours": "x"}}, "maintenance_warning_hours"),
             ({"thresholds": {"nope": 1}}, "nope")]
    tasks = [dict(_task(pandora_db, register="r%d" % i, **options), ignore_errors=True)
             for i, (options, dummy) in enumerate(cases)]
    results = playbook.run(tasks, check=True).results
    for result, (options, word) in zip(results, cases):
        assert result["failed"] is True and word in result["msg"] and "Traceback" not in result["msg"], result


def test_counts_are_bounded_and_fall_back_to_estimates(main_server, new_db):
    """A count that runs out of time is reported as the optimizer's estimate, marked not exact."""
    from ansible_collections.pandorafms.server.plugins.module_utils._health import Reader
    db = new_db(main_server)
    db.query("INSERT INTO tagente_datos SELECT seq % 50, seq, seq FROM seq_1_to_300000")
    db.query("ANALYZE TABLE tagente_datos")
    conn = db.connect()
    try:
        reader = Reader(conn, statement_seconds=0.0001)
        count, exact = reader.bounded_count("SELECT COUNT(*) FROM tagente_datos t1 JOIN tagente_datos t2"
                                            " ON t2.utimestamp = t1.utimestamp + 1 WHERE t1.utimestamp < %s",
                                            (250000,))
        assert exact is False and count > 0
        count, exact = Reader(conn, 5).bounded_count("SELECT COUNT(*) FROM tagente_datos WHERE utimestamp < %s",
                                                     (1000,))
        assert (count, exact) == (999, True)
    finally:
        conn.close()
