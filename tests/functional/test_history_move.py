"""Step history_move: old rows go to the history database, exactly once, never ahead of the console."""

import json

import pytest

from harness.history_move_seed import assert_conserved, link, old_rows_left, original_of, rows, seed, snapshot
from harness.maint_seed import DAY, NOW, engine_run, step, tconfig
from harness.mariadb import ROOT_PASSWORD

from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConfigError

MOVE = ["history_move"]


def moved(result):
    return dict((s["table"], s["rows"]) for s in result["steps"] if s["name"] == "history_move"
                and not s["skipped_reason"])


def test_move_check_mode_rerun(pandora_db, history_db):
    link(pandora_db, history_db, days=30, step=50)
    seed(pandora_db)
    original = original_of(pandora_db)
    expected = dict((t, pandora_db.scalar(sql, (NOW - 30 * DAY,))) for t, sql in (
        ("tagente_datos", "SELECT COUNT(*) FROM tagente_datos WHERE utimestamp < %s"),
        ("tagente_datos_string", "SELECT COUNT(*) FROM tagente_datos_string WHERE utimestamp < %s"),
        ("tevento", "SELECT COUNT(*) FROM tevento WHERE utimestamp < %s"),
        ("ttrap", "SELECT COUNT(*) FROM ttrap WHERE `timestamp` < FROM_UNIXTIME(%s)")))
    assert all(expected.values())
    before = snapshot(pandora_db, history_db)
    plan = engine_run(pandora_db, steps=MOVE, check_mode=True)
    assert snapshot(pandora_db, history_db) == before
    assert moved(plan) == expected and plan["changed"] is True

    res = engine_run(pandora_db, steps=MOVE)
    assert moved(res) == expected and res["changed"] is True
    assert_conserved(original, pandora_db, history_db, days=30)
    assert old_rows_left(pandora_db) == 0
    data = step_of(res, "tagente_datos")
    assert data["details"]["lag_seconds"] == 0
    assert data["details"]["blocks"] >= expected["tagente_datos"] // 50
    # the oversized (second, module) pair is one block; every other block holds at most the step
    assert data["details"]["max_block_rows"] == 120
    ev = step_of(res, "tevento")["details"]
    assert ev["child_rows"]["tevent_extended"] == rows(history_db, "tevent_extended").__len__()
    # event ids kept, children attached on the history side
    assert history_db.scalar("SELECT COUNT(*) FROM tevent_extended x LEFT JOIN tevento e USING (id_evento)"
                             " WHERE e.id_evento IS NULL") == 0
    assert ROOT_PASSWORD not in json.dumps(res, default=str)

    again = engine_run(pandora_db, steps=MOVE)
    assert again["changed"] is False and not any(moved(again).values())
    assert_conserved(original, pandora_db, history_db, days=30)


def step_of(result, table):
    found = [s for s in result["steps"] if s["name"] == "history_move" and s["table"] == table]
    assert len(found) == 1
    return found[0]


def test_never_ahead_of_the_console(pandora_db, history_db):
    """Strings, events and traps with fewer days than history_db_days still wait for history_db_days."""
    link(pandora_db, history_db, days=30, step=40, history_db_adv=1, history_db_string_days=5,
         history_event_days=3, history_trap_days=2)
    seed(pandora_db)
    original = original_of(pandora_db)
    res = engine_run(pandora_db, steps=MOVE)
    assert_conserved(original, pandora_db, history_db, days=30)
    assert old_rows_left(pandora_db, days=30) == 0
    for table in ("tagente_datos_string", "tevento", "ttrap"):
        assert step_of(res, table)["threshold"]["value"] == 30
    assert any("lower than history_db_days" in w for w in res["warnings"])
    # larger days are honoured
    tconfig(pandora_db, history_db_string_days=40)
    seed_more = pandora_db.scalar("SELECT COUNT(*) FROM tagente_datos_string")
    assert seed_more > 0
    assert history_db.scalar("SELECT MAX(utimestamp) FROM tagente_datos") < NOW - 30 * DAY


def test_max_runtime_stops_between_blocks_and_resumes(pandora_db, history_db):
    link(pandora_db, history_db, days=30, step=20, delay=0)
    seed(pandora_db)
    original = original_of(pandora_db)
    res = engine_run(pandora_db, steps=MOVE, max_runtime=0.3, extra_options={"history_db_delay": 0.05})
    assert res["stopped_early"] is True and res["interrupted_step"] == "history_move"
    assert res["rows_left"] > 0
    assert_conserved(original, pandora_db, history_db, days=30)
    res = engine_run(pandora_db, steps=MOVE)
    assert res["changed"] is True
    assert old_rows_left(pandora_db) == 0
    assert_conserved(original, pandora_db, history_db, days=30)


def test_late_row_after_interrupted_copy(pandora_db, history_db):
    """State B with a changed range on main: the copy is undone (no key) or copied again (key)."""
    link(pandora_db, history_db, days=30, step=50)
    seed(pandora_db, data=300, strings=50, events=60, traps=20)
    original = original_of(pandora_db)

    def crash_after_history_commit(target):
        def hook(table, count, sql):
            if sql == "history_move:copied" and table == target:
                raise RuntimeError("simulated crash")
        return hook

    def journal(table):
        return json.loads(history_db.scalar("SELECT value FROM tconfig WHERE token = %s",
                                            ("history_move_copied_%s" % table,)))

    with pytest.raises(RuntimeError):
        engine_run(pandora_db, steps=MOVE, statement_hook=crash_after_history_commit("tagente_datos"))
    rng = journal("tagente_datos")["range"]
    assert rows(pandora_db, "tagente_datos") & rows(history_db, "tagente_datos")  # state B: on both sides
    late = (999, 1.5, rng["lo"])
    pandora_db.query("INSERT INTO tagente_datos VALUES (%s, %s, %s)", late)
    original["tagente_datos"][late] += 1

    with pytest.raises(RuntimeError):
        engine_run(pandora_db, steps=MOVE, statement_hook=crash_after_history_commit("tevento"))
    assert journal("tagente_datos").get("aborted") is True or journal("tagente_datos")["range"] != rng
    event_rng = journal("tevento")["range"]
    pandora_db.query("UPDATE tevento SET evento = 'changed later' WHERE id_evento = %s", (event_rng["lo"],))
    original["tevento"] = rows(pandora_db, "tevento") + (rows(history_db, "tevento") - rows(pandora_db, "tevento"))
    original["tevento"] = fix_changed_event(original["tevento"], event_rng["lo"])

    res = engine_run(pandora_db, steps=MOVE)
    assert step_of(res, "tevento")["details"]["resumed_range"] == event_rng
    assert_conserved(original, pandora_db, history_db, days=30)
    assert old_rows_left(pandora_db) == 0
    assert history_db.scalar("SELECT evento FROM tevento WHERE id_evento = %s", (event_rng["lo"],)) == "changed later"


def fix_changed_event(counter, event_id):
    """The original events with the one changed on main after the interrupted copy (the main version wins)."""
    by_id = {}
    for row, n in counter.items():
        if row[0] != event_id or row[6] == "changed later":
            by_id[row[0]] = row
    import collections
    return collections.Counter(by_id.values())


def test_settings_are_validated_before_anything_changes(pandora_db, history_db):
    link(pandora_db, history_db, days=30)
    tconfig(pandora_db, history_db_days="thirty")
    seed(pandora_db, data=10, strings=5, events=5, traps=5)
    tconfig(pandora_db, days_purge=1)
    before = snapshot(pandora_db, history_db)
    purge_before = pandora_db.scalar("SELECT COUNT(*) FROM tagente_datos")
    with pytest.raises(ConfigError, match="history_db_days"):
        engine_run(pandora_db)
    with pytest.raises(ConfigError, match="history_db_step"):
        engine_run(pandora_db, extra_options={"history_db_days": 30, "history_db_step": -1})
    assert snapshot(pandora_db, history_db) == before
    assert pandora_db.scalar("SELECT COUNT(*) FROM tagente_datos") == purge_before


def test_disabled_or_no_days_skips(pandora_db, history_db):
    link(pandora_db, history_db, days=0)
    seed(pandora_db, data=10, strings=5, events=5, traps=5)
    res = engine_run(pandora_db, steps=MOVE)
    assert step(res, "history_move")["skipped_reason"] == "history_db_days is 0"
    tconfig(pandora_db, history_db_enabled=0)
    res = engine_run(pandora_db, steps=MOVE, extra_options={"history_db_days": 30})
    assert step(res, "history_move")["skipped_reason"] == "tconfig history_db_enabled is not 1"
    assert history_db.scalar("SELECT COUNT(*) FROM tagente_datos") == 0


def test_move_then_history_purge_in_one_run(pandora_db, history_db):
    """The history database's own purge runs after the move, on what the move brought."""
    link(pandora_db, history_db, days=30, step=500)
    tconfig(history_db, days_purge=50, string_purge=365, event_purge=365, trap_history_purge=365)
    seed(pandora_db, data=600, strings=20, events=10, traps=10)
    res = engine_run(pandora_db, steps=["history_move", "history_purge"])
    assert moved(res)["tagente_datos"] > 0
    assert step(res, "history_module_data")["rows"] > 0
    assert history_db.scalar("SELECT MIN(utimestamp) FROM tagente_datos") >= NOW - 50 * DAY
    assert history_db.scalar("SELECT MAX(utimestamp) FROM tagente_datos") < NOW - 30 * DAY


def test_module_options_check_then_real(pandora_db, history_db, playbook):
    """Through ansible-playbook: the options override tconfig, the password comes from history_login_password."""
    link(pandora_db, history_db, days=300, step=5, history_db_pass="wrong")
    seed(pandora_db, data=200, strings=20, events=10, traps=10, big_second=5)
    original = original_of(pandora_db)
    args = dict(pandora_db.login(), require_master=False, steps=["history_move"], history_db_days=30,
                history_db_step=100, history_db_delay=0, history_login_password=ROOT_PASSWORD)
    env = {"PANDORAFMS_SERVER_TEST_NOW": str(NOW)}
    task = {"pandorafms.server.pandora_db_maintain": args, "register": "out", "environment": env}
    check = playbook.run([task], check=True, expect_rc=0).last
    assert check["changed"] is True and moved(check)["tagente_datos"] > 0
    assert rows(history_db, "tagente_datos") == original_of(history_db)["tagente_datos"] == {}
    real = playbook.run([task], expect_rc=0).last
    assert moved(real) == moved(check)
    assert step_of(real, "tagente_datos")["threshold"] == {
        "key": "history_db_days", "value": 30, "unit": "days", "source": "option", "cutoff": NOW - 30 * DAY}
    assert_conserved(original, pandora_db, history_db, days=30)
    again = playbook.run([task], expect_rc=0).last
    assert again["changed"] is False
    assert ROOT_PASSWORD not in json.dumps(real) + json.dumps(check)
    bad = playbook.run([{"pandorafms.server.pandora_db_maintain": dict(args, history_db_step=500000),
                         "environment": env}]).last
    assert bad["failed"] is True and "history_db_step" in bad["msg"]
