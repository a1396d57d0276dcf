"""The project's own Pandora schema fixture and how to load it."""

import os

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures",
                       "pandora_schema.sql")
LEGACY_FIXTURE = os.path.join(os.path.dirname(FIXTURE), "pandora_schema_773_extra.sql")

# Tables the collection reads or writes.  The fixture also carries the tables
# their foreign keys point at, so it loads on its own.
MODELLED_TABLES = frozenset("""
taddress taddress_agent tagent_custom_data tagent_module_inventory tagent_secondary_group tagente
tagente_datos tagente_datos_inc tagente_datos_inventory tagente_datos_log4x tagente_datos_string
tagente_estado tagente_modulo talert_special_days talert_template_modules talert_templates
talert_calendar tconfig tdatabase tevent_comment tevent_extended tevento tgis_data_history
tgis_data_status tgraph tgraph_source tgroup_stat tgrupo tlayout tlayout_data tmensajes
tmodule_inventory tmodule_relationship tmodule_synth tnotification_source tplanned_downtime
tplanned_downtime_agents tplanned_downtime_modules tpolicy_group_agents trecon_task treport
treport_content treport_content_item treport_content_sla_combined tserver tserver_export_data
tsesion tsesion_extended tsessions_php ttag_module ttipo_modulo ttrap tusuario
tvisual_console_elements_cache
""".split())


def load_fixture(server, db, legacy=False):
    """Create ``db`` on ``server`` (a harness MariaDBServer) with the fixture schema."""
    server.create_database(db)
    for path in [FIXTURE] + ([LEGACY_FIXTURE] if legacy else []):
        result = server.load_sql_file(path, db)
        if result.returncode != 0:
            raise RuntimeError("loading %s failed: %s" % (path, result.stderr.decode(errors="replace")))
