# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Facts about a Pandora FMS database: engine, schema version, lock, tconfig health, sizes."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.pandorafms.server.plugins.module_utils._connection import (
    connect, existing_tables, pymysql, server_info)
from ansible_collections.pandorafms.server.plugins.module_utils._errors import (
    OperationFailed, PreconditionFailed, database_error_hint)
from ansible_collections.pandorafms.server.plugins.module_utils._lock import is_free
from ansible_collections.pandorafms.server.plugins.module_utils._partitions import SUPPORTED, partition_facts
from ansible_collections.pandorafms.server.plugins.module_utils._tconfig import TConfig

SCHEMA_TOKENS = ("db_scheme_first_version", "db_scheme_version", "db_scheme_build", "MR",
                 "current_package", "db_maintance", "history_db_enabled")
DB_ERRORS = (pymysql.err.MySQLError,) if pymysql is not None else ()
SIZE_TABLES = ("tagente", "tagente_modulo", "tagente_datos", "tagente_datos_string", "tevento", "ttrap",
               "tsesion")


def database_facts(settings):
    """Return a dict of facts; raises ConnectionFailed / PreconditionFailed / OperationFailed."""
    conn = connect(settings)
    try:
        return _facts(conn, settings)
    except DB_ERRORS as exc:
        code = exc.args[0] if exc.args else None
        reason = exc.args[1] if len(exc.args) > 1 else str(exc)
        raise OperationFailed(settings.redact("reading the facts of %s failed: (%s) %s. %s Nothing was changed (this"
                                              " module only reads)." % (settings.describe(), code, reason,
                                                                        database_error_hint(code))), code=code)
    finally:
        conn.close()


def _facts(conn, settings):
    info = server_info(conn)
    tables = existing_tables(conn)
    if "tconfig" not in tables:
        raise PreconditionFailed("%s has no tconfig table: it is not a Pandora FMS database (or the "
                                 "schema was never loaded)" % settings.describe())
    tconfig = TConfig.load(conn)
    sizes = {}
    with conn.cursor() as cur:
        cur.execute("SELECT table_name, table_rows, data_length + index_length FROM information_schema.tables"
                    " WHERE table_schema = DATABASE()")
        for name, rows, size in cur.fetchall():
            if name in SIZE_TABLES:
                sizes[name] = {"estimated_rows": int(rows or 0), "bytes": int(size or 0)}
    return {
        "server": info.as_dict(),
        "database": settings.database,
        "tables": len(tables),
        "schema": dict((token, tconfig.get(token)) for token in SCHEMA_TOKENS),
        "tconfig_duplicates": dict((k, v) for k, v in tconfig.duplicates.items()),
        "maintenance_lock_free": is_free(conn, settings.database),
        "table_sizes": sizes,
        "table_layouts": dict((t, partition_facts(conn, t)) for t in sorted(SUPPORTED) if t in tables),
    }
