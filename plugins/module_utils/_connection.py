# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Database connections shared by every module.

Settings are merged from, lowest priority first: built-in defaults, the
client option file (``config_file``, ``~/.my.cnf``), the Pandora FMS
configuration (``pandora_server.conf`` or the console's ``config.php``), and
the explicit ``login_*`` options.  The password never appears in a message.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re
import stat
import tempfile
import traceback

from ansible_collections.pandorafms.server.plugins.module_utils._errors import (
    ConfigError, ConnectionFailed, MissingDependency)

try:
    import pymysql
    import pymysql.cursors
    PYMYSQL_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the managed host
    pymysql = None
    PYMYSQL_IMPORT_ERROR = traceback.format_exc()

DEFAULT_SOCKETS = ("/run/mysqld/mysqld.sock", "/var/run/mysqld/mysqld.sock", "/var/lib/mysql/mysql.sock")
SETTING_KEYS = ("host", "port", "user", "password", "unix_socket", "database", "ca_cert",
                "client_cert", "client_key", "check_hostname", "connect_timeout", "ssl")
MASK = "********"
# PyMySQL accepts 1 to 31536000 seconds; more than an hour to answer a connection is never meant.
MAX_CONNECT_TIMEOUT = 3600


def check_port(value, what):
    """``value`` as a TCP port number (1-65535), or :class:`ConfigError` naming ``what``."""
    try:
        port = int(str(value).strip())
    except (TypeError, ValueError):
        raise ConfigError("%s is %r, which is not a port number; give a whole number from 1 to 65535" % (what, value))
    if not 1 <= port <= 65535:
        raise ConfigError("%s is %s; a TCP port is a whole number from 1 to 65535 (MariaDB/MySQL listen on 3306 by"
                          " default)" % (what, value))
    return port


def check_connect_timeout(value, what):
    """``value`` as seconds (1-3600), or :class:`ConfigError` naming ``what``."""
    try:
        seconds = int(str(value).strip())
    except (TypeError, ValueError):
        raise ConfigError("%s is %r, which is not a whole number of seconds; give a number from 1 to %d"
                          % (what, value, MAX_CONNECT_TIMEOUT))
    if not 1 <= seconds <= MAX_CONNECT_TIMEOUT:
        raise ConfigError("%s is %s; it must be a whole number of seconds from 1 to %d"
                          % (what, value, MAX_CONNECT_TIMEOUT))
    return seconds


def require_pymysql():
    if pymysql is None:
        import sys
        raise MissingDependency(
            "the Python library PyMySQL is not installed for %s on the managed host; install it "
            "(Debian: apt-get install python3-pymysql; or pip install PyMySQL) or set "
            "ansible_python_interpreter to a Python that has it" % sys.executable,
            exception=PYMYSQL_IMPORT_ERROR)


class ConnectionSettings(object):
    """Where and how to log in.  ``repr`` and ``describe`` never show the password."""

    def __init__(self, **kwargs):
        self.host = "localhost"
        self.port = 3306
        self.user = None
        self.password = None
        self.unix_socket = None
        self.database = None
        self.ca_cert = None
        self.client_cert = None
        self.client_key = None
        self.check_hostname = None
        self.connect_timeout = 30
        self.ssl = False
        self.sources = []
        self.update(kwargs, None)

    def update(self, values, source):
        used = False
        for key, value in values.items():
            if key not in SETTING_KEYS:
                raise ValueError("unknown connection setting %s" % key)
            if value is None:
                continue
            setattr(self, key, value)
            used = True
        if used and source:
            self.sources.append(source)
        return self

    def copy(self, **overrides):
        other = ConnectionSettings()
        for key in SETTING_KEYS:
            setattr(other, key, getattr(self, key))
        other.sources = list(self.sources)
        return other.update(overrides, None)

    def describe(self, database=None):
        database = database if database is not None else self.database
        where = self.unix_socket if self._use_socket() else "%s:%s" % (self.host, self.port)
        text = "%s@%s" % (self.user or "(default user)", where)
        if database:
            text += " database '%s'" % database
        return text

    def __repr__(self):
        return "ConnectionSettings(%s)" % self.describe()

    def _use_socket(self):
        return bool(self.unix_socket)

    def redact(self, text):
        """Mask the password anywhere in ``text``."""
        text = str(text)
        if self.password:
            text = text.replace(self.password, MASK)
        return text

    def pymysql_kwargs(self, database=None, autocommit=True):
        kwargs = {
            "user": self.user,
            "password": self.password or "",
            "connect_timeout": self.connect_timeout,
            "autocommit": autocommit,
            "charset": "utf8mb4",
            "database": database if database is not None else self.database,
        }
        if self._use_socket():
            kwargs["unix_socket"] = self.unix_socket
        else:
            kwargs["host"] = self.host
            kwargs["port"] = int(self.port)
        if self.ssl or self.ca_cert or self.client_cert or self.client_key:
            ssl = {}
            if self.ca_cert:
                ssl["ca"] = self.ca_cert
            if self.client_cert:
                ssl["cert"] = self.client_cert
            if self.client_key:
                ssl["key"] = self.client_key
            ssl["check_hostname"] = bool(self.check_hostname)
            kwargs["ssl"] = ssl
            if not self.ca_cert:
                kwargs["ssl_verify_cert"] = False
        return kwargs


# -- the client option file (~/.my.cnf) ------------------------------------
_CNF_KEYS = {"user": "user", "password": "password", "pass": "password", "host": "host",
             "port": "port", "socket": "unix_socket", "ssl-ca": "ca_cert", "ssl_ca": "ca_cert",
             "ssl-cert": "client_cert", "ssl_cert": "client_cert", "ssl-key": "client_key",
             "ssl_key": "client_key", "database": "database", "connect-timeout": "connect_timeout",
             "connect_timeout": "connect_timeout"}
_CNF_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "r": "\r", "\\": "\\", "s": " ", '"': '"', "'": "'"}


def _cnf_value(raw):
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        raw = raw[1:-1]
    else:
        raw = re.sub(r"\s+#.*$", "", raw)
    return re.sub(r"\\(.)", lambda m: _CNF_ESCAPES.get(m.group(1), "\\" + m.group(1)), raw)


def read_option_file(path, groups=("client", "client-server", "client-mariadb", "mysql")):
    """Connection settings from a MySQL/MariaDB option file's client groups."""
    values = {}
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except (IOError, OSError) as exc:
        raise ConfigError("cannot read config_file %s: %s" % (path, exc.strerror or exc))
    group = None
    for line in lines:
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1].strip().lower()
            continue
        if group not in groups or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip().lower()
        if key in _CNF_KEYS:
            values[_CNF_KEYS[key]] = _cnf_value(value)
    if "port" in values:
        values["port"] = check_port(values["port"], "port in config_file %s" % path)
    if "connect_timeout" in values:
        values["connect_timeout"] = check_connect_timeout(values["connect_timeout"],
                                                          "connect_timeout in config_file %s" % path)
    return values


def _cnf_quote(value):
    value = str(value)
    for char, esc in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        value = value.replace(char, esc)
    return '"%s"' % value


def write_defaults_file(settings, directory=None):
    """Write a 0600 ``--defaults-extra-file`` for client tools; return its path.

    The caller removes it (see :func:`defaults_file`).  This is how a password
    reaches ``mariadb``/``mariadb-dump`` without appearing in their argv.
    """
    fd, path = tempfile.mkstemp(prefix="pandora-client-", suffix=".cnf", dir=directory)
    try:
        os.fchmod(fd, stat.S_IRUSR | stat.S_IWUSR)
        os.write(fd, defaults_text(settings).encode("utf-8"))
    finally:
        os.close(fd)
    return path


def defaults_text(settings):
    """The text of a client option file for ``settings`` (it holds the password)."""
    lines = ["[client]"]
    if settings.user:
        lines.append("user=%s" % _cnf_quote(settings.user))
    if settings.password:
        lines.append("password=%s" % _cnf_quote(settings.password))
    if settings.unix_socket:
        lines.append("socket=%s" % _cnf_quote(settings.unix_socket))
    else:
        lines.append("host=%s" % _cnf_quote(settings.host))
        lines.append("port=%d" % int(settings.port))
        lines.append("protocol=TCP")
    for attr, key in (("ca_cert", "ssl-ca"), ("client_cert", "ssl-cert"), ("client_key", "ssl-key")):
        if getattr(settings, attr):
            lines.append("%s=%s" % (key, _cnf_quote(getattr(settings, attr))))
    if settings.check_hostname:
        lines.append("ssl-verify-server-cert")
    # Only the interactive client knows connect-timeout; mariadb-dump refuses a file that sets it
    # in [client], so it goes to the client's own group.
    lines.append("[mysql]")
    lines.append("connect-timeout=%d" % int(settings.connect_timeout))
    return "\n".join(lines) + "\n"


class defaults_file(object):
    """``with defaults_file(settings) as path:`` - a client option file removed afterwards."""

    def __init__(self, settings, directory=None):
        self.settings = settings
        self.directory = directory
        self.path = None

    def __enter__(self):
        self.path = write_defaults_file(self.settings, self.directory)
        return self.path

    def __exit__(self, *exc):
        if self.path and os.path.exists(self.path):
            os.unlink(self.path)


# -- resolving and connecting ------------------------------------------------
def resolve_settings(explicit=None, config_file="~/.my.cnf", pandora_conf=None, console_conf=None):
    """Merge the sources into one :class:`ConnectionSettings`.

    ``explicit`` holds the module's ``login_*`` options (``None`` = not given),
    ``pandora_conf`` / ``console_conf`` the connection dicts read from
    pandora_server.conf or config.php.
    """
    settings = ConnectionSettings()
    explicit = dict(explicit or {})
    # Explicit options first, by their own names: a bad value is refused before any file is read.
    if explicit.get("port") is not None:
        explicit["port"] = check_port(explicit["port"], "login_port")
    if explicit.get("connect_timeout") is not None:
        explicit["connect_timeout"] = check_connect_timeout(explicit["connect_timeout"], "connect_timeout")
    socket_path = explicit.get("unix_socket")
    if socket_path and not os.path.exists(socket_path):
        raise ConfigError("login_unix_socket %s does not exist on the managed host; is the server running there, and"
                          " is this its socket (SHOW VARIABLES LIKE 'socket')?" % socket_path)
    for key, option in (("ca_cert", "ca_cert"), ("client_cert", "client_cert"), ("client_key", "client_key")):
        path = explicit.get(key)
        if path and not os.path.isfile(os.path.expanduser(path)):
            raise ConfigError("%s %s does not exist or is not a file; give the path of the PEM file on the managed"
                              " host" % (option, path))
    if config_file:
        path = os.path.expanduser(config_file)
        if os.path.exists(path):
            settings.update(read_option_file(path), "config_file %s" % path)
    if pandora_conf:
        settings.update(pandora_conf, "pandora_server.conf")
    if console_conf:
        settings.update(console_conf, "console config.php")
    for conf, what in ((pandora_conf, "dbport of pandora_server.conf"), (console_conf, "dbport of config.php")):
        if conf and conf.get("port") is not None:
            check_port(conf["port"], what)
    settings.update(explicit, "module options")
    if explicit.get("host") and not explicit.get("unix_socket") and not (pandora_conf or {}).get("unix_socket"):
        # An explicit host means TCP, even if an option file named a socket.
        settings.unix_socket = None
    if settings.host == "localhost" and not settings.unix_socket and "port" not in explicit \
            and not (pandora_conf or console_conf or {}).get("port"):
        # libmysqlclient's rule: "localhost" means the local socket.
        for candidate in DEFAULT_SOCKETS:
            if os.path.exists(candidate):
                settings.unix_socket = candidate
                break
    validate_settings(settings)
    return settings


def validate_settings(settings, what=""):
    """Refuse, by name, a port or timeout no connection could use (``what`` prefixes the names)."""
    if not settings.unix_socket:
        settings.port = check_port(settings.port, "%sport" % what if what else "port (login_port)")
    if settings.connect_timeout is not None:
        settings.connect_timeout = check_connect_timeout(settings.connect_timeout, "%sconnect_timeout" % what)
    return settings


def connect(settings, database=None, autocommit=True):
    """Open a PyMySQL connection or raise :class:`ConnectionFailed` with a clear reason."""
    require_pymysql()
    validate_settings(settings)
    database = database if database is not None else settings.database
    kwargs = settings.pymysql_kwargs(database, autocommit)
    # PyMySQL applies connect_timeout to the TCP connect only; a server that accepts and then
    # hangs would block the handshake forever.  Bound the handshake too, then lift the bound so
    # long maintenance statements are not cut off.
    kwargs["read_timeout"] = kwargs["write_timeout"] = settings.connect_timeout
    try:
        conn = pymysql.connect(**kwargs)
        for attr in ("_read_timeout", "_write_timeout"):
            if hasattr(conn, attr):
                setattr(conn, attr, None)
        return conn
    except pymysql.err.MySQLError as exc:
        code = exc.args[0] if exc.args else None
        reason = exc.args[1] if len(exc.args) > 1 else str(exc)
        hint = ""
        if code == 1045:
            hint = " Check login_user/login_password (or dbuser/dbpass in the Pandora configuration)."
        elif code == 1049:
            hint = " The database does not exist."
        elif code in (2003, 2002, 2013):
            hint = (" Is the server running and reachable from this host? (connect_timeout %ss)"
                    % settings.connect_timeout)
        raise ConnectionFailed(settings.redact("cannot connect to MariaDB/MySQL as %s: (%s) %s.%s" % (
            settings.describe(database), code, reason, hint)), code=code)
    except (OSError, ValueError) as exc:
        raise ConnectionFailed(settings.redact("cannot connect to MariaDB/MySQL as %s: %s" % (
            settings.describe(database), exc)))


class ServerInfo(object):
    """Engine and version of a server, for the places where SQL differs."""

    def __init__(self, version_string):
        self.version_string = version_string
        self.engine = "mariadb" if "mariadb" in version_string.lower() else "mysql"
        numbers = re.match(r"(\d+)\.(\d+)\.(\d+)", version_string)
        self.version = tuple(int(n) for n in numbers.groups()) if numbers else (0, 0, 0)

    @property
    def is_mariadb(self):
        return self.engine == "mariadb"

    def as_dict(self):
        return {"engine": self.engine, "version": ".".join(str(n) for n in self.version),
                "version_string": self.version_string}

    def dump_tool_names(self):
        """Client tool names to try, best first."""
        if self.is_mariadb:
            return ("mariadb-dump", "mysqldump")
        return ("mysqldump", "mariadb-dump")


def server_info(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        return ServerInfo(cur.fetchone()[0])


def table_exists(conn, table):
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()"
                    " AND table_name = %s", (table,))
        return cur.fetchone()[0] > 0


def column_exists(conn, table, column):
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE()"
                    " AND table_name = %s AND column_name = %s", (table, column))
        return cur.fetchone()[0] > 0


def existing_tables(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
        return set(row[0] for row in cur.fetchall())
