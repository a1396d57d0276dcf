"""The partitioned layout against a real server: layout, refusals, purge by partitions, EXPLAIN, info, backup."""

import os

import pytest

from harness import datagen
from harness.maint_seed import DAY, NOW, engine_run, settings_for, step

from ansible_collections.pandorafms.server.plugins.module_utils import _partitions as P
from ansible_collections.pandorafms.server.plugins.module_utils._connection import connect
from ansible_collections.pandorafms.server.plugins.module_utils._dbinfo import database_facts
from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConfigError, PreconditionFailed

TABLES = ("tagente_datos", "tagente_datos_string")
# Rows the generator does not make: undated (NULL, 0, negative) and future ones.
ODD_DATOS = [(901, 1.5, None), (902, 2.5, 0), (903, 3.5, -5), (904, 4.5, NOW + 400 * DAY), (905, 5.5, NOW + 3 * DAY)]
ODD_STRING = [(911, "zero", 0), (912, "future", NOW + 400 * DAY)]


def seed(db, days=9, agents=1):
    conn = db.connect()
    try:
        datagen.generate(conn, now=NOW, agents=agents, modules_per_agent=8, days=days, interval=900, events=50,
                         traps=10, sessions=10, audit=10)
    finally:
        conn.close()
    for row in ODD_DATOS:
        db.query("INSERT INTO tagente_datos VALUES (%s, %s, %s)", row)
    for row in ODD_STRING:
        db.query("INSERT INTO tagente_datos_string VALUES (%s, %s, %s)", row)


def checksums(db):
    """CHECKSUM TABLE of every table in one statement (equal dicts mean equal content)."""
    tables = [r[0] for r in db.query("SHOW TABLES")]
    return dict(db.query("CHECKSUM TABLE %s" % ", ".join("`%s`" % t for t in tables)))


def rows(db, table):
    return db.query("SELECT * FROM `%s` ORDER BY 1, 3, 2" % table)


def manage(db, check=False, **kwargs):
    kwargs.setdefault("now", NOW)
    kwargs.setdefault("days_ahead", 3)
    conn = connect(settings_for(db))
    try:
        return P.manage_tables(conn, kwargs.pop("tables", list(TABLES)), check_mode=check, **kwargs)
    finally:
        conn.close()


def layout(db, table):
    conn = db.connect()
    try:
        return P.read_layout(conn, table)
    finally:
        conn.close()


def test_layout_conversion_and_odd_timestamps(pandora_db):
    db = pandora_db
    seed(db)
    before = dict((t, rows(db, t)) for t in TABLES)
    sums = checksums(db)

    plan = manage(db, check=True)
    assert sums == checksums(db)  # check mode changes nothing
    for res in plan:
        conv = res["conversion"]
        assert res["changed"] and conv["state"] == "fresh" and conv["rows_to_copy"] == len(before[res["table"]])
        assert conv["partitions"][0] == P.UNDATED and conv["partitions"][-1] == P.CATCHALL
        assert conv["estimated_stall_seconds"] > 0 and any("RENAME TABLE" in a for a in conv["actions"])

    out = manage(db, chunk_rows=300)
    assert [r["changed"] for r in out] == [True, True]
    assert out[0]["conversion"]["chunks"] > 3
    for table in TABLES:
        assert rows(db, table) == before[table]
        lay = layout(db, table)
        assert lay.managed and lay.interval == "day" and lay.ahead == 3
        names = [p.name for p in lay.partitions]
        # Oldest data is 9 days back (generator start): one partition per UTC day up to now + 3 days.
        assert names[1] == P.partition_name(P.period_start(NOW - 9 * DAY, "day")) == "p20260912"
        assert names[-2] == "p20260924" and names[-1] == P.CATCHALL
        assert len(names) == 2 + 10 + 3
    # NULL, 0 and negative go to p_undated, future rows to the catch-all; no insert ever fails.
    assert sorted(r[0] for r in db.query("SELECT id_agente_modulo FROM tagente_datos PARTITION (p_undated)")) == [
        901, 902, 903]
    assert [r[0] for r in db.query("SELECT id_agente_modulo FROM tagente_datos PARTITION (p_future)")] == [904]
    db.query("INSERT INTO tagente_datos VALUES (906, 1, %s)", (2 ** 62,))
    assert db.scalar("SELECT COUNT(*) FROM tagente_datos PARTITION (p_future)") == 2
    db.query("DELETE FROM tagente_datos WHERE id_agente_modulo = 906")
    assert not db.query("SHOW TABLES LIKE '%%pfms%%'")
    # Rerun: nothing to do.
    assert [r["changed"] for r in manage(db)] == [False, False]
    # The layout report.
    facts = database_facts(settings_for(db))["table_layouts"]
    info = facts["tagente_datos"]
    assert info["layout"] == "partitioned" and info["partition_count"] == 15
    assert info["undated_rows"] == 3 and info["catchall_rows"] == 1
    assert info["oldest_partition"] == "p20260912" and info["newest_partition"] == "p20260924"
    assert facts["tagente_datos_string"]["catchall_rows"] == 1
    # Week partitions selectable; back to plain tables (state absent) keeps every row.
    out = manage(db, state="absent", chunk_rows=700)
    assert [r["changed"] for r in out] == [True, True]
    for table in TABLES:
        assert not layout(db, table).partitioned and rows(db, table) == before[table]
    assert database_facts(settings_for(db))["table_layouts"]["tagente_datos"]["layout"] == "plain"
    manage(db, tables=["tagente_datos"], interval="week")
    assert layout(db, "tagente_datos").partitions[1].name == "p20260907"  # the Monday of the oldest row's week
    assert layout(db, "tagente_datos").interval == "week" and rows(db, "tagente_datos") == before["tagente_datos"]


def test_refuses_tables_with_foreign_keys_and_bad_unique_keys(pandora_db):
    with pytest.raises(PreconditionFailed) as err:
        manage(pandora_db, tables=["tagente_datos", "tevento"])
    assert "tevento has foreign keys" in str(err.value) and "tevent_extended.id_evento" in str(err.value)
    assert "refuse to partition" in str(err.value)
    assert not layout(pandora_db, "tagente_datos").partitioned  # validated before anything changed
    pandora_db.query("ALTER TABLE tagente_datos_string ADD COLUMN id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY")
    with pytest.raises(PreconditionFailed) as err:
        manage(pandora_db, tables=["tagente_datos_string"])
    assert "unique key PRIMARY (id) without utimestamp" in str(err.value)
    with pytest.raises(PreconditionFailed) as err:
        manage(pandora_db, tables=["tagente_datos_inc"])
    assert "not one of the tables" in str(err.value)
    with pytest.raises(ConfigError) as err:
        manage(pandora_db, tables=["tagente_datos_inc"], state="absent")
    assert "option tables: tagente_datos_inc is not one of the tables" in str(err.value)


def test_ddl_keeps_the_sessions_metadata_lock_wait(pandora_db):
    """The purge's DDL shares the maintenance run's connection: its short lock wait must not leak."""
    conn = pandora_db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = 777")
        P.ddl(conn, "ALTER TABLE tagente_datos COMMENT = 'x'", lock_wait=3)
        with conn.cursor() as cur:
            cur.execute("SELECT @@SESSION.lock_wait_timeout")
            assert cur.fetchone()[0] == 777
    finally:
        conn.close()


def _purge(db, exact, check=False):
    return engine_run(db, steps=["purge"], thresholds={"days_purge": 5, "string_purge": 5}, check_mode=check,
                      extra_options={"partition_purge_exact": exact})


@pytest.mark.parametrize("exact", [True, False])
def test_purge_by_partitions_matches_the_plain_purge(new_db, main_server, exact):
    plain, part = new_db(main_server), new_db(main_server)
    seed(plain)
    seed(part)
    manage(part, days_ahead=2)
    assert layout(part, "tagente_datos").managed
    cutoff = NOW - 5 * DAY
    threshold_start = P.period_start(cutoff, "day")
    kept_extra = dict((t, part.query("SELECT * FROM `%s` WHERE utimestamp >= %%s AND utimestamp < %%s"
                                     " ORDER BY 1, 3, 2" % t, (threshold_start, cutoff))) for t in TABLES)
    assert all(kept_extra.values())
    expected_drop = [p.name for p in layout(part, "tagente_datos").dated if p.upper <= cutoff]

    _purge(plain, exact)
    sums = checksums(part)
    plan = _purge(part, exact, check=True)
    assert checksums(part) == sums
    counts = dict((t, part.scalar("SELECT COUNT(*) FROM `%s`" % t)) for t in TABLES)
    res = _purge(part, exact)
    gone = dict((t, counts[t] - part.scalar("SELECT COUNT(*) FROM `%s`" % t)) for t in TABLES)
    for name, table in (("module_data", "tagente_datos"), ("string_data", "tagente_datos_string")):
        want = rows(plain, table)
        if not exact:
            want = tuple(sorted(list(want) + list(kept_extra[table]), key=lambda r: (r[0], r[2], r[1])))
        assert rows(part, table) == want
        real, predicted = step(res, name), step(plan, name)
        assert real["details"]["partitions_dropped"] == expected_drop == predicted["details"]["partitions_dropped"]
        # Check mode counts exactly: the rows that really went.
        assert predicted["rows"] == gone[table] > 0
        assert predicted["details"]["rows_dropped_estimated"] is False
        assert real["details"]["rows_deleted"] == predicted["details"]["rows_deleted"]
        if exact:  # exact mode counts too
            assert real["details"]["rows_dropped_estimated"] is False
            assert real["rows"] == predicted["rows"] and real["details"]["rows_dropped"] == predicted["details"]["rows_dropped"]
        else:  # the default mode reports InnoDB's estimate for the dropped partitions (counting them costs more
            # than dropping them), and says so
            assert real["details"]["rows_dropped_estimated"] is True
            assert real["rows"] == real["details"]["rows_dropped"] + real["details"]["rows_deleted"]
        assert real["details"]["partitions_created"] == predicted["details"]["partitions_created"] == []
        assert real["details"]["mode"] == ("exact" if exact else "partitions")
        if not exact:
            assert real["details"]["kept_below_cutoff"] == len(kept_extra[table])
    # The undated rows: NULL kept (as the plain purge keeps it), 0 and negative deleted in both modes.
    assert part.query("SELECT id_agente_modulo FROM tagente_datos PARTITION (p_undated)") == ((901,),)
    # Future rows are in the catch-all and are never lost.
    assert part.scalar("SELECT COUNT(*) FROM tagente_datos PARTITION (p_future) WHERE id_agente_modulo = 904") == 1
    # Rerun: nothing to do, changed false; the check run agrees.
    assert _purge(part, exact, check=True)["changed"] is False
    assert _purge(part, exact)["changed"] is False
    # A day later the purge drops one more partition and creates one ahead.
    later = engine_run(part, steps=["purge"], thresholds={"days_purge": 5, "string_purge": 5}, now=NOW + DAY,
                       extra_options={"partition_purge_exact": exact})
    d = step(later, "module_data")["details"]
    assert later["changed"] is True and len(d["partitions_dropped"]) == 1 and d["partitions_created"] == ["p20260924"]
    # The row 3 days ahead sat in the catch-all (days_ahead=2); the split moved it into its new partition.
    assert d["catchall_rows_moved"] == 1
    assert part.query("SELECT id_agente_modulo FROM tagente_datos PARTITION (p20260924)") == ((905,),)


def test_module_graph_query_uses_data_index1_with_pruning(pandora_db):
    seed(pandora_db, days=6, agents=2)
    manage(pandora_db, tables=["tagente_datos"])
    lo, hi = NOW - 2 * DAY - 3600, NOW - 2 * DAY + 3600
    module = pandora_db.scalar("SELECT id_agente_modulo FROM tagente_datos WHERE utimestamp > %s AND utimestamp <= %s"
                               " GROUP BY 1 ORDER BY COUNT(*) DESC, 1 LIMIT 1", (lo, hi))
    plan = pandora_db.query("EXPLAIN PARTITIONS SELECT datos, utimestamp FROM tagente_datos WHERE id_agente_modulo"
                            " = %s AND utimestamp > %s AND utimestamp <= %s", (module, lo, hi))
    row = plan[0]
    # id, select_type, table, partitions, type, possible_keys, key, ...
    assert row[3] == "p20260919"  # one partition read out of the table's 12
    assert row[4] == "range" and row[6] == "data_index1"


def test_backup_restore_round_trips_a_partitioned_database(pandora_db, tmp_path):
    """pandora_backup's engine: the dump keeps the partitioning clause; the restore brings layout and rows back."""
    from ansible_collections.pandorafms.server.plugins.module_utils._backup import run_backup, run_restore
    db = pandora_db
    seed(db, days=3, agents=1)
    manage(db)
    before_sums = checksums(db)
    before_ddl = [db.query("SHOW CREATE TABLE `%s`" % t)[0][1] for t in TABLES]
    empty = str(tmp_path / "empty")
    os.makedirs(empty)
    roots = dict(config_dir=empty, spool_dir=empty, console_path=empty)
    archive = run_backup(settings_for(db), dest=str(tmp_path / "b"), include_files=False, **roots)["archive"]
    db.query("ALTER TABLE tagente_datos REMOVE PARTITIONING")
    db.query("DELETE FROM tagente_datos_string LIMIT 5")
    assert checksums(db) != before_sums
    run_restore(settings_for(db), src=archive, **roots)
    assert checksums(db) == before_sums
    assert [db.query("SHOW CREATE TABLE `%s`" % t)[0][1] for t in TABLES] == before_ddl
    assert layout(db, "tagente_datos").managed and layout(db, "tagente_datos_string").managed


def test_module_check_real_rerun_and_refusal(pandora_db, playbook):
    """pandorafms.server.pandora_partitions through ansible-playbook: check mode, the conversion, a rerun, an error."""
    db = pandora_db
    db.query("INSERT INTO tagente_datos VALUES (1, 1.5, %s), (2, 2.5, NULL)", (NOW - DAY,))
    args = dict(db.login(), days_ahead=2)
    env = {"PANDORAFMS_SERVER_TEST_NOW": str(NOW)}
    res = playbook.run([
        {"pandorafms.server.pandora_partitions": args, "check_mode": True, "register": "plan", "environment": env},
        {"pandorafms.server.pandora_partitions": args, "register": "real", "environment": env},
        {"pandorafms.server.pandora_partitions": args, "register": "again", "environment": env},
        {"pandorafms.server.pandora_partitions": dict(args, tables=["tevento"]), "register": "bad",
         "ignore_errors": True, "environment": env},
    ], expect_rc=0)
    plan, real, again, bad = res.results
    assert plan["changed"] is True and plan["tables"][0]["conversion"]["rows_to_copy"] == 2
    assert real["changed"] is True and [t["layout"]["layout"] for t in real["tables"]] == ["partitioned"] * 2
    assert again["changed"] is False
    assert bad["failed"] is True and "tevento has foreign keys" in bad["msg"] and "Traceback" not in bad["msg"]
    assert rows(db, "tagente_datos") == ((1, 1.5, NOW - DAY), (2, 2.5, None))
