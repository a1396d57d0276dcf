"""Step ``compact`` against the real server: semantics, fidelity, idempotence, check mode, resume.

Every test builds its own data in a fresh database, runs CompactStep directly
with a Context, and compares what is stored afterwards with what must be
stored, computed independently in Python from the raw points.
"""

import math
import signal
import time

import pytest

from harness import datagen
from harness.compact_checks import (check_marks, check_windows, eligible_modules, module_marks, outside_rows,
                                    same_series, seed_series, series, set_tokens, snapshot, window_means)

from ansible_collections.pandorafms.server.plugins.module_utils import _compact as compact
from ansible_collections.pandorafms.server.plugins.module_utils._compact import CompactStep, window_start
from ansible_collections.pandorafms.server.plugins.module_utils._context import Context
from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConfigError, OperationFailed
from ansible_collections.pandorafms.server.plugins.module_utils._tconfig import TConfig, read_token

DAY = 86400
HOUR = 3600
NOW = 1764001234                       # deliberately not on an hour boundary
BOUNDARY_2D = window_start(NOW - 2 * DAY, HOUR)


def ctx_for(conn, now=NOW, **kwargs):
    return Context(conn, TConfig.load(conn), now=now, **kwargs)


def run(conn, now=NOW, **kwargs):
    ctx = ctx_for(conn, now=now, **kwargs)
    results = CompactStep().run(ctx)
    assert len(results) == 1
    return results[0], ctx


def plan(conn, now=NOW, **kwargs):
    ctx = ctx_for(conn, now=now, check_mode=True, **kwargs)
    results = CompactStep().plan(ctx)
    return results[0], ctx


def table_checksum(conn, table):
    with conn.cursor() as cur:
        cur.execute("CHECKSUM TABLE `%s`" % table)
        return cur.fetchone()[1]


def dense(start, end, every=300, offset=0, value=None):
    value = value or (lambda i, ts: round(50 + 30 * math.sin(i / 40.0) + (i * 7919 % 1000) / 100.0, 3))
    out = []
    ts, i = start + offset, 0
    while ts < end:
        out.append((ts, value(i, ts)))
        ts += every
        i += 1
    return out


@pytest.fixture
def conn(pandora_db):
    c = pandora_db.connect()
    datagen.seed_tconfig(c, {"days_compact": "2", "step_compact": "1", "days_purge": "45"})
    yield c
    c.close()


def fidelity_dataset(conn):
    """Modules of every shape; returns {module id: raw points}."""
    start, end = NOW - 4 * DAY, NOW
    data = {}
    null_window = window_start(start + 7 * HOUR, HOUR)

    def null_some(i, ts):
        if null_window <= ts < null_window + HOUR:    # one whole window of NULLs
            return None
        if i % 17 == 5:
            return None
        return round(20 + 10 * math.cos(i / 25.0) + (i * 31 % 7), 4)

    data[101] = dense(start, end, 300, 17, null_some)                           # dense, with NULLs
    data[102] = dense(start, end, 2 * HOUR, 1234)                               # sparse: 1 point / 2 h
    data[103] = [p for p in dense(start, end, 300, 60) if ((p[0] - start) // (6 * HOUR)) % 2 == 0]  # gappy
    data[104] = [(NOW - 3 * DAY + 777, 42.5)]                                   # a single point
    data[108] = [(BOUNDARY_2D - 3601, 1.0), (BOUNDARY_2D - 3600, 2.0), (BOUNDARY_2D - 1, 4.0),
                 (BOUNDARY_2D, 8.0), (BOUNDARY_2D + 1, 16.0), (NOW - 2 * DAY - 1, 32.0),
                 (NOW - 2 * DAY, 64.0), (NOW - 3 * DAY, 5.0), (NOW - 3 * DAY, 5.0)]  # edges, duplicates
    for module_id in (101, 102, 103, 104, 108):
        seed_series(conn, module_id, data[module_id], type_id=1 if module_id != 103 else 34)
    # Never touched: proc, keep-alive, a string module (with stray numeric rows), orphan data.
    data[105] = dense(start, end, 300, 0, lambda i, ts: i // 7 % 2)
    seed_series(conn, 105, data[105], type_id=2)
    data[106] = dense(start, end, 300, 0, lambda i, ts: 1)
    seed_series(conn, 106, data[106], type_id=100)
    data[107] = dense(start, end, 600, 0)
    seed_series(conn, 107, data[107], type_id=3)
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO tagente_datos_string (id_agente_modulo, datos, utimestamp) VALUES (%s, %s, %s)",
                        [(107, "line %d" % i, ts) for i, (ts, dummy) in enumerate(data[107])])
        cur.executemany("INSERT INTO tagente_datos (id_agente_modulo, datos, utimestamp) VALUES (%s, %s, %s)",
                        [(999, 1.5, ts) for ts, dummy in dense(start, end, 300)])
        cur.execute("INSERT INTO tagente_datos (id_agente_modulo, datos, utimestamp) VALUES"
                    " (101, 3.0, NULL), (101, 4.0, -5)")
    return data


def test_graph_fidelity_for_every_kind_of_module(conn):
    data = fidelity_dataset(conn)
    string_before = table_checksum(conn, "tagente_datos_string")
    outside_before = outside_rows(conn)
    untouched = dict((m, series(conn, m)) for m in (105, 106, 107, 999))
    before = snapshot(conn, HOUR)

    result, ctx = run(conn)

    assert result.skipped_reason is None and result.changed
    for module_id in (101, 102, 103, 104, 108):
        expected = window_means(data[module_id], HOUR, BOUNDARY_2D)
        assert same_series(series(conn, module_id), expected), module_id
    # The shapes really were compacted where they should be, and only there.
    old_windows = set(ts - ts % HOUR for ts, dummy in data[101] if ts < BOUNDARY_2D)
    assert len([p for p in series(conn, 101) if p[0] < BOUNDARY_2D]) == len(old_windows) == 48
    assert series(conn, 102) == sorted(data[102])              # one point per window: nothing to average
    assert series(conn, 104) == data[104]
    nulls = [v for ts, v in series(conn, 101) if ts < BOUNDARY_2D and v is None]
    assert len(nulls) == 1                                     # the all-NULL window kept as one NULL row
    edge = series(conn, 108)
    assert (BOUNDARY_2D - 3600, (2.0 + 4.0) / 2) in edge       # last whole window before the boundary
    assert (BOUNDARY_2D - 3601, 1.0) in edge                   # a window with one raw row: unchanged
    assert (BOUNDARY_2D, 8.0) in edge and (NOW - 2 * DAY - 1, 32.0) in edge  # younger than the boundary
    assert (NOW - 3 * DAY - (NOW - 3 * DAY) % HOUR, 5.0) in edge  # two identical rows -> one
    # Proc, keep-alive, string and orphan data are byte-identical.
    for module_id, points in untouched.items():
        assert series(conn, module_id) == points, module_id
    assert table_checksum(conn, "tagente_datos_string") == string_before
    assert outside_rows(conn) == outside_before
    # The window invariants hold for every window of the table.
    assert check_windows(before, snapshot(conn, HOUR), HOUR, BOUNDARY_2D, eligible_modules(conn), True) == []
    # The result counts what happened.
    expected_windows = sum(1 for (m, w), win in before.items()
                           if m in (101, 103, 108) and (w + 1) * HOUR <= BOUNDARY_2D and win.n > 1)
    expected_rows = sum(win.n for (m, w), win in before.items()
                        if m in (101, 103, 108) and (w + 1) * HOUR <= BOUNDARY_2D and win.n > 1)
    assert result.details["windows"] == expected_windows
    assert result.rows == result.details["rows_deleted"] == expected_rows
    assert result.threshold == BOUNDARY_2D
    assert any("[COMPACT] A total of %d elements has been compacted into %d elements" % (
        expected_rows, expected_windows) in line for line in ctx.log.lines)


def test_rerun_changes_nothing_and_reports_changed_false(conn, pandora_db):
    fidelity_dataset(conn)
    first, unused_ctx = run(conn)
    assert first.changed
    checksums = pandora_db.checksums()
    second, unused_ctx = run(conn)
    assert second.rows == 0 and not second.changed
    assert second.details["windows"] == 0 and second.details["transactions"] == 0
    assert pandora_db.checksums() == checksums
    planned, unused_ctx = plan(conn)
    assert planned.rows == 0 and not planned.changed


def test_check_mode_changes_nothing_and_predicts_the_run(pandora_db):
    conn = pandora_db.connect()
    datagen.generate(conn, now=NOW, agents=2, days=5, events=10, traps=10, sessions=5, audit=10,
                     tconfig={"days_compact": "2", "step_compact": "1"})
    fidelity_dataset(conn)
    rows_before = datagen.summary(conn)["tagente_datos"]
    checksums = pandora_db.checksums()
    planned, unused_ctx = plan(conn)
    assert pandora_db.checksums() == checksums
    assert planned.changed and planned.details["check_mode"] is True
    done, unused_ctx = run(conn)
    assert done.rows == planned.rows > 0
    assert done.details["windows"] == planned.details["windows"]
    assert done.details["modules"] == planned.details["modules"]
    assert done.details["modules_compacted"] == planned.details["modules_compacted"]
    assert done.details["marks_advanced"] == planned.details["marks_advanced"]
    assert datagen.summary(conn)["tagente_datos"] == rows_before - done.rows + done.details["windows"]
    assert [m["id"] for m in done.details["modules"]] == sorted(m["id"] for m in done.details["modules"])


def test_check_mode_through_run_when_context_is_check_mode(conn, pandora_db):
    fidelity_dataset(conn)
    checksums = pandora_db.checksums()
    ctx = ctx_for(conn, check_mode=True)
    result = CompactStep().run(ctx)[0]
    assert result.details.get("check_mode") is True and result.rows > 0
    assert pandora_db.checksums() == checksums


@pytest.mark.parametrize("value", ["0", "-1", "abc", None])
def test_bad_step_compact_is_a_clear_error_never_a_loop(conn, value):
    set_tokens(conn, {"step_compact": value})
    seed_series(conn, 1, dense(NOW - 4 * DAY, NOW))
    signal.alarm(30)                       # a loop would fail the test instead of hanging it
    try:
        started = time.monotonic()
        with pytest.raises(ConfigError) as err:
            run(conn)
        assert time.monotonic() - started < 5
    finally:
        signal.alarm(0)
    assert "step_compact" in str(err.value)
    assert len(series(conn, 1)) == len(dense(NOW - 4 * DAY, NOW))


def test_step_compact_option_zero_is_an_error(conn):
    with pytest.raises(ConfigError) as err:
        run(conn, options={"step_compact": 0})
    assert "step_compact" in str(err.value)


@pytest.mark.parametrize("tokens,reason", [
    ({"days_compact": "0"}, "days_compact is 0"),
    ({"days_compact": None}, "days_compact is 0"),
    ({"days_compact": "45", "days_purge": "45"}, "not lower than days_purge"),
    ({"days_compact": "60", "days_purge": "45"}, "not lower than days_purge"),
])
def test_skipped_as_upstream(conn, pandora_db, tokens, reason):
    set_tokens(conn, tokens)
    seed_series(conn, 1, dense(NOW - 70 * DAY, NOW, 3600))
    checksums = pandora_db.checksums()
    result, ctx = run(conn)
    assert result.skipped_reason and reason in result.skipped_reason
    assert not result.changed
    assert pandora_db.checksums() == checksums
    assert any("Compaction skipped" in line for line in ctx.log.lines)


def test_purge_disabled_does_not_block_compaction(conn):
    set_tokens(conn, {"days_purge": "0"})
    seed_series(conn, 1, dense(NOW - 4 * DAY, NOW))
    result, unused_ctx = run(conn)
    assert result.skipped_reason is None and result.rows > 0


def test_options_override_tconfig(conn):
    set_tokens(conn, {"days_compact": "0", "step_compact": "0"})
    points = dense(NOW - 5 * DAY, NOW)
    seed_series(conn, 1, points)
    result, unused_ctx = run(conn, options={"days_compact": 3, "step_compact": 2, "days_purge": None})
    boundary = window_start(NOW - 3 * DAY, 2 * HOUR)
    assert result.threshold == boundary
    assert same_series(series(conn, 1), window_means(points, 2 * HOUR, boundary))


def test_fewer_than_288_modules_are_compacted(pandora_db):
    """Upstream B1: with fewer than 288 modules 7.0NG.774+ compacts nothing."""
    conn = pandora_db.connect()
    datagen.generate(conn, now=NOW, agents=1, days=4, events=1, traps=1, sessions=1, audit=1,
                     tconfig={"days_compact": "2"})
    eligible = eligible_modules(conn)
    before = snapshot(conn, HOUR)
    with_old_data = set(m for (m, w) in before if m in eligible and (w + 1) * HOUR <= BOUNDARY_2D)
    result, unused_ctx = run(conn)
    assert result.rows > 0
    assert check_windows(before, snapshot(conn, HOUR), HOUR, BOUNDARY_2D, eligible, True) == []
    with conn.cursor() as cur:
        cur.execute("SELECT id_agente_modulo, UNIX_TIMESTAMP(last_compact) FROM tagente_modulo")
        marks = dict(cur.fetchall())
    assert with_old_data and all(marks[m] == BOUNDARY_2D for m in with_old_data)


def test_modules_with_sparse_ids_are_all_reached(conn):
    """Upstream B4: an offset compared with ids never reaches modules with large ids."""
    ids = (1, 1000, 100000, 4000000000)
    points = dense(NOW - 4 * DAY, NOW)
    for module_id in ids:
        seed_series(conn, module_id, points)
    run(conn)
    expected = window_means(points, HOUR, BOUNDARY_2D)
    for module_id in ids:
        assert same_series(series(conn, module_id), expected), module_id


def test_later_runs_compact_only_the_windows_that_aged(conn):
    points = dense(NOW - 4 * DAY, NOW + 6 * HOUR)
    seed_series(conn, 1, points)
    run(conn)
    after_first = series(conn, 1)
    later = NOW + 3 * HOUR
    second, unused_ctx = run(conn, now=later)
    new_boundary = window_start(later - 2 * DAY, HOUR)
    assert second.details["windows"] == (new_boundary - BOUNDARY_2D) // HOUR
    assert same_series(series(conn, 1), window_means(points, HOUR, new_boundary))
    assert [p for p in series(conn, 1) if p[0] < BOUNDARY_2D] == [p for p in after_first if p[0] < BOUNDARY_2D]
    with conn.cursor() as cur:
        cur.execute("SELECT UNIX_TIMESTAMP(last_compact) FROM tagente_modulo WHERE id_agente_modulo = 1")
        assert cur.fetchone()[0] == new_boundary


def many_modules(conn, count=12, days=4):
    data = {}
    for module_id in range(1, count + 1):
        data[module_id] = dense(NOW - days * DAY, NOW, 300 if module_id % 3 else 600, module_id * 7)
        seed_series(conn, module_id, data[module_id])
    return data


def resume_until_done(conn, eligible, before, **kwargs):
    runs = []
    while True:
        result, unused_ctx = run(conn, **kwargs)
        runs.append(result)
        complete = result.details["stop_reason"] is None
        after = snapshot(conn, HOUR)
        problems = check_windows(before, after, HOUR, BOUNDARY_2D, eligible, complete)
        # A clean stop leaves the marks exactly where the data is: the next run resumes there.
        problems += check_marks(before, after, module_marks(conn), HOUR, BOUNDARY_2D, eligible, exact=True)
        assert problems == [], problems[:3]
        if complete:
            return runs
        assert len(runs) < 200


def test_row_budget_splits_the_backlog_and_resumes_exactly(conn):
    data = many_modules(conn)
    eligible, before = eligible_modules(conn), snapshot(conn, HOUR)
    runs = resume_until_done(conn, eligible, before, options={"compact_row_budget": 700,
                                                              "compact_chunk_rows": 150})
    assert len(runs) > 3
    assert all(r.details["stop_reason"] == "compact_row_budget" for r in runs[:-1])
    assert all(r.rows >= 700 for r in runs[:-1])
    total = sum(r.rows for r in runs)
    assert total == sum(w.n for (m, w_), w in before.items() if (w_ + 1) * HOUR <= BOUNDARY_2D and w.n > 1)
    for module_id, points in data.items():
        assert same_series(series(conn, module_id), window_means(points, HOUR, BOUNDARY_2D))
    assert run(conn)[0].rows == 0


def test_max_runtime_stops_cleanly_and_the_next_run_resumes(conn):
    data = many_modules(conn, count=6)
    eligible, before = eligible_modules(conn), snapshot(conn, HOUR)
    runs = resume_until_done(conn, eligible, before, options={"compact_chunk_rows": 60}, batch_sleep=0.02,
                             max_runtime=0.25)
    assert len(runs) > 1
    assert runs[0].details["stop_reason"] == "max_runtime" and runs[0].details["stopped_early"]
    for module_id, points in data.items():
        assert same_series(series(conn, module_id), window_means(points, HOUR, BOUNDARY_2D))


def test_schema_without_last_compact_column_uses_tconfig_marks(conn):
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE tagente_modulo DROP COLUMN last_compact")
    data = many_modules(conn, count=5)
    eligible, before = eligible_modules(conn), snapshot(conn, HOUR)
    first, unused_ctx = run(conn, options={"compact_row_budget": 1000, "compact_chunk_rows": 200})
    assert first.details["mark_store"] == "token" and first.details["stop_reason"] == "compact_row_budget"
    resume = read_token(conn, "last_compact_resume")
    target, done_id, page_id, position = (int(x) for x in resume.split(":"))
    assert target == BOUNDARY_2D and done_id <= page_id and page_id in data and position < target
    assert read_token(conn, "last_compact") is None
    resume_until_done(conn, eligible, before, options={"compact_row_budget": 1000, "compact_chunk_rows": 200})
    assert read_token(conn, "last_compact") == str(BOUNDARY_2D)
    assert read_token(conn, "last_compact_resume") is None
    for module_id, points in data.items():
        assert same_series(series(conn, module_id), window_means(points, HOUR, BOUNDARY_2D))
    again, unused_ctx = run(conn)
    assert again.rows == 0 and not again.changed
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM tconfig WHERE token LIKE 'last_compact%%'")
        assert cur.fetchone()[0] == 1


def test_history_database_uses_its_own_tconfig(pandora_db, history_db):
    main = pandora_db.connect()
    history = history_db.connect()
    # Main: compaction off; the module catalogue lives here.
    datagen.seed_tconfig(main, {"days_compact": "0"})
    points = dense(NOW - 6 * DAY, NOW - 3 * DAY)
    seed_series(main, 1, [])
    seed_series(main, 2, [], type_id=2)                       # proc: must stay raw in the history DB too
    seed_series(main, 3, [])
    datagen.seed_tconfig(history, {"days_compact": "4", "step_compact": "2", "days_purge": "365"})
    with history.cursor() as cur:                             # the history DB's tagente_modulo is empty
        cur.executemany("INSERT INTO tagente_datos (id_agente_modulo, datos, utimestamp) VALUES (%s, %s, %s)",
                        [(m, v, ts) for m in (1, 2, 7) for ts, v in points])
    seed_series(history, 3, points, type_id=1)                # known to the history catalogue itself
    main_checksums = pandora_db.checksums()
    ctx = Context(main, TConfig.load(main), now=NOW, history_conn=history, history_tconfig=TConfig.load(history))
    main_result = CompactStep("main").run(ctx)[0]
    assert main_result.skipped_reason                         # main: days_compact 0
    result = CompactStep("history").run(ctx)[0]
    boundary = window_start(NOW - 4 * DAY, 2 * HOUR)
    assert result.database == "history" and result.threshold == boundary
    assert result.details["mark_store"] == "token"
    assert same_series(series(history, 1), window_means(points, 2 * HOUR, boundary))
    assert same_series(series(history, 3), window_means(points, 2 * HOUR, boundary))
    assert series(history, 2) == points                       # proc
    assert series(history, 7) == points                       # type unknown anywhere: left alone
    assert result.details["modules_unknown_type"] == 1 and result.details["modules_unknown_type_ids"] == [7]
    assert read_token(history, "last_compact") == str(boundary)
    assert pandora_db.checksums() == main_checksums
    assert CompactStep("history").run(ctx)[0].rows == 0
    planned = CompactStep("history").plan(Context(main, TConfig.load(main), now=NOW + 6 * HOUR, check_mode=True,
                                                  history_conn=history, history_tconfig=TConfig.load(history)))[0]
    assert planned.details["windows"] == 6                    # three more 2-hour windows aged, 2 modules


def test_history_step_without_history_connection_is_skipped(conn):
    result = CompactStep("history").run(ctx_for(conn))[0]
    assert result.skipped_reason == "no history database connection" and not result.changed


def test_session_time_zone_is_restored(conn):
    seed_series(conn, 1, dense(NOW - 4 * DAY, NOW))
    with conn.cursor() as cur:
        cur.execute("SET SESSION time_zone = '+05:30'")
    run(conn)
    with conn.cursor() as cur:
        cur.execute("SELECT @@session.time_zone, UNIX_TIMESTAMP(last_compact) FROM tagente_modulo")
        zone, mark = cur.fetchone()
    assert zone == "+05:30" and mark == BOUNDARY_2D


@pytest.mark.parametrize("page_size", [1, 2, 3])
def test_every_page_of_modules_is_reached(conn, monkeypatch, page_size):
    """Keyset pages over ids with gaps and proc modules in between (upstream B4), main and history."""
    monkeypatch.setattr(compact, "MODULE_PAGE", page_size)
    points = dense(NOW - 4 * DAY, NOW, 600)
    numeric = (1, 2, 5, 1000, 100000, 4000000000)
    for module_id in numeric:
        seed_series(conn, module_id, points)
    for module_id, type_id in ((3, 2), (4, 100), (999, 3)):
        seed_series(conn, module_id, points, type_id=type_id)
    planned, unused_ctx = plan(conn)
    result, unused_ctx = run(conn)
    expected = window_means(points, HOUR, BOUNDARY_2D)
    for module_id in numeric:
        assert same_series(series(conn, module_id), expected), module_id
    for module_id in (3, 4, 999):
        assert series(conn, module_id) == points
    assert result.details["modules"] == planned.details["modules"]
    assert [m["id"] for m in result.details["modules"]] == list(numeric)
    assert result.details["modules_scanned"] == len(numeric)


def test_history_pages_skip_unknown_and_proc_modules(pandora_db, history_db, monkeypatch):
    monkeypatch.setattr(compact, "MODULE_PAGE", 2)
    main, history = pandora_db.connect(), history_db.connect()
    points = dense(NOW - 6 * DAY, NOW - 4 * DAY, 600)
    for module_id, type_id in ((1, 1), (2, 2), (4, 1), (6, 100), (8, 34)):
        seed_series(main, module_id, [], type_id=type_id)
    datagen.seed_tconfig(history, {"days_compact": "3", "step_compact": "1", "days_purge": "365"})
    with history.cursor() as cur:
        cur.executemany("INSERT INTO tagente_datos (id_agente_modulo, datos, utimestamp) VALUES (%s, %s, %s)",
                        [(m, v, ts) for m in range(1, 10) for ts, v in points])
    ctx = Context(main, TConfig.load(main), now=NOW, history_conn=history, history_tconfig=TConfig.load(history))
    result = CompactStep("history").run(ctx)[0]
    boundary = window_start(NOW - 3 * DAY, HOUR)
    for module_id in (1, 4, 8):
        assert same_series(series(history, module_id), window_means(points, HOUR, boundary)), module_id
    for module_id in (2, 3, 5, 6, 7, 9):
        assert series(history, module_id) == points, module_id
    assert result.details["modules_unknown_type_ids"] == [3, 5, 7, 9]
    assert [m["id"] for m in result.details["modules"]] == [1, 4, 8]


def test_hourly_steady_state_is_one_transaction_per_page(conn):
    """Once the backlog is done, an hourly run compacts the hour that aged for all modules at once."""
    data = many_modules(conn, count=30, days=5)
    run(conn)
    later = NOW + HOUR
    result, unused_ctx = run(conn, now=later)
    assert result.details["transactions"] == 1
    assert result.details["modules_compacted"] == 30 and result.details["windows"] == 30
    boundary = window_start(later - 2 * DAY, HOUR)
    for module_id, points in data.items():
        assert same_series(series(conn, module_id), window_means(points, HOUR, boundary)), module_id


@pytest.mark.parametrize("write_every", [0.0, 1000.0])
def test_marks_follow_the_data_whatever_their_write_interval(conn, monkeypatch, write_every):
    monkeypatch.setattr(compact.ColumnMarks, "write_every", write_every)
    data = many_modules(conn, count=8)
    eligible, before = eligible_modules(conn), snapshot(conn, HOUR)
    runs = resume_until_done(conn, eligible, before, options={"compact_row_budget": 900, "compact_chunk_rows": 120})
    assert len(runs) > 2
    for module_id, points in data.items():
        assert same_series(series(conn, module_id), window_means(points, HOUR, BOUNDARY_2D))


def test_a_row_slipping_into_the_range_is_never_lost(conn, pandora_db, monkeypatch):
    """Under READ COMMITTED another session can add a row between the aggregate and the delete:
    the count check notices, the transaction is rolled back and the range done again."""
    import pymysql.cursors
    points = dense(NOW - 4 * DAY, NOW)
    seed_series(conn, 1, points)
    late = (window_start(NOW - 3 * DAY, HOUR) + 59, 1000.0)
    other = pandora_db.connect()
    injected = []
    original = pymysql.cursors.Cursor.execute

    def execute(cursor, query, args=None):
        result = original(cursor, query, args)
        if query.startswith("INSERT INTO pandora_compact_windows") and not injected and cursor.connection is conn:
            with other.cursor() as cur:
                cur.execute("INSERT INTO tagente_datos (id_agente_modulo, datos, utimestamp) VALUES (1, %s, %s)",
                            (late[1], late[0]))
            injected.append(late)
        return result

    monkeypatch.setattr(pymysql.cursors.Cursor, "execute", execute)
    with conn.cursor() as cur:
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    result, unused_ctx = run(conn)
    assert injected and result.skipped_reason is None
    assert same_series(series(conn, 1), window_means(points + [late], HOUR, BOUNDARY_2D))
    other.close()


def test_missing_temporary_table_privilege_is_a_clear_error(conn, pandora_db):
    seed_series(conn, 1, dense(NOW - 4 * DAY, NOW))
    user = "compact_%s" % pandora_db.name[-12:].replace("_", "")
    pandora_db.server.execute("CREATE USER IF NOT EXISTS '%s'@'127.0.0.1' IDENTIFIED BY 'Pw-%s'" % (user, user))
    try:
        pandora_db.server.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON `%s`.* TO '%s'@'127.0.0.1'"
                                  % (pandora_db.name, user))
        import pymysql
        limited = pymysql.connect(host="127.0.0.1", port=pandora_db.server.port, user=user, password="Pw-" + user,
                                  database=pandora_db.name, autocommit=True)
        with pytest.raises(OperationFailed) as err:
            run(limited)
        assert "CREATE TEMPORARY TABLES" in str(err.value)
        assert len(series(conn, 1)) == len(dense(NOW - 4 * DAY, NOW))
        limited.close()
    finally:
        pandora_db.server.execute("DROP USER IF EXISTS '%s'@'127.0.0.1'" % user)
