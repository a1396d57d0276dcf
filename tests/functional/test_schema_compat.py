"""The project's schema fixture against the real Pandora FMS schema files.

The fixture (tests/fixtures/pandora_schema.sql) lets every test run without
../shared; this test proves it models the real tables faithfully: same
columns with the same types, nullability and defaults, same indexes, same
engine.  It loads the real files whenever ../shared/pandora_schema exists
(or PANDORA_SCHEMA_DIR points at a copy) and is skipped, saying so, only
when they are absent.
"""

import os

import pytest

from harness.collection import REPO
from harness.schema import MODELLED_TABLES

SCHEMA_DIR = (os.environ.get("PANDORA_SCHEMA_DIR")
              or os.path.join(os.path.dirname(REPO), "shared", "pandora_schema"))
needs_real_schema = pytest.mark.skipif(
    not os.path.isfile(os.path.join(SCHEMA_DIR, "pandoradb.sql")),
    reason="the real Pandora schema files are not at %s (set PANDORA_SCHEMA_DIR)" % SCHEMA_DIR)


def describe(db, tables=None):
    """{table: {"engine", "columns": [...], "indexes": {...}}} from information_schema."""
    out = {}
    for table, engine in db.query("SELECT table_name, engine FROM information_schema.tables"
                                  " WHERE table_schema = %s", (db.name,)):
        if tables is not None and table not in tables:
            continue
        out[table] = {"engine": engine, "columns": [], "indexes": {}}
    for table, name, ctype, nullable, default, extra in db.query(
            "SELECT table_name, column_name, column_type, is_nullable, column_default, extra"
            " FROM information_schema.columns WHERE table_schema = %s ORDER BY table_name, ordinal_position",
            (db.name,)):
        if table in out:
            out[table]["columns"].append((name, ctype, nullable, default, extra))
    for table, index, column, seq, non_unique in db.query(
            "SELECT table_name, index_name, column_name, seq_in_index, non_unique FROM information_schema.statistics"
            " WHERE table_schema = %s ORDER BY table_name, index_name, seq_in_index", (db.name,)):
        if table in out:
            out[table]["indexes"].setdefault(index, {"unique": not non_unique, "columns": []})["columns"].append(column)
    return out


def load_real(server, new_db, files):
    db = new_db(server, "realschema")
    db.query("DROP DATABASE `%s`" % db.name)
    server.create_database(db.name)
    for name, force in files:
        result = server.load_sql_file(os.path.join(SCHEMA_DIR, name), db.name, sql_mode="", force=force)
        assert force or result.returncode == 0, result.stderr.decode(errors="replace")[:2000]
    return db


@pytest.fixture
def fixture_tables(new_db, main_server):
    return describe(new_db(main_server, "fixture"))


@needs_real_schema
def test_fixture_matches_real_776_schema(main_server, new_db, fixture_tables):
    real = describe(load_real(main_server, new_db, [("pandoradb.sql", False)]))
    assert len(real) == 227
    assert MODELLED_TABLES <= set(fixture_tables)
    for table, spec in sorted(fixture_tables.items()):
        assert table in real, "fixture table %s is not in the real schema" % table
        assert spec["engine"] == real[table]["engine"] == "InnoDB", table
        assert spec["columns"] == real[table]["columns"], "columns of %s differ" % table
        assert spec["indexes"] == real[table]["indexes"], "indexes of %s differ" % table


# The open fork removed the Enterprise policy feature and log4x data: the engine must treat these
# tables and columns as optional (it checks for them before use).
PANDORA_OPEN_DROPPED = {
    "tagent_module_inventory.id_policy_module_inventory", "tagente_datos_log4x", "tagente_modulo.id_policy_module",
    "tagente_modulo.policy_linked", "tagente_modulo.policy_adopted", "talert_template_modules.id_policy_alerts",
    "tpolicies", "tpolicy_group_agents", "ttag_module.id_policy_module",
}


@needs_real_schema
def test_fixture_tables_exist_in_pandora_open_with_compatible_columns(main_server, new_db, fixture_tables):
    """The later open fork (MR 69) keeps every column the collection relies on, with the same type."""
    if not os.path.isfile(os.path.join(SCHEMA_DIR, "pandora-open", "pandoradb.sql")):
        pytest.skip("pandora-open schema files are not at %s" % SCHEMA_DIR)
    real = describe(load_real(main_server, new_db, [("pandora-open/pandoradb.sql", False),
                                                    ("pandora-open/pandoradb_data.sql", False)]))
    differences = []
    for table, spec in sorted(fixture_tables.items()):
        if table not in real:
            differences.append(table)
            continue
        real_columns = dict((c[0], c[1]) for c in real[table]["columns"])
        for column in spec["columns"]:
            if real_columns.get(column[0]) != column[1]:
                differences.append("%s.%s" % (table, column[0]))
                assert real_columns.get(column[0]) is None, "%s.%s changed type" % (table, column[0])
    assert set(differences) == PANDORA_OPEN_DROPPED


@needs_real_schema
def test_real_data_file_loads_and_has_maintenance_tokens(main_server, new_db):
    db = load_real(main_server, new_db, [("pandoradb.sql", False), ("pandoradb_data.sql", True)])
    tokens = dict(db.query("SELECT token, value FROM tconfig WHERE token IN"
                           " ('days_purge', 'step_compact', 'MR', 'db_scheme_version')"))
    assert tokens == {"days_purge": "45", "step_compact": "1", "MR": "64", "db_scheme_version": "7.0NG"}
