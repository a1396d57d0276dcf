# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Readers for the configuration files of a Pandora FMS installation.

* ``pandora_server.conf``: ``key value`` lines.  Unlike upstream's pandora_db.pl
  parser this one ignores comments and blank lines, keeps a final line that has
  no newline, and lets later lines win (as upstream does).
* The console's ``include/config.php``: ``$config["dbpass"] = '...';`` lines with
  any quoting and any characters in the value, comments ignored.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re
import socket

from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConfigError

SERVER_CONF = "/etc/pandora/pandora_server.conf"
HA_HOSTS_FILE = "/var/spool/pandora/data_in/conf/pandora_ha_hosts.conf"

# Defaults from pandora_db.pl (reference section 2.1).
SERVER_DEFAULTS = {
    "dbengine": "mysql",
    "dbport": "3306",
    "verbosity": "3",
    "incomingdir": "/var/spool/pandora/data_in",
    "ha_hosts_file": HA_HOSTS_FILE,
}
REQUIRED_SERVER_KEYS = ("dbuser", "dbpass", "dbname", "dbhost")


def _read_text(path, what):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except (IOError, OSError) as exc:
        raise ConfigError("cannot read the %s %s: %s" % (what, path, exc.strerror or exc))


def parse_server_conf_text(text):
    """Return the ``key -> value`` dict of a pandora_server.conf text (later lines win)."""
    values = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        values[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    return values


def default_servername():
    return re.sub(r"\s+", "", socket.gethostname())


def read_server_conf(path=SERVER_CONF, ha_hosts_file=None):
    """Read pandora_server.conf the way the server tools use it.

    Returns a dict with the defaults filled in, ``servername`` resolved, and
    ``dbhost`` replaced by the first line of the HA hosts file when that file
    exists (what ``pandora_ha`` writes for the current master database).
    The key ``_dbhost_source`` says where ``dbhost`` came from.
    """
    values = dict(SERVER_DEFAULTS)
    values.update(parse_server_conf_text(_read_text(path, "Pandora FMS server configuration")))
    missing = [key for key in REQUIRED_SERVER_KEYS if key not in values]
    if missing:
        raise ConfigError("%s lacks %s; pandora_db needs dbuser, dbpass, dbname and dbhost"
                          % (path, ", ".join(missing)))
    if not values.get("servername"):
        values["servername"] = default_servername()
    values["_dbhost_source"] = path
    ha_path = ha_hosts_file if ha_hosts_file is not None else values.get("ha_hosts_file")
    if ha_path and os.path.isfile(ha_path):
        first = _read_text(ha_path, "Pandora HA hosts file").splitlines()
        host = first[0].strip() if first else ""
        if host:
            values["dbhost"] = host
            values["_dbhost_source"] = ha_path
    return values


def server_conf_connection(values):
    """Map pandora_server.conf values to connection keyword arguments."""
    conn = {
        "host": values.get("dbhost"),
        "user": values.get("dbuser"),
        "password": values.get("dbpass"),
        "database": values.get("dbname"),
    }
    port = values.get("dbport")
    if port:
        try:
            conn["port"] = int(port)
        except ValueError:
            raise ConfigError("dbport %r in pandora_server.conf is not a number" % port)
    if values.get("dbssl", "0") not in ("", "0"):
        conn["ssl"] = True
        if values.get("dbsslcafile"):
            conn["ca_cert"] = values["dbsslcafile"]
        if values.get("verify_mysql_ssl_cert", "0") not in ("", "0"):
            conn["check_hostname"] = True
    return dict((k, v) for k, v in conn.items() if v is not None)


# $config["dbpass"] = "value";   $config['dbpass']='value';   with any spacing.
_PHP_ASSIGN = re.compile(
    r"""\$config\s*\[\s*(['"])(?P<key>\w+)\1\s*\]\s*=\s*(?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[-\w.]+)\s*;""",
    re.S)
_PHP_COMMENTS = re.compile(
    r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|/\*.*?\*/|//[^\n]*|\#[^\n]*""", re.S)


def _php_unquote(token):
    if token[:1] == "'":
        return re.sub(r"\\([\\'])", r"\1", token[1:-1])
    if token[:1] == '"':
        body = token[1:-1]
        escapes = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "$": "$"}
        return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), "\\" + m.group(1)), body)
    return token


def parse_console_config_text(text):
    """Return the ``$config[...]`` string assignments of a config.php text."""
    # Blank out comments, keeping string literals intact (a password may hold '#' or '//').
    code = _PHP_COMMENTS.sub(lambda m: m.group(1) or " ", text)
    values = {}
    for match in _PHP_ASSIGN.finditer(code):
        values[match.group("key")] = _php_unquote(match.group("value"))
    return values


def read_console_config(console_path):
    """Database settings from ``<console_path>/include/config.php``."""
    path = os.path.join(console_path, "include", "config.php")
    values = parse_console_config_text(_read_text(path, "Pandora FMS console configuration"))
    missing = [key for key in ("dbuser", "dbname") if not values.get(key)]
    if missing:
        raise ConfigError("%s has no %s; is this the Pandora FMS console's config.php?"
                          % (path, " or ".join("$config['%s']" % k for k in missing)))
    conn = {"user": values["dbuser"], "password": values.get("dbpass", ""),
            "database": values["dbname"], "host": values.get("dbhost") or "localhost"}
    if values.get("dbport"):
        try:
            conn["port"] = int(values["dbport"])
        except ValueError:
            raise ConfigError("$config['dbport'] %r in %s is not a number" % (values["dbport"], path))
    return conn
