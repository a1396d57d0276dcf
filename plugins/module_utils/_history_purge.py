# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The purge of the history database (reference section 8.2).

pandora_db.pl runs it with the history database's *own* ``tconfig``
(``days_purge``, ``string_purge``, ``event_purge``, ``trap_history_purge``),
then stamps ``db_maintance`` there.  The console looks for ``db_maintenance``
on the history database, so both spellings are written.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.pandorafms.server.plugins.module_utils._connection import ConnectionSettings, check_port
from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConfigError
from ansible_collections.pandorafms.server.plugins.module_utils._purge import PurgeRule
from ansible_collections.pandorafms.server.plugins.module_utils._tconfig import plan_token, write_token

HISTORY_TOKENS = ("db_maintance", "db_maintenance")


def history_purge_steps():
    """The history purge steps, in upstream's order."""
    common = dict(database="history", group="history_purge")
    return [
        PurgeRule("history_module_data", "tagente_datos", "utimestamp", "epoch", "history_days_purge",
                  "Deleting old data from tagente_datos.", progress=True, **common),
        PurgeRule("history_string_data", "tagente_datos_string", "utimestamp", "epoch", "history_string_purge",
                  "Deleting old data from tagente_datos_string.", progress=True, **common),
        PurgeRule("history_events", "tevento", "utimestamp", "epoch", "history_event_purge",
                  "Deleting old event data from tevento (More than {days} days).", progress=True, **common),
        PurgeRule("history_traps", "ttrap", "`timestamp`", "datetime", "history_trap_purge",
                  "Deleting old SNMP traps (More than {days} days).", **common),
    ]


def write_history_tokens(conn, now, check_mode=False):
    """Stamp both maintenance tokens on the history database; returns ``{token: would/did change}``."""
    out = {}
    for token in HISTORY_TOKENS:
        out[token] = plan_token(conn, token, now) if check_mode else write_token(conn, token, now)
    return out


def same_database(main_conn, history_conn):
    """True when both connections reach the same database on the same server."""
    probe = "SELECT @@hostname, @@port, @@datadir, DATABASE()"
    with main_conn.cursor() as cur:
        cur.execute(probe)
        main = cur.fetchone()
    with history_conn.cursor() as cur:
        cur.execute(probe)
        history = cur.fetchone()
    return tuple(main) == tuple(history)


def history_settings(tconfig, opts, connect_timeout=None):
    """Where the history database is: the ``history_login_*`` options, else the main ``tconfig`` tokens.

    ``opts`` holds ``host``, ``port``, ``user``, ``password`` and ``db`` (None when not given).
    Returns None when neither names a history database.
    """
    enabled = str(tconfig.get("history_db_enabled", "")).strip() == "1"
    if not (enabled or opts.get("host")):
        return None
    host = opts.get("host") or tconfig.get("history_db_host")
    if not host:
        raise ConfigError("tconfig history_db_enabled is 1 but history_db_host is empty; set it in the console"
                          " or give history_login_host")
    if opts.get("port"):
        port = opts["port"]
    else:
        port = check_port(tconfig.get("history_db_port") or 3306, "tconfig token history_db_port")
    return ConnectionSettings(
        host=host, port=port,
        user=opts.get("user") or tconfig.get("history_db_user") or "pandora",
        password=opts.get("password") if opts.get("password") is not None else tconfig.get("history_db_pass", ""),
        database=opts.get("db") or tconfig.get("history_db_name") or "pandora",
        connect_timeout=connect_timeout)
