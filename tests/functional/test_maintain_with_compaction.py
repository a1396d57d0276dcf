"""Purge and compaction in one run: the purge goes first and compaction starts where it stops.

A window that straddles the purge cutoff must not be averaged into a mean stamped
before the cutoff: the next run's purge would delete that mean (a rerun would not
be a no-op), and check mode would count rows the purge removes first.
"""

from harness.maint_seed import engine_run, rows_of, seed_month, step


def test_purge_then_compact_is_idempotent_and_predicted_exactly(pandora_db):
    seed_month(pandora_db, tconfig_values={"days_purge": "30", "days_compact": "20", "step_compact": "6"})
    before = pandora_db.checksums()
    plan = engine_run(pandora_db, check_mode=True)
    assert pandora_db.checksums() == before
    first = engine_run(pandora_db)
    assert step(first, "compact")["rows"] > 0
    assert rows_of(plan) == rows_of(first)
    second = engine_run(pandora_db)
    assert second["changed"] is False, [s for s in second["steps"] if s["rows"]]
