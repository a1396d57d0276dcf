"""The history database purge (reference 8.2) with the history database's own tconfig."""

import json

import pytest

from harness.maint_seed import DAY, NOW, dt, engine_run, ids, rows_of, step, tconfig
from harness.mariadb import ROOT_PASSWORD

from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConnectionFailed, PreconditionFailed


def _link(main, history, password=ROOT_PASSWORD):
    tconfig(main, history_db_enabled=1, history_db_host="127.0.0.1", history_db_port=history.server.port,
            history_db_user="root", history_db_pass=password, history_db_name=history.name)


def _seed_history(history):
    tconfig(history, days_purge=180, event_purge=30, trap_history_purge=60, string_purge=None)
    for ts in (NOW - 180 * DAY - 1, NOW - 180 * DAY, NOW - 50 * DAY):
        history.query("INSERT INTO tagente_datos VALUES (1, 1, %s)", (ts,))
    for ts in (NOW - 7 * DAY - 1, NOW - 7 * DAY):  # string_purge unset: upstream default 7
        history.query("INSERT INTO tagente_datos_string VALUES (1, 's', %s)", (ts,))
    for ts in (NOW - 30 * DAY - 1, NOW - 30 * DAY):
        history.query("INSERT INTO tevento (id_agente, utimestamp, `timestamp`) VALUES (1, %s, %s)", (ts, dt(ts)))
    for ts in (NOW - 60 * DAY - 1, NOW - 60 * DAY):
        history.query("INSERT INTO ttrap (source, `timestamp`, utimestamp) VALUES ('s', %s, %s)", (dt(ts), ts))


def test_history_purge_uses_the_history_tconfig(pandora_db, history_db):
    _link(pandora_db, history_db)
    tconfig(pandora_db, days_purge=30, event_purge=3, trap_purge=3)  # main rules must not touch the history DB
    _seed_history(history_db)
    pandora_db.query("INSERT INTO tagente_datos VALUES (1, 1, %s)", (NOW - 31 * DAY,))
    before = history_db.checksums()
    plan = engine_run(pandora_db, check_mode=True)
    assert history_db.checksums() == before
    res = engine_run(pandora_db)
    assert rows_of(plan) == rows_of(res)
    assert res["history_database"] == history_db.name
    assert ids(history_db, "SELECT utimestamp FROM tagente_datos") == [NOW - 180 * DAY, NOW - 50 * DAY]
    assert ids(history_db, "SELECT utimestamp FROM tagente_datos_string") == [NOW - 7 * DAY]
    assert ids(history_db, "SELECT utimestamp FROM tevento") == [NOW - 30 * DAY]
    assert ids(history_db, "SELECT utimestamp FROM ttrap") == [NOW - 60 * DAY]
    assert pandora_db.scalar("SELECT COUNT(*) FROM tagente_datos") == 0
    s = step(res, "history_module_data")
    assert (s["database"], s["rows"], s["threshold"]["value"]) == ("history", 1, 180)
    assert step(res, "history_string_data")["threshold"]["source"] == "default"
    for token in ("db_maintance", "db_maintenance"):
        assert history_db.scalar("SELECT value FROM tconfig WHERE token = %s", (token,)) == str(NOW)
    assert pandora_db.scalar("SELECT value FROM tconfig WHERE token = 'db_maintance'") == str(NOW)
    assert "db_maintenance" not in [r[0] for r in pandora_db.query("SELECT token FROM tconfig")]
    assert " [>] DB Tool running on historical database." in res["log"]
    assert ROOT_PASSWORD not in json.dumps(res, default=str)
    again = engine_run(pandora_db)
    assert again["changed"] is False


def test_planned_downtimes_follow_the_history_days_purge(pandora_db, history_db):
    _link(pandora_db, history_db)
    tconfig(pandora_db, days_purge=10)
    tconfig(history_db, days_purge=100)
    pandora_db.query("INSERT INTO tplanned_downtime (id, name, date_to, type_execution) VALUES"
                     " (1, 'a', %s, 'once'), (2, 'b', %s, 'once')", (NOW - 101 * DAY, NOW - 50 * DAY))
    res = engine_run(pandora_db, steps=["purge", "history_purge"])
    assert ids(pandora_db, "SELECT id FROM tplanned_downtime") == [2]
    assert step(res, "planned_downtimes")["threshold"]["value"] == 100


def test_history_options_override_tconfig(pandora_db, history_db):
    tconfig(history_db, days_purge=5)
    history_db.query("INSERT INTO tagente_datos VALUES (1, 1, %s), (1, 1, %s)", (NOW - 6 * DAY, NOW - 4 * DAY))
    history = {"host": "127.0.0.1", "port": history_db.server.port, "user": "root", "password": ROOT_PASSWORD,
               "db": history_db.name}
    res = engine_run(pandora_db, steps=["history_purge"], history=history)
    assert ids(history_db, "SELECT utimestamp FROM tagente_datos") == [NOW - 4 * DAY]
    engine_run(pandora_db, steps=["history_purge"], history=history, thresholds={"history_days_purge": 3})
    assert history_db.scalar("SELECT COUNT(*) FROM tagente_datos") == 0
    assert step(res, "history_module_data")["threshold"]["source"] == "tconfig"


def test_no_history_database_configured_is_a_note(pandora_db):
    res = engine_run(pandora_db, steps=["history_purge"])
    assert res["history_database"] is None
    assert any("no history database" in note for note in res["notes"])


def test_history_database_that_is_the_main_database_is_refused(pandora_db):
    tconfig(pandora_db, history_db_enabled=1, history_db_host="127.0.0.1", history_db_port=pandora_db.server.port,
            history_db_user="root", history_db_pass=ROOT_PASSWORD, history_db_name=pandora_db.name)
    with pytest.raises(PreconditionFailed) as err:
        engine_run(pandora_db, steps=["history_purge"])
    assert "is the main database" in str(err.value)


def test_history_login_failure_never_shows_the_password(pandora_db, history_db):
    secret = "Wr0ng-history-Pass"
    _link(pandora_db, history_db, password=secret)
    with pytest.raises(ConnectionFailed) as err:
        engine_run(pandora_db, steps=["history_purge"])
    assert secret not in str(err.value)
    assert "history database" in str(err.value)
    assert "history_login_password" in str(err.value)
