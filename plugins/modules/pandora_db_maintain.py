#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pandora_db_maintain
short_description: Pandora FMS database maintenance (what pandora_db.pl does every hour), batched and checkable
version_added: 0.1.0
description:
  - Runs, in C(pandora_db.pl)'s order, every purge step (old module data, strings, events, audit, traps, GIS,
    sessions, export data, planned downtimes, disabled and autodisabled agents, pending-delete modules, orphaned
    report items, special days, messages, cache, netflow and sflow files), the consistency checks (CHECKDB), the
    integrity checks, the compaction step (when available), the reassignment of discovery tasks whose server is gone
    or dead, and the purge of the history database with that database's own C(tconfig).
  - Thresholds come from C(tconfig) with the same keys and defaults as C(pandora_db.pl); every one can be overridden
    by an option. Unset or V(0) skips a step, as upstream. A negative or non-numeric value (option or C(tconfig)
    token) stops the run before anything changes, with the key named.
  - Every write deletes, updates or inserts at most O(batch_size) rows and commits at once; deletes walk an index
    in key order (or primary-key ranges for tables that have no index on the purge column), so no statement holds
    locks for long. Lock wait timeouts and deadlocks are retried a few times.
  - Runs only on the master server (as C(pandora_db.pl)); on any other node it does nothing and returns
    RV(skipped_reason=not master), so one job can target every node of an HA fleet.
  - Takes the same named lock as C(pandora_db.pl) (C(<dbname>_pandora_db)), so the two never run at once; a busy
    lock fails at once unless O(lock_timeout) is set.
  - Fixes upstream defects (listed in the collection's C(docs/maintenance.md)), among them agents deleted after
    N days instead of N x 8600 seconds, address links removed by agent, sflow tokens read, special days with date
    arithmetic, no status rows created for agents deleted in the same run, errors reported, and a master bypass that
    only bypasses the master check.
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
    details: Every step counts what it would delete, insert or update, taking into account what the earlier steps
      of the same run would do, and changes nothing. C(changed) is that prediction.
  diff_mode:
    support: full
    details: Rows per table before and after (predicted after, in check mode).
  idempotent:
    support: full
    details: A second run right after a first one finds nothing to do and reports C(changed=false). The
      C(db_maintance) timestamp it writes does not count as a change.
  platform:
    platforms: posix
  action_group:
    support: full
    membership:
      - pandorafms.server.pandora
options:
  steps:
    description:
      - Which parts to run, always in upstream order.
      - V(purge), V(checkdb) and V(integrity) are C(pandora_db.pl)'s PURGE, CHECKDB and INTEGRITY; V(compact) the
        compaction (main database, and history database when one is connected); V(discovery_tasks) the
        reassignment of forgotten discovery tasks; V(history_purge) the purge of the history database.
      - The default is what C(pandora_db.pl) does when run without flags.
      - The C(db_maintance) token is written only when V(purge) ran and the run completed.
    type: list
    elements: str
    choices: [purge, checkdb, integrity, compact, discovery_tasks, history_purge]
    default: [purge, checkdb, integrity, compact, discovery_tasks, history_purge]
  days_purge:
    description:
      - Days of module data (C(tagente_datos)) and export data to keep. Overrides C(tconfig) C(days_purge).
      - Unset in both places or V(0) skips these purges (and, as upstream, the console session purge).
    type: int
  string_purge:
    description: Days of string data (C(tagente_datos_string)) to keep. C(tconfig) C(string_purge), default V(7).
    type: int
  event_purge:
    description: Days of events (C(tevento)) to keep. C(tconfig) C(event_purge), default V(10).
    type: int
  audit_purge:
    description: Days of audit entries (C(tsesion)) to keep. C(tconfig) C(audit_purge), default V(7).
    type: int
  trap_purge:
    description: Days of SNMP traps (C(ttrap)) to keep. C(tconfig) C(trap_purge), default V(7).
    type: int
  gis_purge:
    description: Days of GIS history (C(tgis_data_history)) to keep. C(tconfig) C(gis_purge), default V(15).
    type: int
  inventory_purge:
    description: Days of inventory data (C(tagente_datos_inventory)) to keep. C(tconfig) C(inventory_purge), unset
      skips.
    type: int
  delete_disabled_agents:
    description: Delete disabled agents not seen for this many days. C(tconfig) C(delete_disabled_agents), unset
      skips.
    type: int
  days_autodisable_deletion:
    description: Delete autodisabled agents not seen for this many days. C(tconfig) C(days_autodisable_deletion),
      unset skips.
    type: int
  session_timeout:
    description:
      - Minutes after which an idle console session (C(tsessions_php)) is deleted. C(tconfig) C(session_timeout).
      - V(0) means 90 minutes and V(-1) ten years, as upstream; unset skips.
    type: int
  delete_old_messages:
    description: Days of console messages (C(tmensajes)) to keep. C(tconfig) C(delete_old_messages), unset skips.
    type: int
  num_past_special_days:
    description: Days of past alert special days to keep. C(tconfig) C(num_past_special_days), unset skips.
    type: int
  netflow_max_lifetime:
    description: Days of netflow capture files to keep (C(nfexpire)). C(tconfig) C(netflow_max_lifetime).
    type: int
  sflow_max_lifetime:
    description: Days of sflow capture files to keep (C(nfexpire)). C(tconfig) C(sflow_max_lifetime).
    type: int
  days_delete_unknown:
    description: Delete modules unknown for more than this many days. C(tconfig) C(days_delete_unknown), unset skips.
    type: int
  days_delete_not_initialized:
    description: Delete modules not initialised for more than this many days (needs O(delete_notinit)).
      C(tconfig) C(days_delete_not_initialized).
    type: int
  delete_notinit:
    description: Delete modules that never received data. C(tconfig) C(delete_notinit) (V(1) is true).
    type: bool
  days_compact:
    description: Passed to the compaction step; overrides C(tconfig) C(days_compact).
    type: int
  step_compact:
    description: Passed to the compaction step; overrides C(tconfig) C(step_compact) (hours per window).
    type: int
  compact_row_budget:
    description: Passed to the compaction step; the most raw rows it handles in one run.
    type: int
  compact_chunk_rows:
    description:
      - Passed to the compaction step; about how many raw rows one compaction transaction covers
        (each transaction averages, deletes and inserts one bounded time range).
      - Smaller values hold row locks for a shorter time; larger ones need fewer statements.
      - The engine's default (V(20000)) suits most servers.
    type: int
  history_days_compact:
    description:
      - Passed to the compaction of the history database; overrides that database's C(tconfig) C(days_compact).
      - V(0) turns compaction of the history database off.
    type: int
  history_step_compact:
    description: Passed to the compaction of the history database; overrides its C(tconfig) C(step_compact)
      (hours per window).
    type: int
  history_days_purge:
    description: Days of module data to keep in the history database. Overrides its C(tconfig) C(days_purge).
    type: int
  history_string_purge:
    description: Days of string data to keep in the history database. Its C(tconfig) C(string_purge), default V(7).
    type: int
  history_event_purge:
    description: Days of events to keep in the history database. Its C(tconfig) C(event_purge).
    type: int
  history_trap_purge:
    description: Days of traps to keep in the history database. Its C(tconfig) C(trap_history_purge).
    type: int
  batch_size:
    description:
      - The most rows one statement may delete, update or insert.
      - Defaults to C(tconfig) C(small_operation_step_datos_purge), else V(1000).
    type: int
  batch_sleep:
    description: Seconds to sleep after each batch, to leave room for the Pandora server on a busy database.
    type: float
    default: 0
  max_runtime:
    description:
      - Stop cleanly, between two batches, after this many seconds; the result says which step was interrupted and
        how many rows it had left (RV(rows_left)) and which steps did not run (RV(remaining_steps)).
      - C(db_maintance) is not written by a run that stopped early.
      - For runs longer than the connection timeout of the controller, use C(async) and C(poll) on the task.
    type: float
  lock_timeout:
    description: Seconds to wait for the maintenance lock. V(0) fails at once when C(pandora_db.pl) or another run
      holds it.
    type: int
    default: 0
  require_master:
    description:
      - Run only when this server is the master (the first C(tserver) row with C(master <> 0) and C(status = 1)
        whose name is O(servername)). Otherwise return RV(skipped_reason=not master) and change nothing.
      - V(false) bypasses that check only; the lock is still taken.
    type: bool
    default: true
  servername:
    description: This server's name in C(tserver). Defaults to C(servername) of O(pandora_server_conf), else the host
      name.
    type: str
  incomingdir:
    description: The server's incoming directory, where deleted agents' C(conf/<md5>.conf) and C(md5/<md5>.md5)
      files are removed. Defaults to C(incomingdir) of O(pandora_server_conf), else C(/var/spool/pandora/data_in).
    type: path
  log_file:
    description: Append the run log, in C(pandora_db.pl)'s format, to this file (flushed line by line).
    type: path
  history_login_host:
    description: Host of the history database. Defaults to C(tconfig) C(history_db_host) when
      C(history_db_enabled) is V(1); without either, no history database is used.
    type: str
  history_login_port:
    description: Port of the history database. Defaults to C(tconfig) C(history_db_port), else V(3306).
    type: int
  history_login_user:
    description: User of the history database. Defaults to C(tconfig) C(history_db_user).
    type: str
  history_login_password:
    description: Password of the history database. Defaults to C(tconfig) C(history_db_pass) (which Enterprise may
      store encrypted; then give it here).
    type: str
  history_login_db:
    description: Name of the history database. Defaults to C(tconfig) C(history_db_name).
    type: str
  now:
    description:
      - Testing aid. The epoch seconds the run treats as the current time.
    type: int
notes:
  - Long runs work under C(async)/C(poll); O(max_runtime) bounds one run.
  - Netflow and sflow capture files are expired with the configured C(nfexpire); those steps do not count towards
    C(changed) because C(nfexpire) does not report what it removed.
seealso:
  - module: pandorafms.server.pandora_db_info
'''

EXAMPLES = r'''
- name: Hourly maintenance on every Pandora server (only the master does the work)
  pandorafms.server.pandora_db_maintain:
    pandora_server_conf: /etc/pandora/pandora_server.conf

- name: See what a purge with 30 days of data would delete, without changing anything
  pandorafms.server.pandora_db_maintain:
    pandora_server_conf: /etc/pandora/pandora_server.conf
    days_purge: 30
  check_mode: true
  diff: true
  register: plan

- name: Work through a big backlog in one-hour slices, gently
  pandorafms.server.pandora_db_maintain:
    pandora_server_conf: /etc/pandora/pandora_server.conf
    steps: [purge]
    batch_size: 5000
    batch_sleep: 0.05
    max_runtime: 3600
    log_file: /var/log/pandora/pandora_db_maintain.log
  async: 4000
  poll: 30

- name: Explicit credentials, no master check (single server without a tserver row)
  pandorafms.server.pandora_db_maintain:
    login_host: 127.0.0.1
    login_user: pandora
    login_password: "{{ pandora_db_password }}"
    login_db: pandora
    require_master: false
'''

RETURN = r'''
steps:
  description: One entry per step and table, in the order they ran.
  returned: always
  type: list
  elements: dict
  sample:
    - {"name": "module_data", "table": "tagente_datos", "rows": 2278752, "seconds": 14.2, "database": "main",
       "threshold": {"key": "days_purge", "value": 45, "unit": "days", "source": "tconfig", "cutoff": 1786112000},
       "skipped_reason": null, "details": {"statements": 2279, "max_statement_rows": 1000}}
totals:
  description: Rows deleted, inserted and updated in all, per table, and how many steps ran or were skipped.
  returned: always
  type: dict
  sample: {"rows": 2300000, "deleted": 2299990, "inserted": 4, "updated": 6, "by_table": {"tagente_datos": 2278752},
           "steps_run": 30, "steps_skipped": 9}
duration:
  description: Seconds the run took.
  returned: always
  type: float
server:
  description: Engine and version of the main database server, this server's name, and the master's name.
  returned: always
  type: dict
  sample: {"engine": "mariadb", "version": "10.11.6", "servername": "pandora01", "master": "pandora01"}
database:
  description: The main database.
  returned: always
  type: str
history_database:
  description: The history database, when one was used.
  returned: always
  type: str
skipped_reason:
  description: V(not master) when this server is not the master and nothing was done; else V(null).
  returned: always
  type: str
stopped_early:
  description: Whether O(max_runtime) stopped the run.
  returned: always
  type: bool
interrupted_step:
  description: The step O(max_runtime) interrupted.
  returned: when stopped_early
  type: str
rows_left:
  description: Rows the interrupted step still had to process.
  returned: when stopped_early
  type: int
remaining_steps:
  description: Steps that did not run because O(max_runtime) was reached.
  returned: when stopped_early
  type: list
  elements: str
log:
  description: The run log in C(pandora_db.pl)'s format (banner, C(Starting at), C(HH:MM:SS [PURGE] ...) lines,
    C(Ending at)).
  returned: always
  type: list
  elements: str
notes:
  description: Informational notes (optional tables missing in this schema, no history database, ...).
  returned: always
  type: list
  elements: str
maintenance_tokens:
  description: The maintenance timestamps written (or, in check mode, that would be written).
  returned: always
  type: dict
  sample: {"main": {"db_maintance": 1790000000}, "history": {"db_maintance": 1790000000, "db_maintenance": 1790000000}}
batch_size:
  description: The batch size used.
  returned: when the run was not skipped
  type: int
check_mode:
  description: Whether this was a check-mode run.
  returned: always
  type: bool
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pandorafms.server.plugins.module_utils._errors import PandoraError
from ansible_collections.pandorafms.server.plugins.module_utils._maintain import (
    COMPACT_OPTIONS, STEP_CHOICES, options_from_params, run_maintenance)
from ansible_collections.pandorafms.server.plugins.module_utils._module_args import (
    connection_argument_spec, fail_from_error, settings_from_params)
from ansible_collections.pandorafms.server.plugins.module_utils._purge import THRESHOLD_KEYS


def argument_spec():
    spec = connection_argument_spec()
    spec.update(
        steps=dict(type="list", elements="str", choices=list(STEP_CHOICES), default=list(STEP_CHOICES)),
        batch_size=dict(type="int"),
        batch_sleep=dict(type="float", default=0.0),
        max_runtime=dict(type="float"),
        lock_timeout=dict(type="int", default=0),
        require_master=dict(type="bool", default=True),
        servername=dict(type="str"),
        incomingdir=dict(type="path"),
        log_file=dict(type="path"),
        history_login_host=dict(type="str"),
        history_login_port=dict(type="int"),
        history_login_user=dict(type="str"),
        history_login_password=dict(type="str", no_log=True),
        history_login_db=dict(type="str"),
        now=dict(type="int"),
    )
    for key in THRESHOLD_KEYS:
        spec[key] = dict(type="bool" if key == "delete_notinit" else "int")
    for key in COMPACT_OPTIONS:
        spec[key] = dict(type="int")
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    settings = None
    try:
        settings, server_values = settings_from_params(params)
        # The same mapping serves the db_maintenance role's scheduled job (module_utils/_job.py).
        result = run_maintenance(settings, server_values, check_mode=module.check_mode, diff=module._diff,
                                 **options_from_params(params))
    except PandoraError as exc:
        partial = dict((key, exc.details[key]) for key in ("steps", "log") if key in exc.details)
        fail_from_error(module, exc, settings, **partial)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
