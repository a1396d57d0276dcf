#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pandora_db_info
short_description: Facts and the maintenance health of a Pandora FMS host
version_added: 0.1.0
description:
  - Connects to a Pandora FMS database and reports the engine and its version, the schema
    version recorded in C(tconfig), duplicate C(tconfig) tokens, whether the maintenance lock
    is free, and the size of the largest tables.
  - With O(health) (the default), it also answers "is maintenance keeping up?" for the main
    database and, when one is configured, the history database, in RV(health), with a list of
    RV(health.findings) (severity V(ok), V(warning) or V(critical), a one-line reason, what to do).
    It reads the real age of C(db_maintance) on each side (upstream's console reads the main
    database's age for its history check), the schema version on both sides, the purge, compaction
    and history-move backlogs, table sizes and layouts, the maintenance lock and who is master; and,
    on the managed host, the hourly cron file, this collection's own schedule and the newest backup.
  - Every count uses an index range scan and is bounded by O(count_timeout); a count that runs
    out of time is reported as the optimizer's estimate (C(exact=false)), never by scanning a table.
  - Useful to check connectivity and credentials before a maintenance or backup job, and across a
    fleet with the playbook C(pandorafms.server.health), which writes one report for all hosts.
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
options:
  health:
    description: Add the maintenance health report RV(health). V(false) returns the facts only.
    type: bool
    default: true
  servername:
    description:
      - This server's name in C(tserver), to tell whether this host is the master. Defaults to
        C(servername) of O(pandora_server_conf), else the host name.
    type: str
  thresholds:
    description:
      - When a signal becomes a finding. Keys (numbers) and defaults
        C(maintenance_warning_hours=12) (the console's red dot), C(maintenance_critical_hours=24)
        (the server's system event), C(maintenance_notice_hours=48) (the console's notice, named in
        the reason), C(backlog_warning_days=1), C(backlog_critical_days=7) (how far the oldest row is
        past its purge threshold), C(lag_warning_days=1), C(lag_critical_days=7) (the history move),
        C(backup_max_age_hours=26), C(lock_warning_hours=4).
    type: dict
    default: {}
  history_login_host:
    description: Host of the history database. Defaults to C(tconfig) C(history_db_host) when C(history_db_enabled) is V(1).
    type: str
  history_login_port:
    description: Port of the history database. Defaults to C(tconfig) C(history_db_port), else V(3306).
    type: int
  history_login_user:
    description: User of the history database. Defaults to C(tconfig) C(history_db_user).
    type: str
  history_login_password:
    description: Password of the history database. Defaults to C(tconfig) C(history_db_pass).
    type: str
  history_login_db:
    description: Name of the history database. Defaults to C(tconfig) C(history_db_name).
    type: str
  check_host:
    description: Look at the managed host too (cron file, schedule, backups). V(false) reads the databases only.
    type: bool
    default: true
  cron_file:
    description: The hourly maintenance cron file to check.
    type: path
    default: /etc/cron.hourly/pandora_db
  server_binary:
    description: The Pandora FMS server, whose version the cron file's tool must match.
    type: path
    default: /usr/bin/pandora_server
  timer_files:
    description:
      - Files of this collection's own scheduled maintenance (role C(pandorafms.server.db_maintenance) with
        C(db_maintenance_method=collection)); reported as installed when one exists.
    type: list
    elements: path
    default:
      - /etc/systemd/system/pandorafms-db-maintenance.timer
      - /usr/local/sbin/pandora-db-maintain
  backup_dir:
    description: Directory of the backup archives (C(pandorafms_backup_*.tar.gz)); the newest one's age is reported.
    type: path
  verify_backup:
    description: Also read the newest archive whole and check every member's sha256 against its manifest.
    type: bool
    default: false
  count_timeout:
    description:
      - Seconds each count may take (V(0.05) to V(60)) before the optimizer's estimate is reported instead
        (C(exact=false)). The default keeps the whole report under about 2 seconds on a 9 million row
        C(tagente_datos); raise it for exact counts of large backlogs.
    type: float
    default: 0.25
'''

EXAMPLES = r'''
- name: Check that the Pandora server's own credentials work
  pandorafms.server.pandora_db_info:
    pandora_server_conf: /etc/pandora/pandora_server.conf
  register: pandora_db

- name: Is maintenance keeping up? (health report with the backup directory too)
  pandorafms.server.pandora_db_info:
    pandora_server_conf: /etc/pandora/pandora_server.conf
    backup_dir: /var/backups/pandorafms
    thresholds:
      maintenance_warning_hours: 6
  register: pandora_health

- name: Fail when something is critical
  ansible.builtin.assert:
    that: pandora_health.health.worst != 'critical'
    fail_msg: "{{ pandora_health.health.findings | selectattr('severity', 'eq', 'critical') | map(attribute='reason') | list }}"

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
health:
  description: The maintenance health report (O(health=true)).
  returned: success and O(health=true)
  type: dict
  contains:
    main:
      description:
        - The main database - C(maintenance) (C(last_run), C(age_hours)), C(schema) (C(MR), C(db_scheme_version)),
          C(tables) (estimated rows, data and index bytes), C(layout) of C(tagente_datos) and
          C(tagente_datos_string) (partitioned or not, partitions, span, catch-all rows),
          C(tagente_datos_span) (oldest, newest), C(backlog) per table (rows older than the purge threshold,
          C(exact), the oldest row, how many days past the threshold), C(compaction_backlog), C(lock)
          (free, or the connection holding it and for how long), C(master) (master, servers,
          C(this_host_is_master)).
      type: dict
    history:
      description: The same for the history database, or C(error) when it is configured but unreachable.
      type: dict
      returned: when a history database is configured
    history_lag:
      description: Rows on main older than C(history_db_days) (the move should have taken them) and how many days behind.
      type: dict
      returned: when C(history_db_enabled) is 1
    host:
      description: What was read on the managed host - C(cron) (exists, owner, group, mode, C(name_runs), tool, its
        version and the server's), C(timer) (installed, files), C(backup) (newest archive, its age, C(verified)).
      type: dict
      returned: when O(check_host=true)
    findings:
      description: One entry per signal - C(severity) (V(ok), V(warning), V(critical)), C(check), C(reason), C(action).
      type: list
      elements: dict
      sample: [{"severity": "critical", "check": "maintenance_main", "action": "check the cron file or timer",
                "reason": "maintenance of the main database last ran 30.0 h ago, more than 24 h"}]
    worst:
      description: The highest severity among the findings.
      type: str
      sample: warning
    summary:
      description: One row for a fleet table (master, ages, backlog, lag, MR match, backup age, worst finding).
      type: dict
    seconds:
      description: How long the database part of the report took.
      type: float
table_layouts:
  description:
    - The layout of each big module data table (M(pandorafms.server.pandora_partitions)), plain or partitioned.
    - For a partitioned table, the partition count, the oldest and newest dated partition, estimated rows and
      bytes per partition, and the exact rows of the undated (NULL, 0 or negative timestamp) and catch-all
      (future timestamp) partitions.
  returned: success
  type: dict
  sample: {"tagente_datos": {"table": "tagente_datos", "layout": "partitioned", "partitioned": true,
           "partition_count": 70, "interval": "day", "days_ahead": 7, "oldest_partition": "p20260723",
           "newest_partition": "p20260928", "undated_rows": 0, "catchall_rows": 0,
           "partitions": [{"name": "p_undated", "less_than": 1, "estimated_rows": 0, "bytes": 32768}]}}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pandorafms.server.plugins.module_utils._dbinfo import database_facts
from ansible_collections.pandorafms.server.plugins.module_utils._errors import PandoraError
from ansible_collections.pandorafms.server.plugins.module_utils._health import Thresholds, collect, summary_row
from ansible_collections.pandorafms.server.plugins.module_utils._module_args import (
    connection_argument_spec, fail_from_error, settings_from_params)


def argument_spec():
    spec = connection_argument_spec()
    spec.update(
        health=dict(type="bool", default=True),
        servername=dict(type="str"),
        thresholds=dict(type="dict", default={}),
        history_login_host=dict(type="str"),
        history_login_port=dict(type="int"),
        history_login_user=dict(type="str"),
        history_login_password=dict(type="str", no_log=True),
        history_login_db=dict(type="str"),
        check_host=dict(type="bool", default=True),
        cron_file=dict(type="path", default="/etc/cron.hourly/pandora_db"),
        server_binary=dict(type="path", default="/usr/bin/pandora_server"),
        timer_files=dict(type="list", elements="path", default=[
            "/etc/systemd/system/pandorafms-db-maintenance.timer", "/usr/local/sbin/pandora-db-maintain"]),
        backup_dir=dict(type="path"),
        verify_backup=dict(type="bool", default=False),
        count_timeout=dict(type="float", default=0.25),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    settings = None
    if not 0.05 <= params["count_timeout"] <= 60:
        module.fail_json(msg="count_timeout must be between 0.05 and 60 seconds, not %s" % params["count_timeout"])
    try:
        thresholds = Thresholds.from_dict(params["thresholds"])
    except (ValueError, PandoraError) as exc:   # both name the key
        module.fail_json(msg="thresholds: %s" % exc)
    try:
        settings, server_values = settings_from_params(params)
        facts = database_facts(settings)
        if params["health"]:
            host_checks = None
            if params["check_host"]:
                host_checks = dict(cron_file=params["cron_file"], server_binary=params["server_binary"],
                                   timer_files=params["timer_files"], backup_dir=params["backup_dir"],
                                   verify_backup=params["verify_backup"])
            report = collect(settings, server_values, servername=params["servername"],
                             history=dict(host=params["history_login_host"], port=params["history_login_port"],
                                          user=params["history_login_user"],
                                          password=params["history_login_password"],
                                          db=params["history_login_db"]),
                             thresholds=thresholds, host_checks=host_checks, statement_seconds=params["count_timeout"])
            report["summary"] = summary_row(None, report)
            facts["health"] = report
    except PandoraError as exc:
        fail_from_error(module, exc, settings)
    except Exception as exc:  # a defect: reported without a password, with the traceback for -vvv
        fail_from_error(module, exc, settings)
    module.exit_json(changed=False, **facts)


if __name__ == "__main__":
    main()
