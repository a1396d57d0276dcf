"""The runner against the real server: master check, lock, thresholds, idempotency, check mode, batch bound,
max_runtime, the run log, secrets, and the wiring of the compaction step."""

import json
import re
import sys
import time
import types

import pytest

from harness.maint_seed import (DAY, NOW, engine_run, rows_of, seed_everything, seed_month, settings_for, step,
                                tconfig)
from harness.mariadb import ROOT_PASSWORD

from ansible_collections.pandorafms.server.plugins.module_utils._context import StepResult
from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConfigError, ConnectionFailed, LockBusy
from ansible_collections.pandorafms.server.plugins.module_utils._maintain import run_maintenance

COMPACT_MODULE = "ansible_collections.pandorafms.server.plugins.module_utils._compact"


# -- master check -----------------------------------------------------------------------------------------------
def test_non_master_node_is_skipped_and_changes_nothing(pandora_db):
    seed_month(pandora_db)  # tserver: 'pandora-main' is the running master
    before = pandora_db.checksums()
    res = engine_run(pandora_db, require_master=True, servername="pandora-node2")
    assert res["skipped_reason"] == "not master"
    assert res["changed"] is False and res["steps"] == []
    assert res["server"]["master"] == "pandora-main"
    assert pandora_db.checksums() == before


def test_master_node_runs(pandora_db):
    seed_month(pandora_db)
    res = engine_run(pandora_db, require_master=True, servername="pandora-main")
    assert res["skipped_reason"] is None
    assert step(res, "module_data")["rows"] > 0


def test_no_running_master_means_not_master_unless_bypassed(pandora_db):
    pandora_db.query("INSERT INTO tconfig (token, value) VALUES ('days_purge', '10')")
    pandora_db.query("INSERT INTO tagente_datos VALUES (1, 1, %s)", (NOW - 20 * DAY,))
    res = engine_run(pandora_db, require_master=True, servername="pandora-main")
    assert res["skipped_reason"] == "not master"
    assert pandora_db.scalar("SELECT COUNT(*) FROM tagente_datos") == 1
    res = engine_run(pandora_db, require_master=False)
    assert res["skipped_reason"] is None
    assert pandora_db.scalar("SELECT COUNT(*) FROM tagente_datos") == 0


# -- lock -------------------------------------------------------------------------------------------------------
def test_second_run_fails_fast_while_the_lock_is_held(pandora_db):
    holder = pandora_db.connect()
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT GET_LOCK(%s, 0)", ("%s_pandora_db" % pandora_db.name,))
            assert cur.fetchone()[0] == 1
        started = time.time()
        with pytest.raises(LockBusy) as err:
            engine_run(pandora_db)
        assert time.time() - started < 5
        assert "another maintenance run holds the lock %s_pandora_db" % pandora_db.name in str(err.value)
    finally:
        holder.close()
    assert engine_run(pandora_db)["skipped_reason"] is None  # the lock went with the holder's connection


def test_second_engine_run_fails_fast_while_a_first_one_runs(pandora_db):
    import threading
    seed_month(pandora_db)
    first = {}
    thread = threading.Thread(target=lambda: first.update(engine_run(pandora_db, batch_size=20, batch_sleep=0.02)))
    thread.start()
    try:
        deadline = time.time() + 20
        while pandora_db.scalar("SELECT IS_USED_LOCK(%s)", ("%s_pandora_db" % pandora_db.name,)) is None:
            assert time.time() < deadline and thread.is_alive(), "the first run never took the lock"
            time.sleep(0.05)
        started = time.time()
        with pytest.raises(LockBusy) as err:
            engine_run(pandora_db)
        assert time.time() - started < 5
        assert "another maintenance run holds the lock" in str(err.value)
    finally:
        thread.join(120)
    assert first["changed"] is True and first["stopped_early"] is False


def test_lock_timeout_waits_for_the_holder(pandora_db):
    holder = pandora_db.connect()
    with holder.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, 0)", ("%s_pandora_db" % pandora_db.name,))
    import threading
    threading.Timer(1.0, holder.close).start()
    res = engine_run(pandora_db, lock_timeout=20)
    assert res["skipped_reason"] is None


def test_running_merge_blocks_the_run(pandora_db):
    holder = pandora_db.connect()
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT GET_LOCK('merge-working', 0)")
        with pytest.raises(LockBusy) as err:
            engine_run(pandora_db)
        assert "Merge is running" in str(err.value)
    finally:
        holder.close()


# -- thresholds -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("token, value", [("event_purge", "abc"), ("days_purge", "-5"), ("session_timeout", "-2"),
                                          ("small_operation_step_datos_purge", "lots")])
def test_bad_tconfig_value_is_a_clear_error_naming_the_key(pandora_db, token, value):
    tconfig(pandora_db, **{token: value})
    pandora_db.query("INSERT INTO tagente_datos VALUES (1, 1, 1)")
    before = pandora_db.checksums()
    with pytest.raises(ConfigError) as err:
        engine_run(pandora_db)
    assert "tconfig token %s" % token in str(err.value)
    assert pandora_db.checksums() == before


@pytest.mark.parametrize("key", ["days_purge", "event_purge", "delete_disabled_agents"])
def test_negative_option_is_a_clear_error(pandora_db, key):
    with pytest.raises(ConfigError) as err:
        engine_run(pandora_db, thresholds={key: -1})
    assert "option %s" % key in str(err.value)


def test_bad_token_of_a_step_not_selected_does_not_matter(pandora_db):
    tconfig(pandora_db, event_purge="abc")
    res = engine_run(pandora_db, steps=["integrity"])
    assert res["skipped_reason"] is None


# -- idempotency and check mode ---------------------------------------------------------------------------------
def test_check_mode_changes_nothing_and_predicts_the_real_run_exactly(pandora_db):
    seed_everything(pandora_db)
    before = pandora_db.checksums()
    plan = engine_run(pandora_db, check_mode=True, diff=True)
    assert pandora_db.checksums() == before
    assert plan["changed"] is True
    real = engine_run(pandora_db, diff=True)
    predicted, done = rows_of(plan), rows_of(real)
    assert predicted == done
    # Every kind of step had work in this seed.
    busy = set(key[1] for key, rows in done.items() if rows)
    for name in ("module_data", "string_data", "events", "audit", "audit_extended", "extended_sessions", "traps",
                 "gis_data", "inventory", "export_data", "php_sessions", "planned_downtimes", "disabled_agents",
                 "autodisabled_agents", "pending_modules", "pending_modules_status", "pending_modules_parents",
                 "pending_modules_second_pass", "report_contents_modules", "report_items", "report_sla_items",
                 "report_contents_agents", "report_contents_agents_second_pass", "report_items_second_pass",
                 "report_contents_empty_exception", "report_contents_empty_exception_second_pass",
                 "report_contents_empty_sla", "special_days", "messages",
                 "console_cache", "notinit_modules", "unknown_modules", "old_notinit_modules", "missing_status",
                 "missing_module_status", "empty_aliases", "group_stats", "orphan_modules", "orphan_status",
                 "orphan_inc_data", "discovery_tasks"):
        assert name in busy, name
    for name in ("disabled_agents", "autodisabled_agents", "pending_modules"):
        assert step(plan, name)["details"]["rows_by_table"] == step(real, name)["details"]["rows_by_table"], name
    assert plan["diff"]["after"] == real["diff"]["after"]
    assert plan["diff"]["before"] == real["diff"]["before"]
    assert plan["totals"] == real["totals"]


def test_second_run_changes_nothing(pandora_db):
    seed_everything(pandora_db)
    first = engine_run(pandora_db)
    assert first["changed"] is True
    checksums = pandora_db.checksums()
    second = engine_run(pandora_db, now=NOW + 60)
    assert second["changed"] is False, [(s["name"], s["rows"]) for s in second["steps"] if s["rows"]]
    after = pandora_db.checksums()
    del checksums["tconfig"], after["tconfig"]  # db_maintance is stamped on every run
    assert after == checksums
    assert pandora_db.scalar("SELECT value FROM tconfig WHERE token = 'db_maintance'") == str(NOW + 60)


# -- batch bound ------------------------------------------------------------------------------------------------
def test_no_statement_changes_more_than_batch_size_rows(pandora_db, main_server):
    seed_everything(pandora_db)
    seen = []
    server = main_server.connect()
    try:
        with server.cursor() as cur:
            cur.execute("SELECT @@global.log_output, @@global.long_query_time, @@global.slow_query_log")
            saved = cur.fetchone()
            cur.execute("TRUNCATE mysql.slow_log")
            cur.execute("SET GLOBAL log_output = 'TABLE', GLOBAL long_query_time = 0, GLOBAL slow_query_log = 1")
        try:
            res = engine_run(pandora_db, batch_size=7, statement_hook=lambda table, rows, sql: seen.append(rows))
        finally:
            with server.cursor() as cur:
                cur.execute("SET GLOBAL slow_query_log = %s, GLOBAL long_query_time = %s, GLOBAL log_output = %s",
                            (saved[2], saved[1], saved[0]))
        with server.cursor() as cur:
            cur.execute("SELECT rows_affected, LEFT(sql_text, 80) FROM mysql.slow_log WHERE db = %s AND"
                        " (sql_text LIKE 'DELETE%%' OR sql_text LIKE 'UPDATE%%' OR sql_text LIKE 'INSERT%%')",
                        (pandora_db.name,))
            logged = cur.fetchall()
            cur.execute("TRUNCATE mysql.slow_log")
    finally:
        server.close()
    writes = [(rows, text) for rows, text in logged if "tconfig" not in text]
    assert len(writes) > 100
    assert max(w[0] for w in writes) == 7, sorted(writes)[-3:]  # full batches happened, none bigger
    assert max(seen) == 7 and len(seen) == len(writes)
    assert step(res, "module_data")["details"]["max_statement_rows"] == 7
    assert step(res, "module_data")["rows"] > 700


# -- max_runtime ------------------------------------------------------------------------------------------------
def test_max_runtime_stops_cleanly_between_batches_and_reports_what_is_left(pandora_db):
    seed_month(pandora_db)
    total = pandora_db.scalar("SELECT COUNT(*) FROM tagente_datos WHERE utimestamp < %s", (NOW - 30 * DAY,))
    res = engine_run(pandora_db, batch_size=50, batch_sleep=0.05, max_runtime=1.0)
    assert res["stopped_early"] is True
    assert res["interrupted_step"] == "module_data"
    done = step(res, "module_data")["rows"]
    assert 0 < done < total
    assert res["rows_left"] == total - done == pandora_db.scalar(
        "SELECT COUNT(*) FROM tagente_datos WHERE utimestamp < %s", (NOW - 30 * DAY,))
    assert "events" in res["remaining_steps"] and "group_stats" in res["remaining_steps"]
    assert res["changed"] is True
    assert pandora_db.scalar("SELECT COUNT(*) FROM tconfig WHERE token = 'db_maintance'") == 0
    assert any("max_runtime" in line for line in res["log"])
    rest = engine_run(pandora_db)
    assert rest["stopped_early"] is False
    assert step(rest, "module_data")["rows"] == total - done
    assert pandora_db.scalar("SELECT COUNT(*) FROM tconfig WHERE token = 'db_maintance'") == 1


# -- log --------------------------------------------------------------------------------------------------------
def test_run_log_in_upstream_format(pandora_db, tmp_path):
    seed_month(pandora_db)
    log_file = tmp_path / "pandora_db.log"
    res = engine_run(pandora_db, log_file=str(log_file))
    lines = log_file.read_text().splitlines()
    assert lines == res["log"]
    assert lines[0].startswith("Pandora FMS DB Tool")
    assert re.match(r"^Starting at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", lines[3])
    assert "DB Tool now initialized and running (PURGE=30 days, COMPACT=0 days, STEP=1) ." in lines
    assert re.match(r"^Ending at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", lines[-1])
    purge = [line for line in lines if re.match(r"^\d\d:\d\d:\d\d \[PURGE\] ", line)]
    assert any(line.endswith("[PURGE] Deleting old data from tagente_datos.") for line in purge)
    assert any(re.match(r"^\d\d:\d\d:\d\d \[CHECKDB\] ", line) for line in lines)
    assert any(re.match(r"^\d\d:\d\d:\d\d \[INTEGRITY\] ", line) for line in lines)


def test_progress_lines_for_long_steps(pandora_db):
    seed_month(pandora_db)
    res = engine_run(pandora_db, steps=["purge"], batch_size=20)
    pattern = re.compile(r"\[PURGE\] Deleting old data from tagente_datos\. \d+%$")
    progress = [line for line in res["log"] if pattern.search(line)]
    assert len(progress) >= 3


# -- secrets ----------------------------------------------------------------------------------------------------
def test_password_never_in_results_or_errors(pandora_db):
    seed_month(pandora_db)
    res = engine_run(pandora_db, diff=True)
    assert ROOT_PASSWORD not in json.dumps(res, default=str)
    settings = settings_for(pandora_db)
    settings.password = "Not-the-Real-0ne"
    with pytest.raises(ConnectionFailed) as err:
        run_maintenance(settings, None, require_master=False)
    assert "Not-the-Real-0ne" not in str(err.value) and "Access denied" in str(err.value)


# -- compaction wiring ------------------------------------------------------------------------------------------
def test_compaction_step_is_called_at_its_place_with_the_options(pandora_db, history_db, monkeypatch):
    calls = []
    purged = []

    class FakeCompactStep(object):
        name = "compact"

        def __init__(self, database="main"):
            self.database = database

        def plan(self, ctx):
            return self.run(ctx, mode="plan")

        def run(self, ctx, mode="run"):
            conn = ctx.history_conn if self.database == "history" else ctx.conn
            with conn.cursor() as cur:
                cur.execute("SELECT DATABASE()")
                name = cur.fetchone()[0]
            calls.append((mode, self.database, name, ctx.options.get("days_compact"),
                          ctx.options.get("step_compact"), ctx.options.get("compact_row_budget")))
            purged.append(ctx.purged_before.get((self.database, "tagente_datos")))
            return [StepResult("compact", "tagente_datos", rows=0, database=self.database)]

    fake = types.ModuleType(COMPACT_MODULE)
    fake.CompactStep = FakeCompactStep
    monkeypatch.setitem(sys.modules, COMPACT_MODULE, fake)
    tconfig(pandora_db, history_db_enabled=1, history_db_host="127.0.0.1", history_db_port=history_db.server.port,
            history_db_user="root", history_db_pass=ROOT_PASSWORD, history_db_name=history_db.name, days_purge=40)
    tconfig(history_db, days_purge=200)
    extra = {"days_compact": 30, "step_compact": 2, "compact_row_budget": 1000}
    res = engine_run(pandora_db, extra_options=extra)
    engine_run(pandora_db, extra_options=extra, check_mode=True)
    assert calls == [("run", "main", pandora_db.name, 30, 2, 1000), ("run", "history", history_db.name, 30, 2, 1000),
                     ("plan", "main", pandora_db.name, 30, 2, 1000), ("plan", "history", history_db.name, 30, 2, 1000)]
    # What the purge removes (in check mode: would remove) before compaction looks at the data.
    assert purged == [NOW - 40 * DAY, NOW - 200 * DAY] * 2
    names = [s["name"] for s in res["steps"]]
    assert names.index("compact") > names.index("orphan_inc_data")  # after INTEGRITY
    assert names.index("compact") < names.index("discovery_tasks")
    assert names.index("history_module_data") < len(names) - 1 - names[::-1].index("compact")
    res = engine_run(pandora_db, steps=["purge"], extra_options=extra)
    assert "compact" not in [s["name"] for s in res["steps"]]


def test_runner_works_without_the_compaction_module(pandora_db, monkeypatch):
    monkeypatch.setitem(sys.modules, COMPACT_MODULE, None)  # "import" raises ImportError
    res = engine_run(pandora_db, steps=["compact"])
    assert step(res, "compact")["skipped_reason"] == "compaction is not available in this version of the collection"


# -- errors are never swallowed ---------------------------------------------------------------------------------
def test_a_failing_statement_stops_the_run_naming_the_table(pandora_db):
    from ansible_collections.pandorafms.server.plugins.module_utils._errors import OperationFailed
    seed_month(pandora_db)
    pandora_db.query("CREATE TRIGGER no_event_delete BEFORE DELETE ON tevento FOR EACH ROW"
                     " SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'events are read-only today'")
    with pytest.raises(OperationFailed) as err:
        engine_run(pandora_db)
    assert "PURGE step failed on table tevento" in str(err.value)
    assert "events are read-only today" in str(err.value)
    done = [s["name"] for s in err.value.details["steps"]]
    assert "module_data" in done and "events" not in done  # what ran before the failure is reported
    assert pandora_db.scalar("SELECT COUNT(*) FROM tconfig WHERE token = 'db_maintance'") == 0
    # The lock went with the failed run.
    assert engine_run(pandora_db, steps=["integrity"])["skipped_reason"] is None
