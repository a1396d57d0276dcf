"""Deletion of disabled and autodisabled agents (purge rows 3 and 18) against the real server."""

import os

from harness.maint_seed import (DAY, NOW, add_agent, add_event, add_module, engine_run, ids, rows_of, step,
                                tconfig)

from ansible_collections.pandorafms.server.plugins.module_utils._agents import agent_files


def test_disabled_agents_use_real_days_not_8600_seconds(pandora_db):
    """Upstream's N*8600 deleted an agent last seen 4 days ago with N=30: these rows catch it."""
    tconfig(pandora_db, delete_disabled_agents=30)
    cut = NOW - 30 * DAY
    add_agent(pandora_db, 1, disabled=1, last_contact=cut - 1)         # older than 30 days: goes
    add_agent(pandora_db, 2, disabled=1, last_contact=cut)             # exactly 30 days: stays
    add_agent(pandora_db, 3, disabled=1, last_contact=NOW - 4 * DAY)   # 4 days: stays (8600 bug deleted it)
    add_agent(pandora_db, 4, disabled=0, last_contact=cut - 99 * DAY)  # enabled: stays
    add_agent(pandora_db, 5, disabled=1, modo=2, last_contact=cut - 99 * DAY)  # autodisabled: row 18's business
    res = engine_run(pandora_db, steps=["purge"])
    assert ids(pandora_db, "SELECT id_agente FROM tagente") == [2, 3, 4, 5]
    s = step(res, "disabled_agents")
    assert s["rows"] == 1 and s["threshold"]["cutoff"] == cut
    assert step(res, "autodisabled_agents")["skipped_reason"] == "days_autodisable_deletion is not defined"


def test_one_day_threshold_keeps_an_agent_seen_half_a_day_ago(pandora_db):
    tconfig(pandora_db, delete_disabled_agents=1)
    add_agent(pandora_db, 1, disabled=1, last_contact=NOW - DAY // 2)
    add_agent(pandora_db, 2, disabled=1, last_contact=NOW - DAY - 1)
    engine_run(pandora_db, steps=["purge"])
    assert ids(pandora_db, "SELECT id_agente FROM tagente") == [1]


def _agent_with_everything(db, agent_id, module_ids, name):
    add_agent(db, agent_id, name=name, disabled=1, last_contact=NOW - 60 * DAY)
    for module_id in module_ids:
        add_module(db, module_id, agent_id)
        db.query("INSERT INTO talert_template_modules (id_agent_module, id_alert_template) VALUES (%s, 1)",
                 (module_id,))
        db.query("INSERT INTO tgraph_source (id_graph, id_agent_module) VALUES (1, %s)", (module_id,))
        db.query("INSERT INTO tlayout_data (id_layout, id_agente_modulo) VALUES (1, %s)", (module_id,))
        db.query("INSERT INTO treport_content (id_report, type, id_agent_module) VALUES (1, 'simple_graph', %s)",
                 (module_id,))
        db.query("INSERT INTO ttag_module (id_tag, id_agente_modulo) VALUES (1, %s)", (module_id,))
        add_event(db, agent_id, module_id, NOW - 3600, comments=1)
        db.query("INSERT INTO tagente_datos VALUES (%s, 1, %s)", (module_id, NOW - 3600))
    db.query("INSERT INTO tagent_custom_data (id_field, id_agent, description) VALUES (1, %s, 'x')", (agent_id,))
    return name


def test_agent_deletion_removes_child_rows_links_and_files(pandora_db, tmp_path):
    tconfig(pandora_db, delete_disabled_agents=30, days_purge=45)
    pandora_db.query("INSERT INTO talert_templates (id, name) VALUES (1, 't')")
    pandora_db.query("INSERT INTO tgraph (id_graph, name) VALUES (1, 'g')")
    pandora_db.query("INSERT INTO tlayout (id, name, id_group, background) VALUES (1, 'vc', 0, '')")
    pandora_db.query("INSERT INTO treport (id_report, name) VALUES (1, 'r')")
    pandora_db.query("INSERT INTO tagent_custom_fields (id_field, name) VALUES (1, 'f')")
    doomed = _agent_with_everything(pandora_db, 7, [70, 71], "doomed-agent")
    add_agent(pandora_db, 8, name="kept-agent")
    add_module(pandora_db, 80, 8)
    kept_event = add_event(pandora_db, 8, 80, NOW - 3600)
    pandora_db.query("INSERT INTO tagent_custom_data (id_field, id_agent, description) VALUES (1, 8, 'y')")
    # Address links: id_ag 7 belongs to agent 8 (upstream deleted this one), id_ag 20 to agent 7.
    pandora_db.query("INSERT INTO taddress (id_a, ip) VALUES (1, '10.0.0.7'), (2, '10.0.0.8')")
    pandora_db.query("INSERT INTO taddress_agent (id_ag, id_a, id_agent) VALUES (7, 2, 8), (20, 1, 7)")
    incoming = tmp_path / "data_in"
    for sub in ("conf", "md5"):
        (incoming / sub).mkdir(parents=True)
    files = agent_files(str(incoming), doomed) + agent_files(str(incoming), "kept-agent")
    for path in files:
        open(path, "w").close()

    res = engine_run(pandora_db, steps=["purge"], incomingdir=str(incoming))

    assert ids(pandora_db, "SELECT id_agente FROM tagente") == [8]
    assert ids(pandora_db, "SELECT id_ag FROM taddress_agent") == [7]
    assert ids(pandora_db, "SELECT id_agente_modulo FROM tagente_modulo") == [80]  # pending removed in the same run
    assert ids(pandora_db, "SELECT id_agente_modulo FROM tagente_estado") == [80]
    assert ids(pandora_db, "SELECT id_evento FROM tevento") == [kept_event]
    for table, column in (("talert_template_modules", "id_agent_module"), ("tgraph_source", "id_agent_module"),
                          ("tlayout_data", "id_agente_modulo"), ("treport_content", "id_agent_module"),
                          ("ttag_module", "id_agente_modulo")):
        assert pandora_db.scalar("SELECT COUNT(*) FROM %s WHERE %s IN (70, 71)" % (table, column)) == 0, table
    assert ids(pandora_db, "SELECT id_agent FROM tagent_custom_data") == [8]  # FK cascade
    # Module history ages out on its own, as upstream.
    assert pandora_db.scalar("SELECT COUNT(*) FROM tagente_datos WHERE id_agente_modulo IN (70, 71)") == 2
    assert [os.path.exists(p) for p in files] == [False, False, True, True]
    s = step(res, "disabled_agents")
    assert s["rows"] == 1
    assert s["details"]["agents"] == ["doomed-agent"]
    assert sorted(s["details"]["files_removed"]) == sorted(files[:2])
    assert s["details"]["rows_by_table"]["tagente_modulo (marked delete_pending)"] == 2
    assert step(res, "pending_modules")["rows"] == 2


def test_check_mode_predicts_agent_deletion_and_its_knock_on_effects(pandora_db, tmp_path):
    tconfig(pandora_db, delete_disabled_agents=30, event_purge=1)
    pandora_db.query("INSERT INTO talert_templates (id, name) VALUES (1, 't')")
    pandora_db.query("INSERT INTO tgraph (id_graph, name) VALUES (1, 'g')")
    pandora_db.query("INSERT INTO tlayout (id, name, id_group, background) VALUES (1, 'vc', 0, '')")
    pandora_db.query("INSERT INTO treport (id_report, name) VALUES (1, 'r')")
    pandora_db.query("INSERT INTO tagent_custom_fields (id_field, name) VALUES (1, 'f')")
    _agent_with_everything(pandora_db, 7, [70, 71], "doomed")
    for module_id in (70, 71):  # old events of the doomed modules: deleted with the agent, not by the event purge
        add_event(pandora_db, 7, module_id, NOW - 5 * DAY)
    add_agent(pandora_db, 8)
    add_module(pandora_db, 80, 8)
    add_event(pandora_db, 8, 80, NOW - 5 * DAY)
    pandora_db.query("INSERT INTO treport_content (id_rc, id_report, type) VALUES (50, 1, 'exception')")
    pandora_db.query("INSERT INTO treport_content_item (id_report_content, id_agent_module) VALUES (50, 70)")
    before = pandora_db.checksums()
    plan = engine_run(pandora_db, check_mode=True, steps=["purge", "checkdb", "integrity"])
    assert pandora_db.checksums() == before
    real = engine_run(pandora_db, steps=["purge", "checkdb", "integrity"])
    assert rows_of(plan) == rows_of(real)
    assert step(real, "events")["rows"] == 1
    assert step(real, "report_contents_empty_exception")["rows"] == 1


def test_autodisabled_agents_and_their_modules_go_in_one_run(pandora_db):
    tconfig(pandora_db, days_autodisable_deletion=30)
    pandora_db.query("INSERT INTO treport (id_report, name) VALUES (1, 'r')")
    add_agent(pandora_db, 1, disabled=1, modo=2, last_contact=NOW - 31 * DAY)
    add_agent(pandora_db, 2, disabled=1, modo=2, last_contact=NOW - 4 * DAY)
    add_module(pandora_db, 10, 1)
    add_module(pandora_db, 20, 2)
    pandora_db.query("INSERT INTO treport_content (id_rc, id_report, type) VALUES (5, 1, 'exception')")
    pandora_db.query("INSERT INTO treport_content_item (id_report_content, id_agent_module) VALUES (5, 10)")
    before = pandora_db.checksums()
    plan = engine_run(pandora_db, check_mode=True)
    assert pandora_db.checksums() == before
    res = engine_run(pandora_db)
    assert rows_of(plan) == rows_of(res)
    assert ids(pandora_db, "SELECT id_agente FROM tagente") == [2]
    assert ids(pandora_db, "SELECT id_agente_modulo FROM tagente_modulo") == [20]
    assert ids(pandora_db, "SELECT id_rc FROM treport_content") == []
    assert step(res, "autodisabled_agents")["rows"] == 1
    assert step(res, "pending_modules_second_pass")["rows"] == 1
    again = engine_run(pandora_db)
    assert again["changed"] is False, [s for s in again["steps"] if s["rows"]]
