"""History move by partitions: a main table in the partitioned layout moves its expired partitions whole.

Each expired partition is copied to the history database, verified (count and checksum), and only then dropped
on main, under a table lock after a last check: main deletes no row for it. What is left older than the cutoff
(the cutoff's own partition, undated rows) moves block by block as on a plain table, so the outcome is the same
rows as on a plain table. Interrupted between the copy and the drop, the next run drops the partition, or undoes
the copy when main's partition changed since. The history database honours its own ``history_partitions_auto``.
"""

import json

import pytest

from harness.history_move_seed import (OneConnection, assert_conserved, link, old_rows_left, original_of, rows,
                                       seed, snapshot)
from harness.maint_seed import DAY, NOW, engine_run, settings_for, tconfig

from ansible_collections.pandorafms.server.plugins.module_utils import _partitions as P
from ansible_collections.pandorafms.server.plugins.module_utils._connection import connect

MOVE = ["history_move"]
TABLES = ("tagente_datos", "tagente_datos_string")
CUTOFF = NOW - 30 * DAY


def partition(db, days_ahead=3):
    conn = connect(settings_for(db))
    try:
        return P.manage_tables(conn, list(TABLES), interval="day", days_ahead=days_ahead, now=NOW)
    finally:
        conn.close()


def layout(db, table="tagente_datos"):
    conn = db.connect()
    try:
        return P.read_layout(conn, table)
    finally:
        conn.close()


def deleted_rows(db):
    """The server's count of rows deleted (Handler_delete) (only the tests' own sessions run there)."""
    return int(db.query("SHOW GLOBAL STATUS LIKE 'Handler_delete'")[0][1])


def step_of(result, table):
    return [s for s in result["steps"] if s["name"] == "history_move" and s["table"] == table][0]


def expired(db, table="tagente_datos"):
    return [p.name for p in P.droppable(layout(db, table), CUTOFF)]


def _old_split(db, table):
    """(rows older than the cutoff, those of them in expired partitions)."""
    gone = expired(db, table)
    bound = layout(db, table).dated[len(gone) - 1].upper if gone else 1
    total = db.scalar("SELECT COUNT(*) FROM `%s` WHERE utimestamp < %%s" % table, (CUTOFF,))
    inside = db.scalar("SELECT COUNT(*) FROM `%s` WHERE utimestamp >= 1 AND utimestamp < %%s" % table, (bound,))
    return total, inside


def test_expired_partitions_move_whole_without_deletes_on_main(pandora_db, history_db):
    link(pandora_db, history_db, days=30, step=40, events=False, traps=False)
    seed(pandora_db)
    partition(pandora_db)
    original = original_of(pandora_db)
    gone = expired(pandora_db)
    assert len(gone) >= 25
    split = dict((t, _old_split(pandora_db, t)) for t in TABLES)
    total_old, in_partitions = split["tagente_datos"]
    assert 0 < in_partitions < total_old  # some old rows are in the cutoff's partition

    before = snapshot(pandora_db, history_db)
    plan = engine_run(pandora_db, steps=MOVE, check_mode=True)
    assert snapshot(pandora_db, history_db) == before
    assert step_of(plan, "tagente_datos")["details"]["partitions"] == gone
    assert step_of(plan, "tagente_datos")["rows"] == total_old

    deleted = deleted_rows(pandora_db)
    res = engine_run(pandora_db, steps=MOVE)
    data = step_of(res, "tagente_datos")
    assert data["rows"] == total_old
    assert data["details"]["partitions_moved"] == gone
    # Main deleted only the rows outside the dropped partitions, and one journal row per block.
    outside = sum(total - inside for total, inside in split.values())
    blocks = sum(step_of(res, t)["details"]["blocks"] for t in TABLES)
    assert outside + blocks < in_partitions  # so the bound below tells the two ways apart
    assert deleted_rows(pandora_db) - deleted <= outside + blocks
    assert_conserved(original, pandora_db, history_db, days=30)
    for table in TABLES:  # (events and traps do not move in this test)
        assert pandora_db.scalar("SELECT COUNT(*) FROM `%s` WHERE utimestamp < %%s" % table, (CUTOFF,)) == 0
    assert expired(pandora_db) == [] and expired(pandora_db, "tagente_datos_string") == []
    assert layout(pandora_db).managed
    again = engine_run(pandora_db, steps=MOVE)
    assert again["changed"] is False


def _crash_at(point, table="tagente_datos"):
    def hook(tbl, count, sql):
        if tbl == table and sql == "history_move:" + point:
            raise RuntimeError("simulated crash at " + point)
    return hook


@pytest.mark.parametrize("point", ["locked", "verified", "copied"])
def test_an_interrupted_partition_move_resumes(pandora_db, history_db, point):
    link(pandora_db, history_db, days=30, step=40)
    seed(pandora_db)
    partition(pandora_db)
    original = original_of(pandora_db)
    first = expired(pandora_db)[0]
    with pytest.raises(RuntimeError):
        engine_run(pandora_db, steps=MOVE, statement_hook=_crash_at(point))
    on_main, on_hist = rows(pandora_db, "tagente_datos"), rows(history_db, "tagente_datos")
    assert on_main + on_hist >= original["tagente_datos"]  # nothing lost
    if point == "copied":  # state B: the partition is on both sides
        assert on_main & on_hist and first in [p.name for p in layout(pandora_db).partitions]
    else:  # the history transaction rolled back
        assert not on_hist
    res = engine_run(pandora_db, steps=MOVE)
    if point == "copied":
        assert step_of(res, "tagente_datos")["details"]["resumed_range"]["lo"] >= 1
    assert_conserved(original, pandora_db, history_db, days=30)
    assert old_rows_left(pandora_db) == 0
    assert first not in [p.name for p in layout(pandora_db).partitions]


def test_a_partition_changed_after_its_copy_is_copied_again(pandora_db, history_db):
    link(pandora_db, history_db, days=30, step=40)
    seed(pandora_db)
    partition(pandora_db)
    original = original_of(pandora_db)
    with pytest.raises(RuntimeError):
        engine_run(pandora_db, steps=MOVE, statement_hook=_crash_at("copied"))
    journal = json.loads(history_db.scalar("SELECT value FROM tconfig WHERE token = 'history_move_partition_tagente_datos'"))
    late = (777, 7.5, journal["range"]["lo"])
    pandora_db.query("INSERT INTO tagente_datos VALUES (%s, %s, %s)", late)
    original["tagente_datos"][late] += 1
    res = engine_run(pandora_db, steps=MOVE)
    assert journal["partition"] in step_of(res, "tagente_datos")["details"]["partitions_moved"]
    assert_conserved(original, pandora_db, history_db, days=30)
    assert old_rows_left(pandora_db) == 0


def test_history_partitions_auto(pandora_db, history_db):
    """1 with a partitioned history table: the moved days get partitions of their own there, so the history
    purge can drop them; 1 with a plain history table: a warning that says how to convert it."""
    link(pandora_db, history_db, days=30, step=40)
    seed(pandora_db)
    partition(pandora_db)
    original = original_of(pandora_db)
    tconfig(history_db, history_partitions_auto=1)
    res = engine_run(pandora_db, steps=MOVE)
    assert any("history_partitions_auto = 1" in w and "pandora_partitions" in w for w in res["warnings"])
    assert_conserved(original, pandora_db, history_db, days=30)

    # The next day's move into a partitioned history table (empty before: its first partition is today's).
    history_db.query("DELETE FROM tagente_datos")
    history_db.query("DELETE FROM tagente_datos_string")
    pandora_db.query("INSERT INTO tagente_datos (id_agente_modulo, datos, utimestamp) SELECT 1 + seq MOD 5, seq,"
                     " %s + seq * 600 FROM seq_1_to_400", (NOW - 58 * DAY,))
    partition(history_db)
    first = layout(history_db).dated[0]
    assert first.start > CUTOFF
    original = dict((t, rows(pandora_db, t) + rows(history_db, t)) for t in original)
    res = engine_run(pandora_db, steps=MOVE)
    assert not any("history_partitions_auto" in w for w in res["warnings"])
    assert_conserved(original, pandora_db, history_db, days=30)
    hist = layout(history_db)
    assert hist.managed and hist.dated[0].start < CUTOFF
    # Every moved row has a dated partition of its own day on the history side.
    with OneConnection(history_db) as conn:
        for part in hist.dated:
            if part.start < CUTOFF:
                low = conn.scalar("SELECT MIN(utimestamp) FROM tagente_datos PARTITION (`%s`)" % part.name)
                assert low is None or low >= part.start
    assert any("history_partitions_auto: " in line and "partitions added" in line for line in res["log"])
    # Without the switch, the history database's layout is left as it is: older rows go to its first partition.
    tconfig(history_db, history_partitions_auto=0)
    starts = [p.start for p in layout(history_db).dated]
    pandora_db.query("INSERT INTO tagente_datos (id_agente_modulo, datos, utimestamp) SELECT 1 + seq MOD 5, seq,"
                     " %s + seq * 60 FROM seq_1_to_50", (starts[0] - 3 * DAY,))
    original = dict((t, rows(pandora_db, t) + rows(history_db, t)) for t in original)
    engine_run(pandora_db, steps=MOVE)
    assert_conserved(original, pandora_db, history_db, days=30)
    assert [p.start for p in layout(history_db).dated] == starts
