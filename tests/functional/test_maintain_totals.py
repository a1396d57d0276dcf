"""Totals add up from the steps and equal the real row-count changes: deletes, FK-cascaded deletes (events'
comments, report items, ...) and the means compaction inserts, per table, in check mode and in the real run."""

from harness.maint_seed import NOW, add_event, engine_run, seed_everything, step, tconfig

DAY = 86400


def _counts(db):
    return dict((name, db.scalar("SELECT COUNT(*) FROM `%s`" % name)) for (name,) in db.query("SHOW TABLES"))


def test_totals_equal_the_real_row_count_changes(pandora_db):
    seed_everything(pandora_db)
    tconfig(pandora_db, days_compact="27", step_compact="6")
    # Old events with comments: the purge deletes them and their comments go with them (ON DELETE CASCADE).
    for ts in (NOW - 20 * DAY, NOW - 25 * DAY):
        add_event(pandora_db, 103, 1031, ts, comments=3)
    old_comments = pandora_db.scalar(
        "SELECT COUNT(*) FROM tevent_comment c JOIN tevento e ON e.id_evento = c.id_event WHERE e.utimestamp < %s"
        " AND e.id_agente NOT IN (101, 102)", (NOW - 10 * DAY,))
    assert old_comments >= 6
    before = _counts(pandora_db)
    plan = engine_run(pandora_db, check_mode=True)
    real = engine_run(pandora_db)
    after = _counts(pandora_db)

    totals = real["totals"]
    assert totals == plan["totals"]
    compact = step(real, "compact")["details"]
    assert compact["rows_inserted"] > 0
    assert totals["inserted"] >= compact["rows_inserted"]
    assert totals["by_table"]["tagente_datos"]["inserted"] == compact["rows_inserted"]
    # The comments of the events older than event_purge go with them.
    assert step(real, "events")["details"]["cascaded"]["tevent_comment"] == old_comments
    assert totals["cascaded"] >= old_comments

    # tconfig holds the run's own bookkeeping (db_maintance, compaction marks), which is not counted as a change.
    for table in sorted((set(before) | set(after)) - {"tconfig"}):
        entry = totals["by_table"].get(table, {"deleted": 0, "inserted": 0, "updated": 0})
        assert after[table] - before[table] == entry["inserted"] - entry["deleted"], table
    assert set(totals["by_table"]) <= set(before)
    assert totals["deleted"] == sum(e["deleted"] for e in totals["by_table"].values())
    assert totals["inserted"] == sum(e["inserted"] for e in totals["by_table"].values())
    assert totals["rows"] == totals["deleted"] + totals["inserted"] + totals["updated"]
