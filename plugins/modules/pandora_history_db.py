#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pandora_history_db
short_description: Provision the Pandora FMS history database and its settings on both sides
version_added: 0.1.0
description:
  - Does in one idempotent, checkable run what the console's I(Setup > History database) form and the manual's
    recipe do by hand, without their defects.
  - On the history server (the C(login_*) options) the database O(name) is created with the character set and
    collation of the main database (read from the main server); the schema is detected in C(information_schema)
    and, when absent, loaded from O(schema_file) statement by statement under a session C(sql_mode='') (the real
    C(pandoradb.sql) fails under strict modes). A failure in the middle stops with the file's line and statement,
    the tables that exist now, and what to do (O(force=true) completes the schema after the file is fixed).
  - A partly present schema is reported with its missing tables and completed only with O(force=true).
    Afterwards the four tables the console cannot work without (C(tagente_datos), C(tagente_datos_string),
    C(tevento), C(tconfig)) must exist.
  - Schema version - the history C(tconfig) C(MR) is set to the main database's C(MR) when it has none; a history
    C(MR) higher than main's is an error; a lower one is reported as RV(schema_behind) and left alone (apply the
    console's C(extras/mr) files).
  - The history C(tconfig) gets O(days_purge), O(days_compact), O(step_compact), O(event_purge), O(string_purge),
    O(trap_history_purge) and C(history_db_enabled=0), in one transaction, leaving exactly one row per token
    (C(tconfig) has no unique key; duplicates are removed and the first row kept).
  - On the main database (the C(main_*) options or O(pandora_server_conf)) the console's history settings are
    written in one transaction, with the console's checks (days, step and delay above 0; string days when
    O(history_db_adv=true)) and the checks it misses - the history database must not be the main database
    (the servers are compared by identity, not by host name) and the history O(days_purge) must exceed
    O(history_db_days) (a warning, or an error with O(strict=true)).
  - O(state=absent) only disables the history on the main side (C(history_db_enabled), C(history_event_enabled)
    and C(history_trap_enabled) set to 0); it never connects to the history server and never touches its data.
  - No user or grant is created; see the role C(pandorafms.server.history_db) for the account.
author:
  - pandorafms.server contributors (!UNKNOWN)
extends_documentation_fragment:
  - pandorafms.server.connection
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
  - pandorafms.server.attributes
attributes:
  check_mode:
    support: full
    details: The same code computes the plan (database to create, schema to load, tokens to write or deduplicate
      on both sides) and, in check mode, stops before the first change. Every check that would fail the real run
      fails in check mode too. For a database that does not exist yet the history C(tconfig) is predicted from an
      empty table.
  diff_mode:
    support: full
    details: C(tconfig) before and after, per token, on the history and on the main side, with the password masked;
      also the database and schema when they would be created or loaded.
  idempotent:
    support: full
    details: A second run with the same options reports C(changed=false).
  platform:
    platforms: posix
  action_group:
    support: full
    membership:
      - pandorafms.server.pandora
options:
  name:
    description:
      - Name of the history database on the history server (the C(login_*) options).
      - Written to the main C(tconfig) as C(history_db_name).
    type: str
    default: pandora_history
  state:
    description:
      - V(present) provisions the history database and enables the history on the main side.
      - V(absent) disables the history on the main side only; the history database and its data are kept.
    type: str
    choices: [present, absent]
    default: present
  schema_file:
    description:
      - The console's C(pandoradb.sql), on the host the module runs on. Read as a stream, one statement at a time.
      - Only read when the schema has to be loaded or checked for completeness. When it is missing and the four
        essential tables exist, the completeness check is skipped with a warning.
    type: path
    default: /var/www/html/pandora_console/pandoradb.sql
  force:
    description:
      - Complete a partly present schema from O(schema_file) - the C(CREATE TABLE) statements of tables that
        exist are skipped, every other statement is run.
      - Without it a partly present schema is an error that lists the missing tables.
    type: bool
    default: false
  strict:
    description:
      - Turn the warnings about retention (history O(days_purge) not above O(history_db_days), and the like for
        strings, events and traps) into errors.
    type: bool
    default: false
  login_db:
    description:
      - Not used by this module; the history database is O(name). Setting it is an error.
    type: str
  pandora_server_conf:
    description:
      - Path of the Pandora FMS server configuration on the host the module runs on, usually
        C(/etc/pandora/pandora_server.conf). Its C(dbhost), C(dbport), C(dbname), C(dbuser), C(dbpass) and TLS
        settings locate the B(main) database; explicit C(main_*) options win.
      - When the HA hosts file exists, its first line replaces C(dbhost).
      - It is never used for the history server.
    type: path
  ha_hosts_file:
    description:
      - The file C(pandora_ha) writes the current master database host to; used with O(pandora_server_conf).
      - Defaults to C(ha_hosts_file) of O(pandora_server_conf), else
        C(/var/spool/pandora/data_in/conf/pandora_ha_hosts.conf).
    type: path
  main_login_host:
    description:
      - Host of the main database server. Defaults to C(dbhost) of O(pandora_server_conf), else V(localhost).
    type: str
  main_login_port:
    description:
      - TCP port of the main database server. Defaults to C(dbport) of O(pandora_server_conf), else V(3306).
    type: int
  main_login_user:
    description:
      - User for the main database. Defaults to C(dbuser) of O(pandora_server_conf) or C(user) of O(main_config_file).
    type: str
  main_login_password:
    description:
      - Password of O(main_login_user). Never logged, returned or passed on a command line.
    type: str
  main_login_unix_socket:
    description:
      - Unix socket of a local main database server.
    type: str
  main_config_file:
    description:
      - A client option file whose C([client]) group supplies the main server's user, password, host, port and socket.
      - Set to an empty string to read no option file.
    type: path
    default: ~/.my.cnf
  main_login_db:
    description:
      - The main Pandora FMS database. Defaults to C(dbname) of O(pandora_server_conf), else V(pandora).
    type: str
  days_purge:
    description:
      - History C(tconfig) C(days_purge) - module data older than this many days is purged from the history database.
      - Must be larger than O(history_db_days), or data is purged from the history before it is moved there.
    type: int
    default: 180
  days_compact:
    description:
      - History C(tconfig) C(days_compact).
    type: int
    default: 120
  step_compact:
    description:
      - History C(tconfig) C(step_compact), the compaction window in hours; V(1) or more.
    type: int
    default: 1
  event_purge:
    description:
      - History C(tconfig) C(event_purge), in days.
    type: int
    default: 180
  string_purge:
    description:
      - History C(tconfig) C(string_purge), in days.
    type: int
    default: 180
  trap_history_purge:
    description:
      - History C(tconfig) C(trap_history_purge), in days (the token the console writes).
      - The same value is written to the history C(trap_purge), the token C(pandora_db.pl) actually reads there.
      - Upstream has no default for it on the history side (the main database's C(trap_purge) defaults to 7); this
        module uses the manual's retention for the other history tokens.
    type: int
    default: 180
  history_db_host:
    description:
      - Host name the Pandora FMS server and console use to reach the history database, written to the main
        C(tconfig). Defaults to O(login_host).
    type: str
  history_db_port:
    description:
      - Port the Pandora FMS server and console use to reach the history database. Defaults to O(login_port), else
        V(3306).
    type: int
  history_db_user:
    description:
      - User the Pandora FMS server and console log in to the history database with (the console's default).
    type: str
    default: pandora
  history_db_pass:
    description:
      - Password of O(history_db_user), written to the main C(tconfig) as C(history_db_pass). Masked in every
        output.
      - When not given the token is not managed (its current value is kept; a warning is given when it is empty).
    type: str
  history_db_days:
    description:
      - Data older than this many days is moved to the history database. Must be above 0.
      - The console's default is 0, which its own form refuses; this module uses 30.
    type: int
    default: 30
  history_db_step:
    description:
      - Rows moved per block. Must be above 0. The console's default is 0 (refused by its form); this module uses 1000.
    type: int
    default: 1000
  history_db_delay:
    description:
      - Seconds between two blocks. Must be above 0. The console's default is 0 (refused by its form); this module
        uses 2.
    type: int
    default: 2
  history_db_adv:
    description:
      - The console's "advanced" switch, which enables a separate O(history_db_string_days).
    type: bool
    default: false
  history_db_string_days:
    description:
      - Days after which string data is moved; must be above 0 when O(history_db_adv=true).
    type: int
    default: 0
  history_event_enabled:
    description:
      - Whether events are moved to the history database.
    type: bool
    default: false
  history_event_days:
    description:
      - Days after which events are moved. Must be above 0.
    type: int
    default: 90
  history_trap_enabled:
    description:
      - Whether SNMP traps are moved to the history database.
    type: bool
    default: false
  history_trap_days:
    description:
      - Days after which traps are moved. Must be above 0.
    type: int
    default: 90
notes:
  - The history and the main databases are reached by two separate connections; a failure between the two sides
    leaves the history side provisioned and the main side unchanged, and a rerun completes it.
  - C(history_db_pass) is written as given; a console that encrypts passwords reads it as it reads an
    unencrypted value.
seealso:
  - module: pandorafms.server.pandora_db_maintain
'''

EXAMPLES = r'''
- name: Provision the history database and enable it on the main database
  pandorafms.server.pandora_history_db:
    login_host: history.example.com
    login_user: root
    login_password: "{{ history_root_password }}"
    name: pandora_history
    schema_file: /var/www/html/pandora_console/pandoradb.sql
    pandora_server_conf: /etc/pandora/pandora_server.conf
    history_db_host: history.example.com
    history_db_user: pandora
    history_db_pass: "{{ pandora_history_password }}"
    history_db_days: 30
    days_purge: 365
    history_event_enabled: true

- name: Complete a schema whose load was interrupted
  pandorafms.server.pandora_history_db:
    login_host: history.example.com
    login_user: root
    login_password: "{{ history_root_password }}"
    main_login_host: db.example.com
    main_login_user: pandora
    main_login_password: "{{ pandora_db_password }}"
    history_db_pass: "{{ pandora_history_password }}"
    force: true

- name: Stop using the history database (its data stays)
  pandorafms.server.pandora_history_db:
    main_login_host: db.example.com
    main_login_user: pandora
    main_login_password: "{{ pandora_db_password }}"
    state: absent
'''

RETURN = r'''
created:
  description: Whether the history database was created (would be, in check mode).
  returned: always
  type: bool
schema_loaded:
  description: Whether statements of O(schema_file) were run (would be, in check mode).
  returned: always
  type: bool
statements:
  description: Statements run from O(schema_file), and C(CREATE TABLE) statements skipped because the table existed.
  returned: when the schema was loaded
  type: dict
  sample: {"run": 227, "skipped": 0}
missing_tables:
  description: Tables of O(schema_file) that are not in the history database (before a load, or still missing).
  returned: when state is present
  type: list
  elements: str
  sample: []
essential_tables:
  description: Whether each of the four tables the console needs exists (after the run; predicted in check mode).
  returned: when state is present
  type: dict
  sample: {"tagente_datos": true, "tagente_datos_string": true, "tevento": true, "tconfig": true}
mr:
  description: The C(MR) schema version in the main and the history C(tconfig) (after the run).
  returned: always
  type: dict
  sample: {"main": "69", "history": "69"}
schema_behind:
  description: Whether the history C(MR) is lower than the main C(MR) (not fixed by this module).
  returned: always
  type: bool
charset:
  description: Character set and collation of the main database, used for the history database.
  returned: when state is present
  type: dict
  sample: {"character_set": "utf8mb4", "collation": "utf8mb4_general_ci"}
tconfig:
  description: The C(tconfig) tokens changed (or that would change), per side, with the password masked.
  returned: always
  type: dict
  sample: {"history": {"days_purge": {"before": null, "after": "180"}},
           "main": {"history_db_pass": {"before": "", "after": "********"}}}
duplicates_removed:
  description: Number of duplicate C(tconfig) rows removed per side and token.
  returned: always
  type: dict
  sample: {"history": {"days_purge": 1}, "main": {}}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pandorafms.server.plugins.module_utils._errors import PandoraError
from ansible_collections.pandorafms.server.plugins.module_utils._history_db import (
    HistoryDbSettings, provision)
from ansible_collections.pandorafms.server.plugins.module_utils._module_args import (
    connection_argument_spec, fail_from_error)

# What a failed run still returns, so the state it left is reported.
PARTIAL_KEYS = ("created", "schema_loaded", "statements", "missing_tables", "existing_tables", "failed_statement",
                "essential_tables", "mr", "tconfig", "duplicates_removed")


def argument_spec():
    spec = connection_argument_spec()
    spec.update(
        name=dict(type="str", default="pandora_history"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        schema_file=dict(type="path", default="/var/www/html/pandora_console/pandoradb.sql"),
        force=dict(type="bool", default=False),
        strict=dict(type="bool", default=False),
        main_login_host=dict(type="str"),
        main_login_port=dict(type="int"),
        main_login_user=dict(type="str"),
        main_login_password=dict(type="str", no_log=True),
        main_login_unix_socket=dict(type="str"),
        main_config_file=dict(type="path", default="~/.my.cnf"),
        main_login_db=dict(type="str"),
        days_purge=dict(type="int", default=180),
        days_compact=dict(type="int", default=120),
        step_compact=dict(type="int", default=1),
        event_purge=dict(type="int", default=180),
        string_purge=dict(type="int", default=180),
        trap_history_purge=dict(type="int", default=180),
        history_db_host=dict(type="str"),
        history_db_port=dict(type="int"),
        history_db_user=dict(type="str", default="pandora"),
        history_db_pass=dict(type="str", no_log=True),
        history_db_days=dict(type="int", default=30),
        history_db_step=dict(type="int", default=1000),
        history_db_delay=dict(type="int", default=2),
        history_db_adv=dict(type="bool", default=False),
        history_db_string_days=dict(type="int", default=0),
        history_event_enabled=dict(type="bool", default=False),
        history_event_days=dict(type="int", default=90),
        history_trap_enabled=dict(type="bool", default=False),
        history_trap_days=dict(type="int", default=90),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:
        settings = HistoryDbSettings.from_params(params)
        result = provision(settings, check_mode=module.check_mode, diff=module._diff)
    except PandoraError as exc:
        partial = dict((key, exc.details[key]) for key in exc.details if key in PARTIAL_KEYS)
        fail_from_error(module, exc, HistoryDbSettings.redactor(params), **partial)
    except Exception as exc:  # a bug: still no password in the message or the traceback
        fail_from_error(module, exc, HistoryDbSettings.redactor(params))
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
