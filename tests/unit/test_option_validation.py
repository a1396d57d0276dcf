"""Every option of pandora_db_maintain and of the connection fragment against its range (no database).

The same functions run before check mode's plan and the real run (tests/functional/test_module_refusals.py runs a
case of each class through ansible-playbook in both modes); here each option's edges are checked: the first value
out of range is refused with the option named, the last one in range is accepted.
"""

import ast
import os

import pytest

from ansible_collections.pandorafms.server.plugins.module_utils._connection import (
    read_option_file, resolve_settings)
from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConfigError
from ansible_collections.pandorafms.server.plugins.module_utils._maintain import (
    MAX_BATCH_SIZE, STEP_CHOICES, validate_options)
from ansible_collections.pandorafms.server.plugins.module_utils._purge import THRESHOLD_KEYS, purge_steps
from ansible_collections.pandorafms.server.plugins.module_utils._checks import checkdb_steps, integrity_steps
from ansible_collections.pandorafms.server.plugins.module_utils._history_purge import history_purge_steps

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (keyword of validate_options or option name, refused value, message part, accepted value)
RUN_LIMITS = [
    ("batch_size", 0, "option batch_size is 0; it must be 1 or more", 1),
    ("batch_size", MAX_BATCH_SIZE + 1, "option batch_size is 100001; it must be at most 100000", MAX_BATCH_SIZE),
    ("batch_size", "lots", "option batch_size is 'lots'", 1000),
    ("batch_sleep", -0.5, "option batch_sleep is -0.5", 0.0),
    ("batch_sleep", 61, "option batch_sleep is 61; it must be at most 60.0", 60),
    ("max_runtime", -1, "option max_runtime is -1", 0),
    ("lock_timeout", -1, "option lock_timeout is -1", 0),
    ("lock_timeout", 86401, "option lock_timeout is 86401; it must be at most 86400", 86400),
    ("incomingdir", "data_in", "option incomingdir is 'data_in', a relative path", "/var/spool/pandora/data_in"),
    ("log_file", "db.log", "option log_file is 'db.log', a relative path", "/var/log/pandora/db.log"),
]


@pytest.mark.parametrize("key, bad, message, good", RUN_LIMITS, ids=["%s=%s" % (c[0], c[1]) for c in RUN_LIMITS])
def test_run_limits(key, bad, message, good):
    with pytest.raises(ConfigError) as caught:
        validate_options(None, {}, **{key: bad})
    assert message in str(caught.value)
    validate_options(None, {}, **{key: good})


# Thresholds and compaction options: the smallest accepted value, and the value just below it.
MINIMUMS = dict((key, -1 if key == "session_timeout" else 0) for key in THRESHOLD_KEYS if key != "delete_notinit")
MINIMUMS.update(days_compact=0, history_days_compact=0, step_compact=1, history_step_compact=1,
                compact_row_budget=1, compact_chunk_rows=1)


@pytest.mark.parametrize("key", sorted(MINIMUMS))
def test_threshold_and_compaction_minimums(key):
    lowest = MINIMUMS[key]
    with pytest.raises(ConfigError) as caught:
        validate_options(None, {key: lowest - 1})
    assert "option %s is %s" % (key, lowest - 1) in str(caught.value)
    validate_options(None, {key: lowest})


def test_steps():
    with pytest.raises(ConfigError) as caught:
        validate_options([], {})
    assert "steps is an empty list" in str(caught.value)
    with pytest.raises(ConfigError):
        validate_options(["purge", "vacuum"], {})
    assert validate_options(["compact", "purge", "purge"], {})["steps"] == ["compact", "purge"]
    assert validate_options(None, {})["steps"] == list(STEP_CHOICES)


def test_history_port():
    for bad in (0, 65536, "x"):
        with pytest.raises(ConfigError) as caught:
            validate_options(None, {}, history={"port": bad})
        assert "history_login_port is" in str(caught.value)
    assert validate_options(None, {}, history={"port": 65535})["history"]["port"] == 65535


# -- the connection options ------------------------------------------------------------------------------------
@pytest.mark.parametrize("key, bad, message, good", [
    ("port", 0, "login_port is 0; a TCP port is a whole number from 1 to 65535", 1),
    ("port", 65536, "login_port is 65536", 65535),
    ("connect_timeout", 0, "connect_timeout is 0; it must be a whole number of seconds from 1 to 3600", 1),
    ("connect_timeout", 3601, "connect_timeout is 3601", 3600),
])
def test_connection_options(key, bad, message, good):
    with pytest.raises(ConfigError) as caught:
        resolve_settings({"host": "127.0.0.1", key: bad}, config_file="")
    assert message in str(caught.value)
    assert getattr(resolve_settings({"host": "127.0.0.1", key: good}, config_file=""), key) == good


def test_tls_files_must_exist(tmp_path):
    pem = tmp_path / "ca.pem"
    pem.write_text("x")
    for key in ("ca_cert", "client_cert", "client_key"):
        with pytest.raises(ConfigError) as caught:
            resolve_settings({"host": "127.0.0.1", key: str(tmp_path / "none.pem")}, config_file="")
        assert "%s %s does not exist" % (key, tmp_path / "none.pem") in str(caught.value)
        assert getattr(resolve_settings({"host": "127.0.0.1", key: str(pem)}, config_file=""), key) == str(pem)


@pytest.mark.parametrize("line, message", [
    ("connect_timeout=abc", "connect_timeout in config_file {path} is 'abc', which is not a whole number"),
    ("connect-timeout=0", "connect_timeout in config_file {path} is 0"),
    ("port=99999", "port in config_file {path} is 99999; a TCP port is"),
    ("port=abc", "port in config_file {path} is 'abc', which is not a port number"),
])
def test_option_file_values(tmp_path, line, message):
    path = tmp_path / "my.cnf"
    path.write_text("[client]\nuser=u\n%s\n" % line)
    with pytest.raises(ConfigError) as caught:
        read_option_file(str(path))
    assert message.format(path=path) in str(caught.value)
    with pytest.raises(ConfigError):
        resolve_settings({"host": "127.0.0.1", "connect_timeout": 30}, config_file=str(path))


def test_unix_socket_must_exist(tmp_path):
    with pytest.raises(ConfigError) as caught:
        resolve_settings({"unix_socket": str(tmp_path / "mysqld.sock")}, config_file="")
    assert "login_unix_socket %s does not exist" % (tmp_path / "mysqld.sock") in str(caught.value)
    (tmp_path / "mysqld.sock").write_text("")
    assert resolve_settings({"unix_socket": str(tmp_path / "mysqld.sock")}, config_file="").unix_socket


def test_pandora_server_conf_port_is_checked():
    with pytest.raises(ConfigError) as caught:
        resolve_settings({}, config_file="", pandora_conf={"host": "db", "port": 0})
    assert "dbport of pandora_server.conf is 0" in str(caught.value)


# -- the module's documentation ------------------------------------------------------------------------------
def _module_doc(name):
    with open(os.path.join(ROOT, "plugins", "modules", name + ".py")) as handle:
        tree = ast.parse(handle.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "DOCUMENTATION":
            return node.value.value if hasattr(node.value, "value") else node.value.s
    raise AssertionError("no DOCUMENTATION")


def test_every_step_name_is_documented():
    doc = _module_doc("pandora_db_maintain")
    # report_contents is the step whose entries are named report_contents_modules, report_items, ...
    names = [s.name for s in purge_steps() + checkdb_steps() + integrity_steps() + history_purge_steps()
             if s.name != "report_contents"]
    names += ["audit_extended", "pending_modules_parents", "report_items", "report_sla_items", "compact",
              "report_contents_modules", "report_contents_agents", "report_contents_empty_exception",
              "report_contents_empty_sla", "discovery_tasks"]
    missing = [name for name in names if "C(%s)" % name not in doc]
    assert not missing
    assert "now:" not in doc and "(!UNKNOWN)" not in doc
    assert "(!UNKNOWN)" not in _module_doc("pandora_db_info")
