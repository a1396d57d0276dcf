#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pandora_partitions
short_description: Time-partitioned tagente_datos and tagente_datos_string, converted online
version_added: 0.2.0
description:
  - Converts C(tagente_datos) and C(tagente_datos_string) to a layout partitioned by C(RANGE (utimestamp)) into
    day, week or month partitions named by their start date (UTC), with a first partition C(p_undated) for NULL,
    0 and negative timestamps and a catch-all last partition C(p_future) so that an insert with a future or wrong
    timestamp never fails. With O(state=absent) it converts them back to plain tables.
  - Once a table is partitioned, the purge step of M(pandorafms.server.pandora_db_maintain) drops whole expired
    partitions instead of deleting rows, and keeps O(days_ahead) days of partitions ready.
  - The conversion is online. The rows are copied in small transactions, in C(utimestamp) order, into a shadow
    table, and triggers mirror the concurrent writes. Then one atomic C(RENAME TABLE) swaps the tables. A
    writer waits at most for one chunk's transaction. An interrupted run (killed, server restart) leaves the
    old table or the new one, with every row, and the next run goes on from where it stopped.
  - This is a module of its own, not options of M(pandorafms.server.pandora_db_maintain). The conversion is a
    one-time schema change that runs once, for minutes, with its own plan and state, while the maintenance is
    an hourly job that only has to notice the layout.
  - Tables with foreign keys (C(tevento) and others) are refused, because MariaDB and MySQL cannot partition a
    table that has or is the target of a foreign key.
  - Takes the maintenance lock (C(<dbname>_pandora_db)), so it never runs at the same time as
    C(pandora_db.pl) or M(pandorafms.server.pandora_db_maintain).
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
    details: Reports the plan (state, rows to copy, partitions, actions) and the estimated duration and longest
      write stall, and changes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: A second run finds the layout in place and reports C(changed=false), unless a new partition became
      due in between.
  platform:
    platforms: posix
  action_group:
    support: full
    membership:
      - pandorafms.server.pandora
options:
  tables:
    description: The tables to convert.
    type: list
    elements: str
    default: [tagente_datos, tagente_datos_string]
  state:
    description: V(present) for the partitioned layout, V(absent) for plain tables.
    type: str
    choices: [present, absent]
    default: present
  interval:
    description: The width of one partition. Weeks start on Monday. Applies to the partitions created from now on.
    type: str
    choices: [day, week, month]
    default: day
  days_ahead:
    description: How many days of partitions to keep ready in advance, so that the catch-all partition stays
      empty and splitting it moves no rows. Stored in the table's comment, where the purge step reads it.
    type: int
    default: 7
  chunk_rows:
    description: Rows copied per transaction during the conversion. A concurrent write waits at most for one
      chunk.
    type: int
    default: 20000
  lock_wait:
    description: Seconds a DDL statement waits for the table's metadata lock before it retries (three times).
      While it waits, new queries of the table wait too, so keep it short.
    type: int
    default: 5
  lock_timeout:
    description: Seconds to wait for the maintenance lock.
    type: int
    default: 0
seealso:
  - module: pandorafms.server.pandora_db_maintain
  - module: pandorafms.server.pandora_db_info
'''

EXAMPLES = r'''
- name: See what the conversion would do and how long writes would wait
  pandorafms.server.pandora_partitions:
    pandora_server_conf: /etc/pandora/pandora_server.conf
  check_mode: true
  register: plan

- name: Partition the module data tables by day, online
  pandorafms.server.pandora_partitions:
    pandora_server_conf: /etc/pandora/pandora_server.conf
    days_ahead: 7
  async: 7200
  poll: 30

- name: Back to plain tables
  pandorafms.server.pandora_partitions:
    pandora_server_conf: /etc/pandora/pandora_server.conf
    state: absent
'''

RETURN = r'''
tables:
  description: One entry per table, in the order given.
  returned: always
  type: list
  elements: dict
  sample:
    - table: tagente_datos
      layout_before: plain
      changed: true
      conversion: {state: fresh, rows: 9112320, rows_to_copy: 9112320, estimated_stall_seconds: 0.23,
                   rows_copied: 9112320, chunks: 456, longest_chunk_seconds: 0.41, swap_seconds: 0.02}
      partitions_created: []
      layout: {layout: partitioned, partition_count: 70, oldest_partition: p20260723, newest_partition: p20260928}
      seconds: 61.2
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pandorafms.server.plugins.module_utils._connection import connect
from ansible_collections.pandorafms.server.plugins.module_utils._errors import PandoraError
from ansible_collections.pandorafms.server.plugins.module_utils._lock import MaintenanceLock
from ansible_collections.pandorafms.server.plugins.module_utils._module_args import (
    connection_argument_spec, fail_from_error, settings_from_params, test_now)
from ansible_collections.pandorafms.server.plugins.module_utils._partitions import manage_tables


def argument_spec():
    spec = connection_argument_spec()
    spec.update(
        tables=dict(type="list", elements="str", default=["tagente_datos", "tagente_datos_string"]),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        interval=dict(type="str", choices=["day", "week", "month"], default="day"),
        days_ahead=dict(type="int", default=7),
        chunk_rows=dict(type="int", default=20000),
        lock_wait=dict(type="int", default=5),
        lock_timeout=dict(type="int", default=0),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    settings = None
    log = []
    try:
        settings, dummy = settings_from_params(params)
        conn = connect(settings)
        try:
            lock = MaintenanceLock(conn, settings.database, wait=params["lock_timeout"])
            with lock:
                results = manage_tables(conn, params["tables"], state=params["state"], interval=params["interval"],
                                        days_ahead=params["days_ahead"], chunk_rows=params["chunk_rows"],
                                        lock_wait=params["lock_wait"], now=test_now(module),
                                        check_mode=module.check_mode, log=log.append)
        finally:
            conn.close()
    except PandoraError as exc:
        fail_from_error(module, exc, settings, log=log)
    module.exit_json(changed=any(r["changed"] for r in results), tables=results, log=log)


if __name__ == "__main__":
    main()
