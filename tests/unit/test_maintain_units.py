"""Pure functions of the maintenance engine (no database)."""

import datetime
import hashlib
import os

import pytest

from ansible_collections.pandorafms.server.plugins.module_utils._agents import agent_files
from ansible_collections.pandorafms.server.plugins.module_utils._batch import Simulation, _fraction
from ansible_collections.pandorafms.server.plugins.module_utils._checks import checkdb_steps, integrity_steps
from ansible_collections.pandorafms.server.plugins.module_utils._connection import ConnectionSettings
from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConfigError
from ansible_collections.pandorafms.server.plugins.module_utils._history_purge import history_purge_steps
from ansible_collections.pandorafms.server.plugins.module_utils._maintain import (
    DEFAULT_STEPS, MaintenanceRun, normalise_steps)
from ansible_collections.pandorafms.server.plugins.module_utils._purge import (
    THRESHOLDS, _netflow_commands, _sflow_commands, check_rule_table, purge_steps, resolve_batch_size,
    resolve_threshold, resolve_thresholds)
from ansible_collections.pandorafms.server.plugins.module_utils._tconfig import TConfig

SPECS = dict((spec.key, spec) for spec in THRESHOLDS)


def tc(**values):
    return TConfig(dict((k, str(v)) for k, v in values.items()), {})


# -- thresholds ---------------------------------------------------------------------------------------------
def test_option_wins_over_tconfig():
    th = resolve_threshold(SPECS["event_purge"], tc(event_purge=30), {"event_purge": 3})
    assert (th.value, th.source, th.active) == (3, "option", True)


@pytest.mark.parametrize("key, default", [("string_purge", 7), ("event_purge", 10), ("audit_purge", 7),
                                          ("trap_purge", 7), ("gis_purge", 15)])
def test_upstream_code_defaults(key, default):
    th = resolve_threshold(SPECS[key], tc(), {})
    assert (th.value, th.source) == (default, "default")


@pytest.mark.parametrize("key", ["days_purge", "delete_disabled_agents", "days_autodisable_deletion",
                                 "inventory_purge", "delete_old_messages", "num_past_special_days",
                                 "days_delete_unknown", "session_timeout", "sflow_max_lifetime"])
def test_unset_means_skip(key):
    th = resolve_threshold(SPECS[key], tc(), {})
    assert th.value is None and not th.active
    assert th.skip_reason() == "%s is not defined" % key


def test_zero_means_skip():
    th = resolve_threshold(SPECS["days_purge"], tc(days_purge=0), {})
    assert th.value == 0 and not th.active and th.skip_reason() == "days_purge is 0"


@pytest.mark.parametrize("raw", ["abc", "1O", "-1", "4.5", "--"])
def test_garbage_in_tconfig_names_the_key(raw):
    with pytest.raises(ConfigError) as err:
        resolve_threshold(SPECS["audit_purge"], tc(audit_purge=raw), {})
    assert "tconfig token audit_purge" in str(err.value)


def test_history_token_error_says_history():
    with pytest.raises(ConfigError) as err:
        resolve_threshold(SPECS["history_trap_purge"], tc(trap_history_purge="x"), {})
    assert "tconfig token trap_history_purge of the history database" in str(err.value)


def test_negative_option_names_the_option():
    with pytest.raises(ConfigError) as err:
        resolve_threshold(SPECS["gis_purge"], tc(), {"gis_purge": -2})
    assert "option gis_purge is -2" in str(err.value)


def test_session_timeout_accepts_minus_one_only():
    assert resolve_threshold(SPECS["session_timeout"], tc(session_timeout=-1), {}).value == -1
    with pytest.raises(ConfigError):
        resolve_threshold(SPECS["session_timeout"], tc(session_timeout=-2), {})


def test_whole_number_written_as_float_is_accepted():
    assert resolve_threshold(SPECS["days_purge"], tc(days_purge="45.0"), {}).value == 45


@pytest.mark.parametrize("raw, expected", [("1", True), ("0", False), ("yes", False), ("", False)])
def test_delete_notinit_is_upstreams_string_compare(raw, expected):
    assert resolve_threshold(SPECS["delete_notinit"], tc(delete_notinit=raw), {}).value is expected


def test_only_the_selected_groups_are_resolved():
    values = tc(event_purge="garbage", days_delete_unknown=3)
    out = resolve_thresholds(values, {}, ["checkdb"])
    assert out["days_delete_unknown"].value == 3 and "event_purge" not in out
    with pytest.raises(ConfigError):
        resolve_thresholds(values, {}, ["purge"])


def test_history_thresholds_need_a_history_tconfig():
    out = resolve_thresholds(tc(), {}, ["history_purge"], history_tconfig=tc(days_purge=180))
    assert out["history_days_purge"].value == 180 and out["history_string_purge"].value == 7
    assert "history_days_purge" not in resolve_thresholds(tc(), {}, ["history_purge"])


@pytest.mark.parametrize("tokens, option, expected", [({}, None, 1000), ({"small_operation_step_datos_purge": 250},
                                                      None, 250), ({"small_operation_step_datos_purge": 0}, None, 1000),
                                                      ({"small_operation_step_datos_purge": 250}, 40, 40)])
def test_batch_size(tokens, option, expected):
    assert resolve_batch_size(tc(**tokens), option) == expected


def test_batch_size_errors():
    with pytest.raises(ConfigError):
        resolve_batch_size(tc(small_operation_step_datos_purge="x"), None)
    with pytest.raises(ConfigError):
        resolve_batch_size(tc(), 0)


# -- steps ------------------------------------------------------------------------------------------------------
def test_purge_steps_follow_upstream_order():
    assert check_rule_table() == [
        "extended_sessions", "inventory", "disabled_agents", "module_data", "export_data", "php_sessions",
        "planned_downtimes", "string_data", "events", "audit", "traps", "enterprise_cleanup", "gis_data",
        "pending_modules_status", "pending_modules", "agent_access", "report_contents", "autodisabled_agents",
        "netflow", "sflow", "log_data", "ncm_data", "special_days", "graph_sources", "messages", "console_cache"]
    assert len(purge_steps()) == 26


def test_check_and_integrity_steps_in_order():
    assert [s.name for s in checkdb_steps()] == ["notinit_modules", "unknown_modules", "old_notinit_modules",
                                                 "missing_status", "missing_module_status", "empty_aliases"]
    assert [s.name for s in integrity_steps()] == ["group_stats", "orphan_alerts", "orphan_modules", "orphan_status",
                                                   "orphan_inc_data"]
    assert [s.table for s in history_purge_steps()] == ["tagente_datos", "tagente_datos_string", "tevento", "ttrap"]
    assert all(s.database == "history" for s in history_purge_steps())


def test_tables_without_index_on_the_purge_column_are_walked_by_primary_key():
    rules = dict((s.name, s) for s in purge_steps() if hasattr(s, "walk"))
    assert (rules["export_data"].walk, rules["export_data"].pk) == ("pk", "id")
    for name in ("module_data", "string_data", "events", "traps", "gis_data", "inventory", "agent_access"):
        assert rules[name].walk == "index", name


def test_steps_option():
    assert normalise_steps(None) == list(DEFAULT_STEPS)
    assert normalise_steps(["integrity", "purge", "purge"]) == ["integrity", "purge"]
    with pytest.raises(ConfigError) as err:
        normalise_steps(["purge", "vacuum"])
    assert "vacuum" in str(err.value)


def test_runner_validates_its_own_options_before_connecting():
    settings = ConnectionSettings(host="127.0.0.1", port=1, user="u", password="p", database="pandora")
    with pytest.raises(ConfigError):
        MaintenanceRun(settings, batch_sleep=-1)
    with pytest.raises(ConfigError):
        MaintenanceRun(settings, max_runtime="soon")
    with pytest.raises(ConfigError) as err:
        MaintenanceRun(settings, thresholds={"days_prune": 3})
    assert "days_prune" in str(err.value)
    with pytest.raises(ConfigError) as err:
        MaintenanceRun(ConnectionSettings(host="127.0.0.1", port=1)).run()
    assert "login_db" in str(err.value)


def test_servername_and_incomingdir_come_from_the_server_conf():
    settings = ConnectionSettings(database="pandora")
    run = MaintenanceRun(settings, {"servername": "px", "incomingdir": "/data"})
    assert (run.servername, run.incomingdir) == ("px", "/data")
    run = MaintenanceRun(settings, {"servername": "px"}, servername="py", incomingdir="/x")
    assert (run.servername, run.incomingdir) == ("py", "/x")


# -- helpers ----------------------------------------------------------------------------------------------------
def test_agent_files_are_md5_of_the_name():
    digest = hashlib.md5("agente ñ".encode("utf-8")).hexdigest()
    expected = [os.path.join("/in", "conf", digest + ".conf"), os.path.join("/in", "md5", digest + ".md5")]
    assert agent_files("/in", "agente ñ") == expected


def test_nfexpire_command_lines():
    assert _netflow_commands("/usr/bin/nfexpire", "/nf", 5) == [
        ["/usr/bin/nfexpire", "-u", "/nf", "-t", "5d", "-w", "100"], ["/usr/bin/nfexpire", "-r", "/nf"],
        ["/usr/bin/nfexpire", "-e", "/nf"]]
    assert _sflow_commands("/usr/bin/nfexpire", "/sf", 3) == [["/usr/bin/nfexpire", "-r", "/sf", "-t", "3d"]]


@pytest.mark.parametrize("first, current, last, expected", [
    (0, 50, 100, 0.5), (10, 10, 10, None), (100, 150, 200, 0.5), (0, 300, 100, 1.0),
    (datetime.datetime(2026, 1, 1), datetime.datetime(2026, 1, 2), datetime.datetime(2026, 1, 5), 0.25),
    ("a", "b", "c", None)])
def test_progress_fraction(first, current, last, expected):
    assert _fraction(first, current, last) == expected


def test_simulation_composes_exclusions():
    sim = Simulation()
    assert sim.exclusions("tevento") == ("", ())
    assert sim.agent_deleted("x.id") == ("0", ())
    sim.add_gone("tevento", "tevento.utimestamp < %s", (5,))
    sim.add_gone("tevento", "tevento.id_agentmodule IN (SELECT 1)")
    assert sim.exclusions("tevento") == (" AND NOT (tevento.utimestamp < %s) AND NOT (tevento.id_agentmodule IN"
                                         " (SELECT 1))", (5,))
    sim.agents.append(("SELECT a FROM t WHERE b = %s", (3,)))
    sim.agents.append(("SELECT c FROM u", ()))
    assert sim.agent_deleted("m.id_agente") == ("(m.id_agente IN (SELECT a FROM t WHERE b = %s) OR m.id_agente IN"
                                                " (SELECT c FROM u))", (3,))
