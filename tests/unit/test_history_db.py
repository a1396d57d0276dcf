"""Pure parts of the history database engine: account statements, SQL splitter, tconfig plans, option checks."""

import io

import pytest

from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConfigError
from ansible_collections.pandorafms.server.plugins.module_utils._history_db import (
    HistoryDbSettings, account_statements, bind_password, grant_db_pattern, iter_statements, plan_tokens,
    quote_ident, statement_table)


# -- account statements (the MySQL 8 form, tested as text) -------------------
def test_account_statements_create_user_then_grant_for_each_host():
    stmts = account_statements("pandora", "pandora_history", ["10.0.0.5", "console.example"])
    assert [sql for sql, dummy in stmts] == [
        "CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s",
        "GRANT ALL PRIVILEGES ON `pandora\\_history`.* TO %s@%s",
        "CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s",
        "GRANT ALL PRIVILEGES ON `pandora\\_history`.* TO %s@%s",
    ]
    assert stmts[0][1] == ("pandora", "10.0.0.5", None)
    assert stmts[3][1] == ("pandora", "console.example")
    bound = bind_password(stmts, "s3cr'et")
    assert bound[0][1] == ("pandora", "10.0.0.5", "s3cr'et")
    for sql, dummy in bound:
        assert "s3cr" not in sql
        assert "IDENTIFIED" not in sql or sql.startswith("CREATE USER")


def test_account_statements_privileges_quoting_and_update_password():
    stmts = account_statements("u", "we`ird%db", ["%"], privileges=["select", "insert ", "LOCK  TABLES"],
                               update_password=True)
    assert stmts[1] == ("ALTER USER %s@%s IDENTIFIED BY %s", ("u", "%", None))
    assert stmts[2][0] == "GRANT SELECT, INSERT, LOCK TABLES ON `we``ird\\%db`.* TO %s@%s"
    with pytest.raises(ConfigError):
        account_statements("u", "db", ["h"], privileges=["ALL; DROP DATABASE x"])
    with pytest.raises(ConfigError):
        account_statements("u", "db", [])


def test_identifiers_are_quoted():
    assert quote_ident("a`b") == "`a``b`"
    assert grant_db_pattern("p_h") == "`p\\_h`"


# -- the streaming SQL splitter ------------------------------------------------
def _split(text):
    return [(s.text, s.line) for s in iter_statements(io.BytesIO(text.encode()))]


def test_splitter_quotes_comments_and_lines():
    text = ("-- header; not a statement\n"
            "CREATE TABLE `t;1` (\n  a VARCHAR(5) DEFAULT 'x;y', -- trailing; comment\n"
            "  b TEXT COMMENT \"it's; fine\"\n);\n"
            "# hash comment;\n"
            "INSERT INTO t VALUES ('a\\'; b');  INSERT INTO t VALUES ('c')\n")
    out = _split(text)
    assert [line for dummy, line in out] == [2, 7, 7]
    assert out[0][0].startswith("CREATE TABLE `t;1`") and "'x;y'" in out[0][0] and "trailing" not in out[0][0]
    assert out[1][0] == "INSERT INTO t VALUES ('a\\'; b')"
    assert out[2][0] == "INSERT INTO t VALUES ('c')"  # last statement without a delimiter


def test_splitter_delimiter_and_block_comments():
    text = ("/* a; block\n comment */ SET @a = 1;\nDELIMITER //\n"
            "CREATE TRIGGER x BEFORE INSERT ON t FOR EACH ROW BEGIN SET @b = 1; END//\nDELIMITER ;\nSELECT 1;\n")
    out = [t for t, dummy in _split(text)]
    assert out[0].endswith("SET @a = 1")
    assert out[1] == "CREATE TRIGGER x BEFORE INSERT ON t FOR EACH ROW BEGIN SET @b = 1; END"
    assert out[2] == "SELECT 1"


def test_splitter_rejects_truncated_and_binary_input():
    with pytest.raises(ConfigError, match="quoted string that opens near line 2"):
        _split("SELECT 1;\nINSERT INTO t VALUES ('never closed);\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        list(iter_statements(io.BytesIO(b"\xff\xfe\x00garbage")))


@pytest.mark.parametrize("sql,table", [
    ("CREATE TABLE IF NOT EXISTS `tagente_datos` (a INT)", "tagente_datos"),
    ("create  table  tevento (a int)", "tevento"),
    ("CREATE TABLE `we``ird` (a INT)", "we`ird"),
    ("INSERT INTO tconfig VALUES (1)", None),
    ("ALTER TABLE tconfig ADD x INT", None),
])
def test_statement_table(sql, table):
    assert statement_table(sql) == table


# -- tconfig plans ---------------------------------------------------------------
def test_plan_tokens_inserts_updates_and_removes_duplicates_keeping_the_first():
    rows = [(1, "days_purge", "7"), (2, "MR", "69"), (3, "days_purge", "9"), (4, "foo", "a"), (5, "foo", "b"),
            (6, "event_purge", "180")]
    actions = plan_tokens(rows, [("days_purge", "180"), ("event_purge", "180"), ("new", "1")], dedupe_all=True)
    by = dict((a["token"], a) for a in actions)
    assert set(by) == {"days_purge", "new", "foo"}  # event_purge already right
    assert by["days_purge"]["keep_id"] == 1 and by["days_purge"]["delete_ids"] == [3]
    assert by["days_purge"]["before"] == "7" and by["days_purge"]["after"] == "180"
    assert by["new"]["insert"] is True and by["new"]["before"] is None
    assert by["foo"]["keep_id"] == 4 and by["foo"]["delete_ids"] == [5] and by["foo"]["after"] == "a"
    assert plan_tokens(rows, [("MR", "69")]) == []


# -- option checks, before any connection -----------------------------------------
def _params(**kw):
    params = dict(name="pandora_history", state="present", login_host="10.1.1.1", login_port=None,
                  config_file="", main_config_file="", schema_file="/nonexistent", force=False, strict=False,
                  days_purge=180, days_compact=120, step_compact=1, event_purge=180, string_purge=180,
                  trap_history_purge=180, history_db_host=None, history_db_port=None, history_db_user="pandora",
                  history_db_pass="pw", history_db_days=30, history_db_step=1000, history_db_delay=2,
                  history_db_adv=False, history_db_string_days=0, history_event_enabled=False,
                  history_event_days=90, history_trap_enabled=False, history_trap_days=90, connect_timeout=5)
    params.update(kw)
    return params


def test_settings_defaults_and_main_tokens():
    s = HistoryDbSettings.from_params(_params())
    tokens = dict(s.main_tokens())
    assert tokens["history_db_enabled"] == "1" and tokens["history_db_host"] == "10.1.1.1"
    assert tokens["history_db_port"] == "3306" and tokens["history_db_adv"] == "0"
    assert tokens["history_db_name"] == "pandora_history" and s.main.database == "pandora"
    assert "history_db_pass" not in dict(HistoryDbSettings.from_params(_params(history_db_pass=None)).main_tokens())
    assert dict(s.history_tokens())["history_db_enabled"] == "0"


@pytest.mark.parametrize("override,message", [
    (dict(history_db_step=0), "history_db_step is 0"),
    (dict(history_db_delay=-1), "history_db_delay is -1"),
    (dict(history_db_adv=True, history_db_string_days=0), "history_db_string_days is 0"),
    (dict(step_compact=0), "step_compact is 0"),
    (dict(days_purge=30, strict=True), "days_purge (30 days) is not larger than history_db_days"),
    (dict(history_event_enabled=True, history_event_days=200, strict=True), "event_purge (180 days)"),
    (dict(name=""), "name ''"),
    (dict(login_db="pandora"), "login_db is not used"),
    (dict(login_host=None, login_unix_socket="/run/x.sock"), "history_db_host is required"),
])
def test_settings_refused(override, message, tmp_path):
    if override.get("login_unix_socket"):
        # The connection layer refuses a socket that does not exist; this case is about the missing host.
        sock = tmp_path / "mysqld.sock"
        sock.write_text("")
        override = dict(override, login_unix_socket=str(sock))
    with pytest.raises(ConfigError) as err:
        HistoryDbSettings.from_params(_params(**override))
    assert message in str(err.value)


def test_retention_warning_without_strict_and_zero_purge_never_warns():
    assert "not larger" in HistoryDbSettings.from_params(_params(days_purge=10)).warnings[0]
    assert HistoryDbSettings.from_params(_params(days_purge=0)).warnings == []
