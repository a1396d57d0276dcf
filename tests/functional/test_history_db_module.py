"""pandora_history_db through real ansible-playbook against two private MariaDB servers (main and history)."""

import json
import os

import pymysql
import pytest

from harness.collection import REPO
from harness.mariadb import ROOT_PASSWORD, free_port
from harness.schema import FIXTURE

from ansible_collections.pandorafms.server.plugins.module_utils._history_db import account_statements, bind_password

MODULE = "pandorafms.server.pandora_history_db"
REAL_SCHEMA = os.path.join(os.path.dirname(REPO), "shared", "pandora_schema", "pandoradb.sql")
PANDORA_PW = "Hist-Pw_42.secret"
_counter = [0]


@pytest.fixture
def main(pandora_db):
    """The main database: fixture schema, MR 69, a collation that is not the server default."""
    pandora_db.query("ALTER DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci" % pandora_db.name)
    pandora_db.query("INSERT INTO tconfig (token, value) VALUES ('MR', '69'), ('history_db_enabled', '0')")
    return pandora_db


@pytest.fixture
def hist_name(history_server):
    _counter[0] += 1
    name = "pandora_history_%d_%d" % (os.getpid(), _counter[0])
    yield name
    history_server.execute("DROP DATABASE IF EXISTS `%s`" % name)


def _args(main, history_server, dbname, **options):
    args = {
        "login_host": "127.0.0.1", "login_port": history_server.port, "login_user": "root",
        "login_password": ROOT_PASSWORD, "config_file": "", "name": dbname, "schema_file": FIXTURE,
        "main_login_host": "127.0.0.1", "main_login_port": main.server.port, "main_login_user": "root",
        "main_login_password": ROOT_PASSWORD, "main_login_db": main.name, "main_config_file": "",
        "history_db_user": "pandora_h", "history_db_pass": PANDORA_PW,
    }
    args.update(options)
    return args


def _task(main, history_server, dbname, register="out", **options):
    return {MODULE: _args(main, history_server, dbname, **options), "register": register}


def _tconfig(server, db):
    return server.execute("SELECT token, value FROM tconfig ORDER BY id_config", db)


def _databases(server):
    return sorted(r[0] for r in server.execute("SHOW DATABASES"))


def _secret_free(res):
    text = res.stdout + res.stderr
    assert PANDORA_PW not in text and ROOT_PASSWORD not in text
    assert "Traceback" not in text


def test_check_predicts_then_provisions_then_idempotent(main, history_server, hist_name, playbook):
    dbs_before = _databases(history_server)
    main_before = _tconfig(main.server, main.name)
    check = dict(_task(main, history_server, hist_name, register="check"), check_mode=True, diff=True)
    res = playbook.run([check], expect_rc=0)
    predicted = res.last
    # Check mode changed nothing on either side and predicted everything.
    assert _databases(history_server) == dbs_before
    assert _tconfig(main.server, main.name) == main_before
    assert predicted["changed"] is True and predicted["created"] is True and predicted["schema_loaded"] is True
    assert predicted["tconfig"]["history"]["MR"] == {"before": None, "after": "69"}
    assert predicted["tconfig"]["main"]["history_db_pass"] == {"before": None, "after": "********"}

    real_task = dict(_task(main, history_server, hist_name, register="real"), diff=True)
    res = playbook.run([real_task, _task(main, history_server, hist_name, register="again")], expect_rc=0)
    real, again = res.results
    _secret_free(res)
    for key in ("created", "schema_loaded", "tconfig", "mr", "essential_tables", "duplicates_removed"):
        assert real[key] == predicted[key], key
    assert real["changed"] is True and again["changed"] is False
    assert again["tconfig"] == {"history": {}, "main": {}} and again["created"] is False
    assert real["essential_tables"] == dict.fromkeys(("tagente_datos", "tagente_datos_string", "tevento", "tconfig"),
                                                     True)
    # The database has the main database's character set and collation.
    cs = history_server.execute("SELECT default_character_set_name, default_collation_name FROM "
                                "information_schema.schemata WHERE schema_name = %s", args=(hist_name,))
    assert cs == (("utf8mb4", "utf8mb4_unicode_ci"),)
    # History tconfig: one row per token, history disabled there, MR copied from main.
    hist = _tconfig(history_server, hist_name)
    assert len(hist) == len(dict(hist))
    assert dict(hist)["history_db_enabled"] == "0" and dict(hist)["MR"] == "69"
    assert dict(hist)["days_purge"] == "180" and dict(hist)["trap_purge"] == "180"
    mainconf = dict(_tconfig(main.server, main.name))
    assert mainconf["history_db_enabled"] == "1" and mainconf["history_db_name"] == hist_name
    assert mainconf["history_db_host"] == "127.0.0.1" and mainconf["history_db_port"] == str(history_server.port)
    assert mainconf["history_db_pass"] == PANDORA_PW
    assert len(main.query("SELECT 1 FROM tconfig WHERE token = 'history_db_enabled'")) == 1
    # Diff shows tconfig per side with the password masked.
    diff_text = json.dumps(real["diff"])
    assert "history_db_pass: ********" in diff_text and "days_purge: 180" in diff_text
    assert PANDORA_PW not in json.dumps(real) + json.dumps(predicted)

    # The Pandora user (statements built by the engine) reads and writes the history tables.
    conn = history_server.connect()
    try:
        with conn.cursor() as cur:
            for sql, params in bind_password(account_statements("pandora_h", hist_name, ["127.0.0.1"]), PANDORA_PW):
                cur.execute(sql, params)
    finally:
        conn.close()
    user = pymysql.connect(host="127.0.0.1", port=history_server.port, user="pandora_h", password=PANDORA_PW,
                           database=hist_name, autocommit=True)
    try:
        with user.cursor() as cur:
            cur.execute("INSERT INTO tagente_datos (id_agente_modulo, datos, utimestamp) VALUES (7, 1.5, 100)")
            cur.execute("SELECT datos FROM tagente_datos WHERE id_agente_modulo = 7")
            assert cur.fetchall() == ((1.5,),)
            cur.execute("DELETE FROM tagente_datos WHERE id_agente_modulo = 7")
    finally:
        user.close()
    history_server.execute("DROP USER IF EXISTS 'pandora_h'@'127.0.0.1'")


def test_real_pandoradb_sql_loads(main, history_server, hist_name, playbook):
    if not os.path.isfile(REAL_SCHEMA):
        pytest.skip("../shared/pandora_schema/pandoradb.sql is absent; the fixture schema is loaded by the other tests")
    # The server default sql_mode is strict; the module must set sql_mode='' for the session itself.
    history_server.execute("SET GLOBAL sql_mode = 'TRADITIONAL'")
    try:
        res = playbook.run([_task(main, history_server, hist_name, schema_file=REAL_SCHEMA)], expect_rc=0)
    finally:
        history_server.execute("SET GLOBAL sql_mode = DEFAULT")
    out = res.last
    assert out["schema_loaded"] is True and out["missing_tables"] == []
    assert out["statements"]["run"] >= 227
    count = history_server.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s",
                                   args=(hist_name,))[0][0]
    assert count == 227


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def test_partial_schema_reported_then_completed_with_force(main, history_server, hist_name, playbook, tmp_path):
    fixture = open(FIXTURE).read()
    cut = fixture.index("CREATE TABLE IF NOT EXISTS `tevento`")
    broken = _write(tmp_path, "broken.sql", fixture[:cut] + "CREATE TABLE `tbroken` (id INT,, x);\n" + fixture[cut:])
    line = fixture[:cut].count("\n") + 1
    tasks = [dict(_task(main, history_server, hist_name, register="broken", schema_file=broken), ignore_errors=True),
             dict(_task(main, history_server, hist_name, register="again"), ignore_errors=True),
             _task(main, history_server, hist_name, register="forced", force=True),
             _task(main, history_server, hist_name, register="after")]
    res = playbook.run(tasks, expect_rc=0)
    _secret_free(res)
    failed, partial, forced, after = res.results
    assert failed["failed"] and "line %d" % line in failed["msg"] and "force: true" in failed["msg"]
    assert "tbroken" in failed["msg"] and "tevento" in failed["missing_tables"]
    assert "tagente_datos" in failed["existing_tables"] and failed["failed_statement"]["line"] == line
    # A rerun without force reports the missing tables and changes nothing.
    assert partial["failed"] and "partial schema" in partial["msg"] and "tevento" in partial["missing_tables"]
    assert "force: true" in partial["msg"]
    assert forced["changed"] is True and forced["missing_tables"] == [] and forced["statements"]["skipped"] > 0
    assert after["changed"] is False
    assert history_server.execute("SHOW TABLES LIKE 'tevento'", hist_name)


def _absent(main, register):
    return {MODULE: {"main_login_host": "127.0.0.1", "main_login_port": main.server.port, "main_login_user": "root",
                     "main_login_password": ROOT_PASSWORD, "main_login_db": main.name, "main_config_file": "",
                     "config_file": "", "state": "absent"}, "register": register}


def test_duplicates_removed_lower_mr_reported_then_absent(main, history_server, hist_name, playbook):
    playbook.run([_task(main, history_server, hist_name, history_event_enabled=True)], expect_rc=0)
    history_server.execute("UPDATE tconfig SET value = '60' WHERE token = 'MR'", hist_name)
    history_server.execute("INSERT INTO tconfig (token, value) VALUES ('days_purge', '7'), ('foo', 'a'), ('foo', 'b')",
                           hist_name)
    main.query("INSERT INTO tconfig (token, value) VALUES ('history_db_days', '3')")
    # Without the schema file the completeness check falls back to the four essential tables, with a warning.
    present = _task(main, history_server, hist_name, history_event_enabled=True,
                    schema_file="/nonexistent/pandoradb.sql")
    res = playbook.run([present, _absent(main, "a"), _absent(main, "b")], expect_rc=0)
    _secret_free(res)
    out, first, second = res.results
    assert any("essential tables only" in w for w in out["warnings"])
    assert out["changed"] is True and out["schema_behind"] is True
    assert out["mr"] == {"main": "69", "history": "60"}
    assert out["duplicates_removed"]["history"] == {"days_purge": 1, "foo": 1}
    assert out["duplicates_removed"]["main"] == {"history_db_days": 1}
    assert any("behind" in w for w in out["warnings"])
    hist = _tconfig(history_server, hist_name)
    assert len(hist) == len(dict(hist)) and dict(hist)["foo"] == "a" and dict(hist)["MR"] == "60"
    assert dict(hist)["days_purge"] == "180"
    assert main.query("SELECT value FROM tconfig WHERE token = 'history_db_days'") == (("30",),)
    # state=absent: the main side only, history data and tconfig untouched; then nothing left to do.
    assert first["changed"] is True and second["changed"] is False
    assert set(first["tconfig"]["main"]) == {"history_db_enabled", "history_event_enabled"}
    mainconf = dict(_tconfig(main.server, main.name))
    assert mainconf["history_db_enabled"] == "0" and mainconf["history_event_enabled"] == "0"
    assert mainconf["history_trap_enabled"] == "0"
    assert _tconfig(history_server, hist_name) == hist


def test_errors_are_clear_and_leak_nothing(main, history_server, hist_name, playbook, tmp_path):
    not_sql = _write(tmp_path, "random.bin", os.urandom(2048) + b"\x00\xff")
    no_tables = _write(tmp_path, "notes.txt", "hello world\nthis is not a schema\n")
    ahead = "pandora_hist_ahead_%d" % os.getpid()
    history_server.execute("DROP DATABASE IF EXISTS `%s`" % ahead)
    history_server.execute("CREATE DATABASE `%s`" % ahead)
    history_server.execute("CREATE TABLE tconfig (id_config INT AUTO_INCREMENT PRIMARY KEY, token VARCHAR(100), "
                           "value TEXT)", ahead)
    for table in ("tagente_datos", "tagente_datos_string", "tevento"):
        history_server.execute("CREATE TABLE `%s` (id INT)" % table, ahead)
    history_server.execute("INSERT INTO tconfig (token, value) VALUES ('MR', '99')", ahead)

    def t(**kw):
        return dict(_task(main, history_server, hist_name, **kw), ignore_errors=True)

    cases = [
        ("schema_file", t(schema_file=str(tmp_path / "missing.sql"))),
        ("not UTF-8", t(schema_file=not_sql)),
        ("no CREATE TABLE", t(schema_file=no_tables)),
        ("is the main database", t(login_port=main.server.port, name=main.name)),
        ("MR 99", t(name=ahead, schema_file=str(tmp_path / "missing.sql"))),
        ("is the main database", dict(t(login_port=main.server.port, name=main.name), check_mode=True)),
        ("MR 99", dict(t(name=ahead), check_mode=True)),
        ("Check login_user", t(login_password="Wrong-Pw_77")),
        ("main_login_user/main_login_password", t(main_login_password="Wrong-Pw_77")),
        ("reachable", t(login_port=free_port(), connect_timeout=3)),
        ("main_login_db", t(main_login_db="nonexistent_db_xyz")),
        ("history_db_days is 0", t(history_db_days=0)),
        ("strict is true", t(days_purge=20, strict=True)),
    ]
    try:
        res = playbook.run([case for dummy, case in cases], expect_rc=0)
    finally:
        history_server.execute("DROP DATABASE IF EXISTS `%s`" % ahead)
    _secret_free(res)
    assert "Wrong-Pw_77" not in res.stdout + res.stderr
    for (expected, dummy), out in zip(cases, res.results):
        assert out.get("failed") is True, (expected, out)
        assert expected in out["msg"], (expected, out["msg"])
        assert "unexpected error" not in out["msg"]
    # Nothing was created by any failing case, and the main side was never enabled.
    assert hist_name not in _databases(history_server)
    assert main.query("SELECT value FROM tconfig WHERE token = 'history_db_enabled'") == (("0",),)
    # A warning (not strict) for the same retention problem, and the run goes on.
    out = playbook.run([_task(main, history_server, hist_name, days_purge=20)], expect_rc=0).last
    assert any("days_purge (20 days) is not larger than history_db_days (30 days)" in w for w in out["warnings"])
