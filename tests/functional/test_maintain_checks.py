"""CHECKDB, INTEGRITY and the forgotten discovery tasks against the real server."""

import contextlib

from harness.maint_seed import DAY, NOW, add_agent, add_module, add_server, add_status, engine_run, ids, step, tconfig


@contextlib.contextmanager
def no_fk_checks(db):
    """A connection that can insert orphans the foreign keys would refuse."""
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION foreign_key_checks = 0")
            yield cur
    finally:
        conn.close()


def test_missing_status_rows_are_created_except_for_doomed_modules(pandora_db):
    add_agent(pandora_db, 1)
    add_module(pandora_db, 10, 1, with_status=False)            # gets a status row
    add_module(pandora_db, 11, 1)                               # has one already
    add_module(pandora_db, 12, 1, pending=1, with_status=False)  # pending deletion: none (upstream made one)
    add_module(pandora_db, 13, 99, with_status=False)           # agent gone: none; INTEGRITY deletes the module
    res = engine_run(pandora_db, steps=["checkdb"])
    assert ids(pandora_db, "SELECT id_agente_modulo FROM tagente_estado") == [10, 11]
    row = pandora_db.query("SELECT datos, `timestamp`, estado, id_agente, utimestamp, current_interval, running_by,"
                           " last_execution_try, last_try FROM tagente_estado WHERE id_agente_modulo = 10")[0]
    assert [str(v) for v in row] == ["0", "1970-01-01 00:00:00", "1", "1", "0", "0", "0", "0", "1970-01-01 00:00:00"]
    s = step(res, "missing_status")
    assert s["rows"] == 1 and s["details"]["action"] == "insert"
    assert "Inserting module 10 in state table." in "\n".join(res["log"])


def test_no_status_rows_for_agents_the_same_run_deletes(pandora_db):
    """Upstream defect 14: CHECKDB created rows for modules of just-deleted agents, INTEGRITY removed them again."""
    tconfig(pandora_db, days_autodisable_deletion=30)
    add_agent(pandora_db, 1, disabled=1, modo=2, last_contact=NOW - 40 * DAY)
    add_module(pandora_db, 10, 1)
    res = engine_run(pandora_db, steps=["purge", "checkdb", "integrity"])
    assert step(res, "missing_status")["rows"] == 0
    assert step(res, "orphan_status")["rows"] == 0
    assert pandora_db.scalar("SELECT COUNT(*) FROM tagente_estado") == 0
    assert pandora_db.scalar("SELECT COUNT(*) FROM tagente_modulo") == 0


def test_status_rows_of_missing_modules_go(pandora_db):
    add_agent(pandora_db, 1)
    add_module(pandora_db, 10, 1)
    add_status(pandora_db, 55, 1)
    add_status(pandora_db, 56, 1)
    res = engine_run(pandora_db, steps=["checkdb"], batch_size=1)
    assert ids(pandora_db, "SELECT id_agente_modulo FROM tagente_estado") == [10]
    assert step(res, "missing_module_status")["rows"] == 2


def test_empty_aliases(pandora_db):
    add_agent(pandora_db, 1, name="named", alias="")
    add_agent(pandora_db, 2, name="other", alias="kept alias")
    pandora_db.query("INSERT INTO tagente (id_agente, nombre, alias) VALUES (3, '', '')")
    res = engine_run(pandora_db, steps=["checkdb"])
    assert dict(pandora_db.query("SELECT id_agente, alias FROM tagente")) == {1: "named", 2: "kept alias", 3: ""}
    assert step(res, "empty_aliases")["rows"] == 1


def test_not_init_modules_only_with_delete_notinit(pandora_db):
    add_agent(pandora_db, 1)
    add_agent(pandora_db, 2, disabled=1)
    add_module(pandora_db, 10, 1, status=4)              # goes
    add_module(pandora_db, 11, 1, status=4, disabled=1)  # disabled module: stays
    add_module(pandora_db, 12, 1, status=4, policy=3)    # policy module: stays
    add_module(pandora_db, 13, 2, status=4)              # disabled agent: stays
    add_module(pandora_db, 14, 1, status=0)              # initialised: stays
    res = engine_run(pandora_db, steps=["checkdb"])
    assert step(res, "notinit_modules")["skipped_reason"] == "delete_notinit is not 1"
    assert pandora_db.scalar("SELECT COUNT(*) FROM tagente_modulo") == 5
    tconfig(pandora_db, delete_notinit=1)
    res = engine_run(pandora_db, steps=["checkdb"])
    assert ids(pandora_db, "SELECT id_agente_modulo FROM tagente_modulo") == [11, 12, 13, 14]
    assert ids(pandora_db, "SELECT id_agente_modulo FROM tagente_estado") == [11, 12, 13, 14]  # missing module step
    assert pandora_db.scalar("SELECT update_module_count FROM tagente WHERE id_agente = 1") == 1
    assert step(res, "notinit_modules")["rows"] == 1


def test_unknown_and_old_notinit_modules_by_age(pandora_db):
    tconfig(pandora_db, days_delete_unknown=2, days_delete_not_initialized=3, delete_notinit=1)
    add_agent(pandora_db, 1, disabled=1)  # so the plain not-init step leaves its modules alone
    cut2, cut3 = NOW - 2 * DAY, NOW - 3 * DAY
    add_module(pandora_db, 10, 1, status=3, status_time=cut2 - 1)  # unknown, old: goes
    add_module(pandora_db, 11, 1, status=3, status_time=cut2)      # unknown, at the cutoff: stays
    add_module(pandora_db, 12, 1, status=3, status_time=cut2 - 1, disabled=1)  # disabled: stays
    add_module(pandora_db, 13, 1, status=5, status_time=cut3 - 1)  # no data, old: goes
    add_module(pandora_db, 14, 1, status=5, status_time=cut3)      # at the cutoff: stays
    res = engine_run(pandora_db, steps=["checkdb"])
    assert ids(pandora_db, "SELECT id_agente_modulo FROM tagente_modulo") == [11, 12, 14]
    assert step(res, "unknown_modules")["rows"] == 1
    assert step(res, "old_notinit_modules")["rows"] == 1
    assert step(res, "missing_module_status")["rows"] == 2


def test_integrity(pandora_db):
    add_agent(pandora_db, 1)
    add_module(pandora_db, 10, 1)
    pandora_db.query("INSERT INTO talert_templates (id, name) VALUES (1, 't')")
    pandora_db.query("INSERT INTO tgroup_stat (id_group, modules) VALUES (1, 5), (2, 7)")
    with no_fk_checks(pandora_db) as cur:
        cur.execute("INSERT INTO talert_template_modules (id, id_agent_module, id_alert_template) VALUES"
                    " (1, 10, 1), (2, 99, 1)")
    add_module(pandora_db, 20, 77)   # orphan module: goes
    add_status(pandora_db, 30, 88)   # status row of a missing agent: goes (its module is missing too)
    pandora_db.query("INSERT INTO tagente_datos_inc VALUES (10, 1, %s), (20, 1, %s), (99, 1, %s)", (NOW, NOW, NOW))
    res = engine_run(pandora_db, steps=["integrity"])
    assert pandora_db.scalar("SELECT COUNT(*) FROM tgroup_stat") == 0
    assert ids(pandora_db, "SELECT id FROM talert_template_modules") == [1]
    assert ids(pandora_db, "SELECT id_agente_modulo FROM tagente_modulo") == [10]
    assert ids(pandora_db, "SELECT id_agente_modulo FROM tagente_estado") == [10]
    assert ids(pandora_db, "SELECT id_agente_modulo FROM tagente_datos_inc") == [10]
    assert [step(res, n)["rows"] for n in ("group_stats", "orphan_alerts", "orphan_modules", "orphan_status",
                                           "orphan_inc_data")] == [2, 1, 1, 2, 2]


def test_forgotten_discovery_tasks(pandora_db):
    add_server(pandora_db, "data", id_server=1, server_type=0)
    add_server(pandora_db, "dead-discovery", id_server=2, server_type=3, status=-1, master=0)
    add_server(pandora_db, "discovery-a", id_server=3, server_type=3, master=0)
    add_server(pandora_db, "discovery-b", id_server=4, server_type=3, master=0)
    for task, server in ((1, 2), (2, 50), (3, 4), (4, 0)):
        pandora_db.query("INSERT INTO trecon_task (id_rt, name, id_recon_server) VALUES (%s, 't', %s)",
                         (task, server))
    res = engine_run(pandora_db, steps=["discovery_tasks"])
    assert dict(pandora_db.query("SELECT id_rt, id_recon_server FROM trecon_task")) == {1: 3, 2: 3, 3: 4, 4: 3}
    assert step(res, "discovery_tasks")["rows"] == 3


def test_forgotten_discovery_tasks_without_a_live_discovery_server(pandora_db):
    add_server(pandora_db, "dead-discovery", id_server=2, server_type=3, status=-1)
    pandora_db.query("INSERT INTO trecon_task (id_rt, name, id_recon_server) VALUES (1, 't', 2)")
    res = engine_run(pandora_db, steps=["discovery_tasks"])
    assert step(res, "discovery_tasks")["skipped_reason"] == "no live discovery server"
    assert any("no live discovery server" in w for w in res["warnings"])
    assert pandora_db.scalar("SELECT id_recon_server FROM trecon_task") == 2
