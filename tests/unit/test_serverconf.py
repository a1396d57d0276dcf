"""Parsers of pandora_server.conf, config.php and client option files (no server needed)."""

import os

import pytest

from ansible_collections.pandorafms.server.plugins.module_utils import _connection, _serverconf
from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConfigError
from ansible_collections.pandorafms.server.plugins.module_utils._tconfig import parse_number


def test_server_conf_comments_blank_lines_last_line_without_newline_later_wins(tmp_path):
    conf = tmp_path / "pandora_server.conf"
    conf.write_text("# Pandora FMS server configuration\n\n"
                    "dbname pandora\ndbuser pandora\n"
                    "dbpass first\n"
                    "#dbhost commented.example\n"
                    "   dbhost   10.0.0.5  \n"
                    "dbpass p@ss word#1\n"
                    "errorlog_file /var/log/pandora/pandora_server.error")  # no final newline
    values = _serverconf.read_server_conf(str(conf), ha_hosts_file=str(tmp_path / "absent"))
    assert values["dbpass"] == "p@ss word#1"
    assert values["dbhost"] == "10.0.0.5"
    assert values["errorlog_file"] == "/var/log/pandora/pandora_server.error"
    assert values["dbport"] == "3306"
    assert values["servername"] == _serverconf.default_servername()
    assert values["_dbhost_source"] == str(conf)


def test_server_conf_ha_hosts_file_overrides_dbhost(tmp_path):
    ha = tmp_path / "pandora_ha_hosts.conf"
    ha.write_text("db-master-2.example\ndb-master-1.example\n")
    conf = tmp_path / "pandora_server.conf"
    conf.write_text("dbname pandora\ndbuser pandora\ndbpass x\ndbhost db-master-1.example\n"
                    "ha_hosts_file %s\nservername node 1\n" % ha)
    values = _serverconf.read_server_conf(str(conf))
    assert values["dbhost"] == "db-master-2.example"
    assert values["_dbhost_source"] == str(ha)
    assert values["servername"] == "node 1"


def test_server_conf_missing_required_keys_is_a_clear_error(tmp_path):
    conf = tmp_path / "pandora_server.conf"
    conf.write_text("dbname pandora\n")
    with pytest.raises(ConfigError) as err:
        _serverconf.read_server_conf(str(conf), ha_hosts_file="")
    assert "dbuser" in str(err.value) and str(conf) in str(err.value)


def test_server_conf_missing_file(tmp_path):
    with pytest.raises(ConfigError) as err:
        _serverconf.read_server_conf(str(tmp_path / "nope.conf"))
    assert "nope.conf" in str(err.value)


def test_server_conf_connection_mapping():
    conn = _serverconf.server_conf_connection({"dbhost": "h", "dbport": "3307", "dbuser": "u", "dbpass": "p",
                                               "dbname": "d", "dbssl": "1", "dbsslcafile": "/ca.pem",
                                               "verify_mysql_ssl_cert": "1"})
    assert conn == {"host": "h", "port": 3307, "user": "u", "password": "p", "database": "d", "ssl": True,
                    "ca_cert": "/ca.pem", "check_hostname": True}
    with pytest.raises(ConfigError):
        _serverconf.server_conf_connection({"dbport": "abc"})


PHP = r"""<?php
// Pandora FMS - the console's config file
// $config["dbpass"] = "commented-out";
/* $config['dbuser'] = 'not-this-one'; */
$config["dbtype"] = "mysql"; # type
$config["dbname"]="pandora";
$config['dbuser'] = 'pandora';
$config[ "dbpass" ] = "p\"a'ss#w//rd $x;\\end";
$config["dbhost"]="127.0.0.1";
$config["dbport"] = '3307';
$config["homedir"]="/var/www/html/pandora_console";
"""


def test_console_config_any_quoting_symbols_and_comments(tmp_path):
    values = _serverconf.parse_console_config_text(PHP)
    assert values["dbpass"] == "p\"a'ss#w//rd $x;\\end"
    assert values["dbuser"] == "pandora"
    assert values["dbhost"] == "127.0.0.1"
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "config.php").write_text(PHP)
    conn = _serverconf.read_console_config(str(tmp_path))
    assert conn == {"user": "pandora", "password": "p\"a'ss#w//rd $x;\\end", "database": "pandora",
                    "host": "127.0.0.1", "port": 3307}


def test_console_config_single_quoted_escapes():
    values = _serverconf.parse_console_config_text(r"<?php $config['dbpass'] = 'it\'s \\ ok'; ?>")
    assert values["dbpass"] == "it's \\ ok"


def test_console_config_without_db_settings(tmp_path):
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "config.php").write_text("<?php $config['homedir'] = '/x'; ?>")
    with pytest.raises(ConfigError) as err:
        _serverconf.read_console_config(str(tmp_path))
    assert "dbuser" in str(err.value)


def test_option_file_roundtrip_with_symbols(tmp_path):
    settings = _connection.ConnectionSettings(host="db.example", port=3310, user="pandora",
                                              password='we#ird "pa\\ss" ;x', connect_timeout=7)
    path = _connection.write_defaults_file(settings, str(tmp_path))
    try:
        assert os.stat(path).st_mode & 0o777 == 0o600
        parsed = _connection.read_option_file(path)
    finally:
        os.unlink(path)
    assert parsed["password"] == 'we#ird "pa\\ss" ;x'
    assert parsed["host"] == "db.example" and parsed["port"] == 3310 and parsed["user"] == "pandora"


def test_resolve_precedence(tmp_path):
    cnf = tmp_path / "my.cnf"
    cnf.write_text("[client]\nuser=cnfuser\npassword=cnfpass\nhost=cnfhost\nport=3400\n")
    settings = _connection.resolve_settings({"user": None}, str(cnf), None, None)
    assert (settings.user, settings.password, settings.host, settings.port) == ("cnfuser", "cnfpass", "cnfhost", 3400)
    settings = _connection.resolve_settings({"user": "explicit", "host": "h2"}, str(cnf),
                                            {"user": "confuser", "password": "confpass", "database": "pandora"}, None)
    found = (settings.user, settings.password, settings.host, settings.database)
    assert found == ("explicit", "confpass", "h2", "pandora")
    settings = _connection.resolve_settings({}, "", None, None)
    assert settings.user is None


def test_settings_never_show_password():
    settings = _connection.ConnectionSettings(host="h", user="u", password="S3cret!")
    assert "S3cret" not in repr(settings) and "S3cret" not in settings.describe()
    assert settings.redact("login S3cret! failed") == "login ******** failed"


@pytest.mark.parametrize("raw,expected", [("45", 45), (" 7 ", 7), ("3.0", 3), ("0", 0)])
def test_parse_number_ok(raw, expected):
    assert parse_number(raw, "days_purge", minimum=0) == expected


@pytest.mark.parametrize("raw", ["abc", "", "4.5", "-1"])
def test_parse_number_rejects(raw):
    with pytest.raises(ConfigError) as err:
        parse_number(raw, "tconfig token days_purge", minimum=0)
    assert "days_purge" in str(err.value)
