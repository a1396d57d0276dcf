#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pandora_db_info
short_description: Facts about a Pandora FMS database
version_added: 0.1.0
description:
  - Connects to a Pandora FMS database and reports the engine and its version, the schema
    version recorded in C(tconfig), duplicate C(tconfig) tokens, whether the maintenance lock
    is free, and the size of the largest tables.
  - Useful to check connectivity and credentials before a maintenance or backup job.
  - It only reads. A connection option out of range is refused by name before connecting; a database error is
    reported with what failed and what to do.
author:
  - pandorafms.server contributors (@pandorafms-server)
extends_documentation_fragment:
  - pandorafms.server.connection
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
  - pandorafms.server.attributes
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: none
  idempotent:
    support: full
  platform:
    platforms: posix
  action_group:
    support: full
    membership:
      - pandorafms.server.pandora
options: {}
'''

EXAMPLES = r'''
- name: Check that the Pandora server's own credentials work
  pandorafms.server.pandora_db_info:
    pandora_server_conf: /etc/pandora/pandora_server.conf
  register: pandora_db

- name: Show the schema version
  ansible.builtin.debug:
    msg: "MR {{ pandora_db.schema.MR }} on {{ pandora_db.server.engine }} {{ pandora_db.server.version }}"
'''

RETURN = r'''
server:
  description: Engine (V(mariadb) or V(mysql)), version and full version string.
  returned: success
  type: dict
  sample: {"engine": "mariadb", "version": "10.11.19", "version_string": "10.11.19-MariaDB-0+deb12u1"}
database:
  description: The database name.
  returned: success
  type: str
  sample: pandora
tables:
  description: Number of tables in the database.
  returned: success
  type: int
  sample: 227
schema:
  description: Schema and maintenance tokens of C(tconfig) (V(null) when absent).
  returned: success
  type: dict
  sample: {"MR": "64", "db_scheme_version": "7.0NG", "db_maintance": "1790000000"}
tconfig_duplicates:
  description: Tokens with more than one C(tconfig) row, with all their values (Pandora uses the first).
  returned: success
  type: dict
  sample: {"days_purge": ["45", "30"]}
maintenance_lock_free:
  description: Whether no maintenance run (C(pandora_db.pl) or this collection) holds the lock now.
  returned: success
  type: bool
table_sizes:
  description: Estimated rows and bytes of the big tables.
  returned: success
  type: dict
  sample: {"tagente_datos": {"estimated_rows": 9000000, "bytes": 650000000}}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pandorafms.server.plugins.module_utils._dbinfo import database_facts
from ansible_collections.pandorafms.server.plugins.module_utils._errors import PandoraError
from ansible_collections.pandorafms.server.plugins.module_utils._module_args import (
    connection_argument_spec, fail_from_error, settings_from_params)


def main():
    module = AnsibleModule(argument_spec=connection_argument_spec(), supports_check_mode=True)
    settings = None
    try:
        settings, dummy = settings_from_params(module.params)
        facts = database_facts(settings)
    except PandoraError as exc:
        fail_from_error(module, exc, settings)
    except Exception as exc:  # a defect: reported without a password, with the traceback for -vvv
        fail_from_error(module, exc, settings)
    module.exit_json(changed=False, **facts)


if __name__ == "__main__":
    main()
