"""pandora_db_maintain's compaction options, through real ansible-playbook: history_days_compact,
history_step_compact and compact_chunk_rows reach the engine and override the history tconfig."""

from harness import datagen
from harness.compact_checks import same_series, seed_series, series, window_means
from harness.maint_seed import NOW
from harness.mariadb import ROOT_PASSWORD

from ansible_collections.pandorafms.server.plugins.module_utils._compact import window_start

MODULE = "pandorafms.server.pandora_db_maintain"
DAY = 86400
HOUR = 3600


def _points(start, end, every=300):
    return [(ts, round(40 + (i * 37 % 100) / 10.0, 3)) for i, ts in enumerate(range(start, end, every))]


def _task(main, history, **options):
    args = dict(main.login(), servername="pandora-main", require_master=False, steps=["compact"],
                history_login_host="127.0.0.1", history_login_port=history.server.port, history_login_user="root",
                history_login_password=ROOT_PASSWORD, history_login_db=history.name)
    args.update(options)
    # The clock comes from the test-only environment variable the module reads.
    return {MODULE: args, "register": "out", "ignore_errors": True,
            "environment": {"PANDORAFMS_SERVER_TEST_NOW": str(NOW)}}


def _history_compact(result):
    return [s for s in result["steps"] if s["name"] == "compact" and s["database"] == "history"][0]


def test_history_compaction_options_override_its_tconfig(pandora_db, history_db, playbook):
    main, history = pandora_db.connect(), history_db.connect()
    datagen.seed_tconfig(main, {"days_compact": "0"})
    datagen.seed_tconfig(history, {"days_compact": "0", "step_compact": "1", "days_purge": "365"})
    seed_series(main, 1, [])                                  # the module catalogue lives in the main database
    points = _points(NOW - 6 * DAY, NOW - 3 * DAY)
    seed_series(history, 1, points, type_id=1)

    off = playbook.run([_task(pandora_db, history_db)], expect_rc=0).last
    assert off["changed"] is False and _history_compact(off)["skipped_reason"]
    assert series(history, 1) == points                       # the history tconfig says off: nothing moved

    on = playbook.run([_task(pandora_db, history_db, history_days_compact=4, history_step_compact=2,
                             compact_chunk_rows=50)], expect_rc=0).last
    assert on["changed"] is True
    step = _history_compact(on)
    boundary = window_start(NOW - 4 * DAY, 2 * HOUR)
    assert step["threshold"] == boundary
    assert same_series(series(history, 1), window_means(points, 2 * HOUR, boundary))
    # 24 two-hour windows of 24 rows each, with about 50 raw rows per transaction: many transactions.
    assert step["details"]["transactions"] >= 10
    assert ROOT_PASSWORD not in str(on)


def test_bad_compaction_option_is_a_clear_error(pandora_db, history_db, playbook):
    history = history_db.connect()
    datagen.seed_tconfig(history, {"days_compact": "0"})
    seed_series(history, 1, _points(NOW - 6 * DAY, NOW - 3 * DAY), type_id=1)
    before = history_db.checksums()
    out = playbook.run([_task(pandora_db, history_db, history_days_compact=4, compact_chunk_rows=0)]).last
    assert out["failed"] is True
    assert "compact_chunk_rows" in out["msg"] and "Traceback" not in out["msg"]
    assert history_db.checksums() == before
