# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Provisioning of the Pandora FMS history database (reference sections 8 and 18.1).

One run, in this order, every check before the first change:

1. settings: options validated as the console validates its form, plus the
   checks it misses (history days_purge above history_db_days, ...);
2. the main database: character set and collation, ``MR``, server identity;
3. the history server: identity (must not be the main database), the
   database, the schema (``information_schema``), its ``MR``;
4. changes: create the database, load ``schema_file`` statement by statement
   under ``sql_mode=''``, check the essential tables, write the history
   ``tconfig`` in one transaction, then the main ``tconfig`` in one transaction.

Check mode runs the same code and stops before step 4 executes anything; the
``tconfig`` plans come from :func:`plan_tokens` in both modes.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import io
import os
import re

from ansible_collections.pandorafms.server.plugins.module_utils._connection import (
    MASK, connect, pymysql, resolve_settings)
from ansible_collections.pandorafms.server.plugins.module_utils._errors import (
    ConfigError, ConnectionFailed, OperationFailed, PandoraError, PreconditionFailed)
from ansible_collections.pandorafms.server.plugins.module_utils._serverconf import (
    read_server_conf, server_conf_connection)

ESSENTIAL_TABLES = ("tagente_datos", "tagente_datos_string", "tevento", "tconfig")
DEFAULT_MAIN_DB = "pandora"

# Options written to the history tconfig as they are (token = option name).
HISTORY_TOKEN_OPTIONS = ("days_purge", "days_compact", "step_compact", "event_purge", "string_purge",
                         "trap_history_purge")
# Options written to the main tconfig (token = option name; booleans as 0/1).
MAIN_SETTING_OPTIONS = ("history_db_host", "history_db_port", "history_db_user", "history_db_pass",
                        "history_db_days", "history_db_step", "history_db_delay", "history_db_adv",
                        "history_db_string_days", "history_event_enabled", "history_event_days",
                        "history_trap_enabled", "history_trap_days")
SECRET_TOKENS = ("history_db_pass",)
ABSENT_TOKENS = (("history_db_enabled", "0"), ("history_event_enabled", "0"), ("history_trap_enabled", "0"))


# -- settings ----------------------------------------------------------------
class _Redactor(object):
    """Masks every secret of the run in a text (what ``fail_from_error`` needs)."""

    password = None

    def __init__(self, secrets):
        self.secrets = sorted(set(s for s in secrets if s), key=len, reverse=True)

    def redact(self, text):
        text = str(text)
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text


def _positive(options, key, minimum=1):
    value = options.get(key)
    if value is None or value < minimum:
        raise ConfigError("%s is %s; it must be %d or more%s" % (
            key, value, minimum, " (the console refuses 0 too)" if minimum == 1 else ""))


class HistoryDbSettings(object):
    """Everything one run needs, built once from the module's params."""

    def __init__(self, history, main, name, state, options, schema_file, force=False, strict=False):
        self.history = history
        self.main = main
        self.name = name
        self.state = state
        self.options = options
        self.schema_file = schema_file
        self.force = force
        self.strict = strict
        self.warnings = []

    @staticmethod
    def redactor(params):
        return _Redactor([params.get(k) for k in ("login_password", "main_login_password", "history_db_pass")])

    @classmethod
    def from_params(cls, params):
        if params.get("login_db"):
            raise ConfigError("login_db is not used by pandora_history_db; name the history database with name")
        name = params.get("name") or ""
        if not name or len(name) > 64 or name != name.strip():
            raise ConfigError("name %r is not a valid database name (1 to 64 characters, no leading or trailing "
                              "blanks)" % name)
        history = None
        if params.get("state", "present") == "present":
            history = resolve_settings({
                "host": params.get("login_host"), "port": params.get("login_port"),
                "user": params.get("login_user"), "password": params.get("login_password"),
                "unix_socket": params.get("login_unix_socket"), "ca_cert": params.get("ca_cert"),
                "client_cert": params.get("client_cert"), "client_key": params.get("client_key"),
                "check_hostname": params.get("check_hostname"), "connect_timeout": params.get("connect_timeout"),
            }, params.get("config_file"))
            history.database = None
        pandora_conf = None
        if params.get("pandora_server_conf"):
            pandora_conf = server_conf_connection(
                read_server_conf(params["pandora_server_conf"], params.get("ha_hosts_file")))
        main = resolve_settings({
            "host": params.get("main_login_host"), "port": params.get("main_login_port"),
            "user": params.get("main_login_user"), "password": params.get("main_login_password"),
            "unix_socket": params.get("main_login_unix_socket"), "database": params.get("main_login_db"),
            "connect_timeout": params.get("connect_timeout"),
        }, params.get("main_config_file"), pandora_conf)
        if not main.database:
            main.database = DEFAULT_MAIN_DB
        options = dict((k, params.get(k)) for k in HISTORY_TOKEN_OPTIONS + MAIN_SETTING_OPTIONS)
        self = cls(history, main, name, params.get("state", "present"), options,
                   params.get("schema_file"), bool(params.get("force")), bool(params.get("strict")))
        if self.state == "present":
            self._complete_and_validate(params)
        return self

    def _complete_and_validate(self, params):
        opts = self.options
        if not opts.get("history_db_host"):
            if self.history.unix_socket and not params.get("login_host"):
                raise ConfigError("history_db_host is required when the history server is reached through "
                                  "login_unix_socket: it is the host name the Pandora server and console use")
            opts["history_db_host"] = self.history.host
            if self.history.host in ("localhost", "127.0.0.1", "::1"):
                self.warnings.append("history_db_host defaults to login_host %s, which a Pandora FMS server or "
                                     "console on another host cannot reach; set history_db_host unless they all run "
                                     "on the history server" % self.history.host)
        if not opts.get("history_db_port"):
            opts["history_db_port"] = params.get("login_port") or 3306
        if not 0 < int(opts["history_db_port"]) < 65536:
            raise ConfigError("history_db_port is %s; it must be a TCP port (1-65535)" % opts["history_db_port"])
        if not opts.get("history_db_user"):
            raise ConfigError("history_db_user must not be empty")
        # The console's checks (functions_config.php, case 'hist_db').
        for key in ("history_db_days", "history_db_step", "history_db_delay", "history_event_days",
                    "history_trap_days", "trap_history_purge", "step_compact"):
            _positive(opts, key)
        if opts.get("history_db_adv"):
            _positive(opts, "history_db_string_days")
        elif (opts.get("history_db_string_days") or 0) < 0:
            raise ConfigError("history_db_string_days must not be negative")
        for key in ("days_purge", "days_compact", "event_purge", "string_purge"):
            _positive(opts, key, minimum=0)
        # The checks the console misses: history purges data it has not received yet.
        pairs = [("days_purge", "history_db_days", "module data")]
        pairs.append(("string_purge", "history_db_string_days" if opts.get("history_db_adv") else "history_db_days",
                      "string data"))
        if opts.get("history_event_enabled"):
            pairs.append(("event_purge", "history_event_days", "events"))
        if opts.get("history_trap_enabled"):
            pairs.append(("trap_history_purge", "history_trap_days", "traps"))
        for purge, move, what in pairs:
            if opts[purge] and opts[purge] <= opts[move]:
                msg = ("%s (%s days) is not larger than %s (%s days): %s would be purged from the history "
                       "database before, or as soon as, it is moved there; raise %s" % (
                           purge, opts[purge], move, opts[move], what, purge))
                if self.strict:
                    raise ConfigError(msg + " (strict is true)")
                self.warnings.append(msg)

    def main_tokens(self):
        """The main tconfig tokens for state=present, as strings."""
        tokens = [("history_db_enabled", "1"), ("history_db_name", self.name)]
        for key in MAIN_SETTING_OPTIONS:
            value = self.options.get(key)
            if value is None:
                continue  # history_db_pass not given: not managed
            if isinstance(value, bool):
                value = 1 if value else 0
            tokens.append((key, str(value)))
        return tokens

    def history_tokens(self):
        tokens = [(key, str(self.options[key])) for key in HISTORY_TOKEN_OPTIONS]
        # pandora_db.pl reads the history trap retention from the token trap_purge.
        tokens.append(("trap_purge", str(self.options["trap_history_purge"])))
        tokens.append(("history_db_enabled", "0"))
        return tokens


# -- SQL ---------------------------------------------------------------------
def quote_ident(name):
    """A back-quoted identifier (database, table)."""
    return "`%s`" % str(name).replace("`", "``")


def grant_db_pattern(database):
    """The database of a database-level GRANT, quoted, with ``_`` and ``%`` taken literally."""
    return quote_ident(re.sub(r"([_%\\])", r"\\\1", database))


_PRIVILEGE = re.compile(r"^[A-Z]+( [A-Z]+)*$")


def account_statements(user, database, hosts, privileges=("ALL PRIVILEGES",), update_password=False):
    """The statements that give ``user`` access to ``database`` from each of ``hosts``.

    Returns ``[(sql, params), ...]`` for a DB-API cursor whose last parameter
    (``None`` stands for the password) the caller fills in.  Correct on MySQL 8
    and MariaDB: ``CREATE USER IF NOT EXISTS ... IDENTIFIED BY`` first, then a
    ``GRANT`` without ``IDENTIFIED BY``.  The account name and the password
    are parameters, never part of the SQL text; the database is a quoted
    identifier with its wildcard characters escaped.
    """
    if not user or not database:
        raise ConfigError("an account needs a user and a database")
    hosts = list(hosts or [])
    if not hosts:
        raise ConfigError("an account needs at least one host it connects from")
    privs = []
    for priv in privileges:
        norm = " ".join(str(priv).upper().split())
        if not _PRIVILEGE.match(norm):
            raise ConfigError("privilege %r is not a privilege name" % priv)
        privs.append(norm)
    grant = "GRANT %s ON %s.* TO %%s@%%s" % (", ".join(privs), grant_db_pattern(database))
    out = []
    for host in hosts:
        out.append(("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (user, host, None)))
        if update_password:
            out.append(("ALTER USER %s@%s IDENTIFIED BY %s", (user, host, None)))
        out.append((grant, (user, host)))
    return out


def bind_password(statements, password):
    """Fill the password placeholder (``None``) of :func:`account_statements`' params."""
    return [(sql, tuple(password if p is None else p for p in params)) for sql, params in statements]


class SqlStatement(object):
    __slots__ = ("text", "line", "number")

    def __init__(self, text, line, number):
        self.text = text
        self.line = line
        self.number = number

    def head(self, size=100):
        text = " ".join(self.text.split())
        return text if len(text) <= size else text[:size] + "..."


_DELIMITER = re.compile(r"^\s*DELIMITER\s+(\S+)\s*$", re.I)
_CREATE_TABLE = re.compile(
    r"^\s*CREATE\s+(?:TEMPORARY\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(`(?:[^`]|``)+`|[\w$]+)", re.I)


def statement_table(text):
    """The table a ``CREATE TABLE`` statement creates, else None."""
    match = _CREATE_TABLE.match(text)
    if not match:
        return None
    name = match.group(1)
    if name.startswith("`"):
        name = name[1:-1].replace("``", "`")
    return name


def iter_statements(handle, what="schema_file"):
    """Yield the :class:`SqlStatement` of an SQL text stream, one at a time.

    Understands quotes (with backslash escapes), ``--``/``#`` comments (left
    out), ``/* */`` comments (kept), and ``DELIMITER`` lines like the mysql
    client.  Only one statement is held in memory.
    """
    delimiter = ";"
    buf = []
    start = None
    quote = None      # the open quote character, or "*" inside /* */
    number = 0
    lineno = 0
    for lineno, raw in enumerate(handle, 1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ConfigError("%s line %d is not UTF-8 text; is it an SQL file?" % (what, lineno))
        if "\x00" in raw:
            raise ConfigError("%s line %d holds NUL bytes; it is not an SQL text file" % (what, lineno))
        match = _DELIMITER.match(raw) if quote is None else None
        if match and not "".join(buf).strip():
            delimiter = match.group(1)
            buf = []
            continue
        i, n = 0, len(raw)
        while i < n:
            ch = raw[i]
            if quote == "*":
                end = raw.find("*/", i)
                if end < 0:
                    buf.append(raw[i:])
                    break
                buf.append(raw[i:end + 2])
                i = end + 2
                quote = None
                continue
            if quote:
                buf.append(ch)
                if ch == "\\" and quote != "`" and i + 1 < n:
                    buf.append(raw[i + 1])
                    i += 2
                    continue
                if ch == quote:
                    quote = None
                i += 1
                continue
            if ch in "'\"`":
                if start is None:
                    start = lineno
                quote = ch
                buf.append(ch)
                i += 1
                continue
            if ch == "#" or (raw.startswith("--", i) and (i + 2 >= n or raw[i + 2] in " \t\r\n")):
                buf.append("\n")
                break
            if raw.startswith("/*", i):
                if start is None:
                    start = lineno
                quote = "*"
                continue
            if raw.startswith(delimiter, i):
                text = "".join(buf).strip()
                if text:
                    number += 1
                    yield SqlStatement(text, start or lineno, number)
                buf = []
                start = None
                i += len(delimiter)
                continue
            if start is None and not ch.isspace():
                start = lineno
            buf.append(ch)
            i += 1
    if quote in ("'", '"', "`"):
        raise ConfigError("%s ends inside a %s-quoted string that opens near line %s; the file is truncated or "
                          "not SQL" % (what, quote, start))
    if quote == "*":
        raise ConfigError("%s ends inside a /* comment opened near line %s" % (what, start))
    text = "".join(buf).strip()
    if text:
        # The mysql client runs a last statement without its delimiter too.
        yield SqlStatement(text, start or lineno, number + 1)


def _open_schema(path):
    try:
        handle = io.open(path, "rb")
    except (IOError, OSError) as exc:
        raise ConfigError("cannot read schema_file %s: %s; point schema_file at the console's pandoradb.sql "
                          "(pandora_console/pandoradb.sql)" % (path, exc.strerror or exc))
    if os.path.isdir(path):
        handle.close()
        raise ConfigError("schema_file %s is a directory; point it at pandoradb.sql" % path)
    return handle


def scan_schema_file(path):
    """The tables the file creates, in order (one streaming pass; validates that it is SQL text)."""
    tables = []
    count = 0
    handle = _open_schema(path)
    with handle:
        for stmt in iter_statements(handle, "schema_file %s" % path):
            count += 1
            table = statement_table(stmt.text)
            if table and table not in tables:
                tables.append(table)
    if not tables:
        raise ConfigError("schema_file %s has %d statement(s) and no CREATE TABLE; it is not the console's "
                          "pandoradb.sql" % (path, count))
    return tables


# -- tconfig plans -----------------------------------------------------------
def read_tconfig_rows(conn, tokens=None, lock=False):
    """``[(id_config, token, value)]`` ordered by id; only ``tokens`` when given."""
    sql = "SELECT id_config, token, value FROM tconfig"
    args = None
    if tokens is not None:
        tokens = list(tokens)
        if not tokens:
            return []
        sql += " WHERE token IN (%s)" % ", ".join(["%s"] * len(tokens))
        args = tokens
    sql += " ORDER BY id_config"
    if lock:
        sql += " FOR UPDATE"
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return [(row[0], row[1], row[2]) for row in cur.fetchall()]


def plan_tokens(rows, desired, dedupe_all=False):
    """What to do so that each desired token has exactly one row with its value.

    ``rows`` as :func:`read_tconfig_rows` returns them, ``desired`` a list of
    ``(token, value)``.  With ``dedupe_all`` the other tokens that have several
    rows keep their first (the one Pandora reads).  Returns a list of actions
    ``{token, before, after, keep_id, delete_ids, insert}``; an empty list means
    nothing to do.
    """
    by_token = {}
    for id_config, token, value in rows:
        by_token.setdefault(token, []).append((id_config, value))
    actions = []
    wanted = dict(desired)
    for token, value in desired:
        have = by_token.get(token, [])
        if not have:
            actions.append(dict(token=token, before=None, after=value, keep_id=None, delete_ids=[], insert=True))
            continue
        keep_id, before = have[0]
        delete_ids = [i for i, dummy in have[1:]]
        if before != value or delete_ids:
            actions.append(dict(token=token, before=before, after=value, keep_id=keep_id,
                                delete_ids=delete_ids, insert=False))
    if dedupe_all:
        for token in sorted(by_token):
            have = by_token[token]
            if token in wanted or len(have) < 2:
                continue
            actions.append(dict(token=token, before=have[0][1], after=have[0][1], keep_id=have[0][0],
                                delete_ids=[i for i, dummy in have[1:]], insert=False))
    return actions


def apply_token_plan(conn, actions):
    with conn.cursor() as cur:
        for act in actions:
            if act["insert"]:
                cur.execute("INSERT INTO tconfig (token, value) VALUES (%s, %s)", (act["token"], act["after"]))
                continue
            if act["before"] != act["after"]:
                cur.execute("UPDATE tconfig SET value = %s WHERE id_config = %s", (act["after"], act["keep_id"]))
            if act["delete_ids"]:
                cur.execute("DELETE FROM tconfig WHERE id_config IN (%s)" % ", ".join(["%s"] * len(act["delete_ids"])),
                            act["delete_ids"])


def sync_tokens(conn, desired, check_mode, dedupe_all=False, rows=None):
    """Plan, and unless ``check_mode`` apply, in one transaction; returns the actions."""
    if check_mode or conn is None:
        return plan_tokens(rows if rows is not None else read_tconfig_rows(
            conn, None if dedupe_all else [t for t, dummy in desired]), desired, dedupe_all)
    conn.begin()
    try:
        rows = read_tconfig_rows(conn, None if dedupe_all else [t for t, dummy in desired], lock=True)
        actions = plan_tokens(rows, desired, dedupe_all)
        apply_token_plan(conn, actions)
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    return actions


def _shown(token, value):
    if value is None:
        return None
    if token in SECRET_TOKENS and value != "":
        return MASK
    return value


def token_report(actions):
    changes, dupes = {}, {}
    for act in actions:
        if act["before"] != act["after"] or act["insert"]:
            changes[act["token"]] = {"before": _shown(act["token"], act["before"]),
                                     "after": _shown(act["token"], act["after"])}
        if act["delete_ids"]:
            dupes[act["token"]] = len(act["delete_ids"])
    return changes, dupes


def _diff_text(items):
    return "".join("%s: %s\n" % (k, "(absent)" if v is None else v) for k, v in items)


def token_diff(header, actions, extra_before=(), extra_after=()):
    before, after = list(extra_before), list(extra_after)
    for act in actions:
        token = act["token"]
        rows_before = 1 + len(act["delete_ids"]) if not act["insert"] else 0
        shown_before = _shown(token, act["before"])
        if rows_before > 1:
            shown_before = "%s (%d rows)" % (shown_before, rows_before)
        before.append((token, shown_before))
        after.append((token, _shown(token, act["after"])))
    return {"before_header": header, "after_header": header, "before": _diff_text(before),
            "after": _diff_text(after)}


# -- server facts ------------------------------------------------------------
def _mysql_error(exc):
    code = exc.args[0] if exc.args else None
    reason = exc.args[1] if len(exc.args) > 1 else str(exc)
    return code, reason


def server_identity(conn):
    """What tells two servers apart: ``@@server_uuid`` (MySQL) or hostname, port and datadir (MariaDB)."""
    with conn.cursor() as cur:
        try:
            cur.execute("SELECT @@server_uuid")
            return ("uuid", cur.fetchone()[0])
        except pymysql.err.MySQLError:
            cur.execute("SELECT @@hostname, @@port, @@datadir")
            return ("host",) + tuple(cur.fetchone())


def schema_charset(conn, database):
    with conn.cursor() as cur:
        cur.execute("SELECT default_character_set_name, default_collation_name FROM information_schema.schemata"
                    " WHERE schema_name = %s", (database,))
        row = cur.fetchone()
    return (row[0], row[1]) if row else None


def schema_tables(conn, database):
    with conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (database,))
        return set(row[0] for row in cur.fetchall())


def tconfig_value(conn, database, token):
    with conn.cursor() as cur:
        cur.execute("SELECT value FROM %s.tconfig WHERE token = %%s ORDER BY id_config LIMIT 1"
                    % quote_ident(database), (token,))
        row = cur.fetchone()
    return row[0] if row else None


def _mr_number(value, side):
    if value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        raise PreconditionFailed("the %s tconfig MR is %r, not a number; fix the MR token there" % (side, value))


# -- the run -----------------------------------------------------------------
class _Run(object):
    def __init__(self, settings, check_mode, diff):
        self.s = settings
        self.check_mode = check_mode
        self.diff = diff
        self.warnings = list(settings.warnings)
        self.result = {"changed": False, "created": False, "schema_loaded": False, "schema_behind": False,
                       "mr": {"main": None, "history": None}, "tconfig": {"history": {}, "main": {}},
                       "duplicates_removed": {"history": {}, "main": {}}}
        self.diffs = []

    def fail(self, cls, msg, **details):
        payload = dict((k, v) for k, v in self.result.items() if k != "changed")
        payload.update(details)
        raise cls(msg, **payload)

    def sql_failure(self, exc, what):
        code, reason = _mysql_error(exc)
        self.fail(OperationFailed, "%s failed: (%s) %s" % (what, code, reason))

    # main side -------------------------------------------------------------
    def main_side(self):
        s = self.s
        try:
            self.main = connect(s.main)
        except ConnectionFailed as exc:
            msg = str(exc).replace("Check login_user/login_password", "Check main_login_user/main_login_password")
            if exc.details.get("code") == 1049:
                msg += " Set main_login_db (or dbname in pandora_server_conf) to the Pandora FMS database."
            self.fail(ConnectionFailed, "main database (main_login_* options or pandora_server_conf): " + msg)
        if not self.main_has_tconfig():
            self.fail(PreconditionFailed, "the main database '%s' on %s has no tconfig table; main_login_db (or dbname "
                      "of pandora_server_conf) must name the Pandora FMS database" % (
                          s.main.database, s.main.describe(None)))
        self.result["mr"]["main"] = tconfig_value(self.main, s.main.database, "MR")

    def main_has_tconfig(self):
        return "tconfig" in schema_tables(self.main, self.s.main.database)

    def write_main(self, tokens):
        try:
            actions = sync_tokens(self.main, tokens, self.check_mode)
        except pymysql.err.MySQLError as exc:
            self.sql_failure(exc, "writing the history settings to the main tconfig (%s)" % self.s.main.describe())
        self.record("main", actions, "main tconfig (%s)" % self.s.main.describe())

    def record(self, side, actions, header, extra_before=(), extra_after=()):
        changes, dupes = token_report(actions)
        self.result["tconfig"][side] = changes
        self.result["duplicates_removed"][side] = dupes
        if actions or extra_before or extra_after:
            self.result["changed"] = True
            self.diffs.append(token_diff(header, actions, extra_before, extra_after))

    # history side ----------------------------------------------------------
    def history_side(self):
        s = self.s
        main_cs = schema_charset(self.main, s.main.database)
        for name in main_cs:
            if not re.match(r"^\w+$", name or ""):
                self.fail(PreconditionFailed, "the main database reports the character set or collation %r" % name)
        self.result["charset"] = {"character_set": main_cs[0], "collation": main_cs[1]}
        try:
            self.hist = connect(s.history, database="")
        except ConnectionFailed as exc:
            self.fail(ConnectionFailed, "history server (login_* options): %s" % exc)
        if server_identity(self.hist) == server_identity(self.main):
            if s.name == s.main.database:
                self.fail(ConfigError, "the history database '%s' on %s is the main database itself (same server, "
                          "same name); give name another database or point login_host at the history server"
                          % (s.name, s.history.describe(None)))
            self.warnings.append("the history database '%s' is on the same server as the main database; it relieves "
                                 "no load from it" % s.name)
        hist_cs = schema_charset(self.hist, s.name)
        exists = hist_cs is not None
        tables = schema_tables(self.hist, s.name) if exists else set()
        tables_before = set(tables)
        file_tables = None
        missing_essential = [t for t in ESSENTIAL_TABLES if t not in tables]
        try:
            file_tables = scan_schema_file(s.schema_file)
        except ConfigError:
            if missing_essential:
                raise
            self.warnings.append("schema_file %s is not readable; the schema was checked against the four essential "
                                 "tables only" % s.schema_file)
        self.file_tables = file_tables or []
        present = [t for t in (file_tables or []) if t in tables]
        missing = [t for t in (file_tables or []) if t not in tables]
        self.result["missing_tables"] = missing
        load = bool(missing)
        # MR before any change.
        hist_mr = tconfig_value(self.hist, s.name, "MR") if "tconfig" in tables else None
        main_mr = _mr_number(self.result["mr"]["main"], "main")
        hmr = _mr_number(hist_mr, "history")
        self.result["mr"]["history"] = hist_mr
        if hmr is not None and main_mr is not None and hmr > main_mr:
            self.fail(PreconditionFailed, "the history database '%s' has MR %s, newer than the main database's MR %s; "
                      "upgrade the main database (or point name at the right history database) first" % (
                          s.name, hmr, main_mr))
        if present and missing and not s.force:
            self.result["essential_tables"] = dict((t, t in tables) for t in ESSENTIAL_TABLES)
            self.fail(PreconditionFailed, "the history database '%s' on %s holds a partial schema: %d of the %d "
                      "tables of %s are missing (%s); rerun with force: true to create them" % (
                          s.name, s.history.describe(None), len(missing), len(file_tables), s.schema_file,
                          _names(missing)))
        desired_mr = None
        if hmr is None:
            if main_mr is None:
                self.warnings.append("the main tconfig has no MR; the history MR is left unset")
            else:
                desired_mr = str(main_mr)
        elif main_mr is not None and hmr < main_mr:
            self.result["schema_behind"] = True
            self.warnings.append("the history database '%s' has MR %s, behind the main database's MR %s; apply the "
                                 "console's extras/mr updates to it (not done by this module)" % (s.name, hmr, main_mr))
        # Changes (or, in check mode, their prediction).
        db_before, db_after = [], []
        if not exists:
            self.result["created"] = True
            db_before.append(("database", None))
            db_after.append(("database", "%s (%s, %s)" % (s.name, main_cs[0], main_cs[1])))
            if not self.check_mode:
                self.execute(self.hist, "CREATE DATABASE IF NOT EXISTS %s CHARACTER SET %s COLLATE %s" % (
                    quote_ident(s.name), main_cs[0], main_cs[1]), "creating the history database '%s'" % s.name)
        elif (hist_cs[0], hist_cs[1]) != (main_cs[0], main_cs[1]):
            db_before.append(("database", "%s (%s, %s)" % (s.name, hist_cs[0], hist_cs[1])))
            db_after.append(("database", "%s (%s, %s)" % (s.name, main_cs[0], main_cs[1])))
            if not self.check_mode:
                self.execute(self.hist, "ALTER DATABASE %s CHARACTER SET %s COLLATE %s" % (
                    quote_ident(s.name), main_cs[0], main_cs[1]), "setting the history database's character set")
        if load:
            self.result["schema_loaded"] = True
            db_before.append(("schema", "%d of %d tables" % (len(present), len(file_tables))))
            db_after.append(("schema", "%d of %d tables" % (len(file_tables), len(file_tables))))
            if not self.check_mode:
                self.load_schema(tables)
                tables = schema_tables(self.hist, s.name)
            else:
                tables = tables | set(file_tables)
            self.result["missing_tables"] = [t for t in file_tables if t not in tables]
        essential = dict((t, t in tables) for t in ESSENTIAL_TABLES)
        self.result["essential_tables"] = essential
        if not all(essential.values()):
            self.fail(PreconditionFailed, "the history database '%s' lacks %s, which the console needs; %s" % (
                s.name, _names([t for t in ESSENTIAL_TABLES if not essential[t]]),
                "schema_file %s does not create them" % s.schema_file if load else "load the schema"))
        tokens = s.history_tokens()
        if desired_mr is not None:
            tokens.append(("MR", desired_mr))
        if self.check_mode and "tconfig" not in tables_before:
            # The table would come from schema_file, which creates it empty.
            actions = plan_tokens([], tokens, dedupe_all=True)
        else:
            try:
                self.hist.select_db(s.name)
                actions = sync_tokens(self.hist, tokens, self.check_mode, dedupe_all=True)
            except pymysql.err.MySQLError as exc:
                self.sql_failure(exc, "writing the history tconfig of '%s'" % s.name)
        if desired_mr is not None:
            self.result["mr"]["history"] = desired_mr
        self.record("history", actions, "history tconfig (%s)" % s.history.describe(s.name), db_before, db_after)

    def execute(self, conn, sql, what):
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        except pymysql.err.MySQLError as exc:
            self.sql_failure(exc, what)

    def load_schema(self, existing):
        s = self.s
        conn = connect(s.history, database=s.name)
        run = skipped = 0
        stmt = None
        try:
            with conn.cursor() as cur:
                cur.execute("SET SESSION sql_mode = ''")
                cur.execute("SET SESSION foreign_key_checks = 0")
                handle = _open_schema(s.schema_file)
                with handle:
                    for stmt in iter_statements(handle, "schema_file %s" % s.schema_file):
                        table = statement_table(stmt.text)
                        if table and table in existing:
                            skipped += 1
                            continue
                        cur.execute(stmt.text)
                        while cur.nextset():
                            pass
                        run += 1
        except pymysql.err.MySQLError as exc:
            code, reason = _mysql_error(exc)
            now = schema_tables(self.hist, s.name)
            missing = [t for t in self.file_tables if t not in now]
            self.result["statements"] = {"run": run, "skipped": skipped}
            self.result["missing_tables"] = missing
            self.result["schema_loaded"] = run > 0
            self.fail(OperationFailed, "loading schema_file %s into '%s' stopped at statement %d (line %d): (%s) %s. "
                      "Statement: %s. %d statement(s) had run; the database now holds %d table(s), %d of the file's "
                      "tables are missing (%s). Fix the file or the server, then rerun with force: true to complete "
                      "the schema" % (
                          s.schema_file, s.name, stmt.number if stmt else 0, stmt.line if stmt else 0, code, reason,
                          stmt.head() if stmt else "-", run, len(now), len(missing), _names(missing)),
                      failed_statement={"number": stmt.number, "line": stmt.line, "text": stmt.head(200)}
                      if stmt else None, existing_tables=sorted(now))
        except ConfigError as exc:
            self.fail(ConfigError, "%s (after %d statement(s) had run; rerun with force: true once the file is "
                      "fixed)" % (exc, run))
        finally:
            conn.close()
        self.result["statements"] = {"run": run, "skipped": skipped}

    # ------------------------------------------------------------------------
    def run(self):
        s = self.s
        try:
            self.main_side()
            if s.state == "absent":
                self.write_main(list(ABSENT_TOKENS))
            else:
                self.history_side()
                if s.options.get("history_db_pass") is None:
                    current = tconfig_value(self.main, s.main.database, "history_db_pass")
                    if not current:
                        self.warnings.append("history_db_pass is not given and the main tconfig has none; the "
                                             "Pandora FMS server cannot log in to the history database")
                self.write_main(s.main_tokens())
        except pymysql.err.MySQLError as exc:
            code, reason = _mysql_error(exc)
            self.fail(OperationFailed, "a statement failed: (%s) %s" % (code, reason))
        finally:
            for attr in ("main", "hist"):
                conn = getattr(self, attr, None)
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        pass
        out = dict(self.result)
        out["warnings"] = self.warnings
        if self.diff:
            out["diff"] = self.diffs
        return out


def _names(tables, limit=10):
    tables = list(tables)
    text = ", ".join(tables[:limit])
    if len(tables) > limit:
        text += " and %d more" % (len(tables) - limit)
    return text or "none"


def provision(settings, check_mode=False, diff=False):
    """Run the provisioning; returns the module's result dict (``warnings`` included)."""
    run = _Run(settings, check_mode, diff)
    try:
        return run.run()
    except PandoraError:
        raise
