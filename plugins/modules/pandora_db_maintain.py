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
    integrity checks, the move of old data to the history database (V(history_move), what Enterprise's
    C(pandora_historydb) does), the compaction step (when available), the reassignment of discovery tasks whose
    server is gone or dead, and the purge of the history database with that database's own C(tconfig).
  - The move (V(history_move)) runs when the main C(tconfig) has C(history_db_enabled) = V(1). It moves rows
    older than C(history_db_days) from C(tagente_datos), C(tagente_datos_string) (C(history_db_string_days) when
    C(history_db_adv) = V(1)), C(tevento) with its child rows, ids kept (when C(history_event_enabled) = V(1)),
    and C(ttrap) (when C(history_trap_enabled) = V(1)), in blocks of at most C(history_db_step) rows with
    C(history_db_delay) seconds between blocks. No row younger than C(history_db_days) ever leaves the main
    database (a smaller days setting of another table is raised to it, with a warning).
  - "Each block of the move is one range of one table: its rows are locked on the main database, copied to the
    history database and verified there (count and a checksum of every column, computed by both servers) in one
    history transaction that also records the range in the history C(tconfig) token C(history_move_copied_<table>);
    only then are they deleted from the main database in the transaction that records C(history_move_moved_<table>)
    in the main C(tconfig). A run killed at any point, or a server lost mid-run, leaves each range untouched,
    copied (on both sides, resolved first by the next run) or moved; the next run resumes from the journals. The
    states and why each is safe are described in the collection's C(docs/history_move.md)."
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
  - Every option is checked before the run connects, and every C(tconfig) value before the first step, in check
    mode as in the real run, by the same code; a value out of range stops both with the option or token named.
  - "The steps, by O(steps) group, each with the name it has in RV(steps[].name) (C(_second_pass) names are the
    same step run again after the autodisabled agents went):"
  - "V(purge): C(extended_sessions) (C(tsesion_extended) rows of deleted audit entries, Enterprise);
    C(inventory) (C(tagente_datos_inventory), O(inventory_purge) days, Enterprise); C(disabled_agents) (disabled
    agents not seen for O(delete_disabled_agents) days, with their modules' graphs, report items, status, alerts,
    events and tags, their policy and address links and their incoming files); C(module_data) (C(tagente_datos),
    O(days_purge)); C(export_data) (C(tserver_export_data), O(days_purge)); C(php_sessions) (idle console sessions
    of C(tsessions_php), O(session_timeout) minutes, and cron sessions); C(planned_downtimes) (finished one-time
    downtimes of C(tplanned_downtime)); C(string_data) (C(tagente_datos_string), O(string_purge)); C(events)
    (C(tevento), O(event_purge), their comments go with them); C(audit) and C(audit_extended) (C(tsesion),
    O(audit_purge), and their extended data); C(traps) (C(ttrap), O(trap_purge)); C(gis_data)
    (C(tgis_data_history), O(gis_purge)); C(pending_modules_status), C(pending_modules_parents) and
    C(pending_modules) (modules marked for deletion: their status rows, their children unlinked, the modules);
    C(agent_access) (C(tagent_access) older than 24 hours, up to 7.0NG.773); C(report_contents_modules),
    C(report_items), C(report_sla_items), C(report_contents_agents), C(report_contents_empty_exception) and
    C(report_contents_empty_sla) (report contents and items of deleted modules and agents, and empty exception and
    SLA contents); C(autodisabled_agents) (as C(disabled_agents), for O(days_autodisable_deletion));
    C(netflow) and C(sflow) (capture files, O(netflow_max_lifetime) and O(sflow_max_lifetime) days);
    C(special_days) (C(talert_special_days), O(num_past_special_days)); C(graph_sources) (C(tgraph_source) rows
    of deleted graphs); C(messages) (C(tmensajes), O(delete_old_messages)); C(console_cache) (expired
    C(tvisual_console_elements_cache) rows); C(enterprise_cleanup), C(log_data) and C(ncm_data) are Enterprise
    hooks, always reported as skipped."
  - "V(checkdb): C(notinit_modules) (modules that never received data, when O(delete_notinit));
    C(unknown_modules) (unknown for O(days_delete_unknown) days); C(old_notinit_modules) (not initialised for
    O(days_delete_not_initialized) days); C(missing_status) and C(missing_module_status) (status rows created for
    modules that have none, an insert); C(empty_aliases) (agents given their name as alias, an update)."
  - "V(integrity): C(group_stats) (C(tgroup_stat)); C(orphan_alerts), C(orphan_modules), C(orphan_status) and
    C(orphan_inc_data) (alert assignments, modules, status rows and incremental data whose agent or module is
    gone)."
  - "V(compact): C(compact) (averages C(tagente_datos) older than O(days_compact) into one row per module and
    O(step_compact) window; on the history database with O(history_days_compact) and O(history_step_compact))."
  - "V(discovery_tasks): C(discovery_tasks) (discovery tasks whose server is gone or dead are given to a running
    discovery server, an update)."
  - "V(history_purge), on the history database with its own C(tconfig): C(history_module_data),
    C(history_string_data), C(history_events) and C(history_traps)."
  - "Core tables: C(tagente), C(tagente_modulo), C(tagente_estado), C(tagente_datos), C(tagente_datos_string),
    C(tagente_datos_inc), C(tevento), C(tsesion), C(tsessions_php), C(ttrap), C(tserver_export_data),
    C(tplanned_downtime), C(treport_content), C(treport_content_item), C(treport_content_sla_combined),
    C(talert_special_days), C(tgraph_source), C(tmensajes) and C(taddress_agent) (and C(tagente_datos),
    C(tagente_datos_string) and C(tevento) on the history database). A database missing one gets a warning: the
    steps on that table are skipped and the maintenance is incomplete. The other tables the steps use are optional
    (Enterprise: C(tagente_datos_inventory), C(tsesion_extended), C(tpolicy_agents); up to 7.0NG.773:
    C(tagent_access); some versions only: C(tgis_data_history), C(tvisual_console_elements_cache),
    C(tgroup_stat)); their absence is only a note in RV(notes)."
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
    details: Every step counts what it would delete, insert or update, taking into account what the earlier steps
      of the same run would do, and changes nothing. C(changed) is that prediction.
  diff_mode:
    support: full
    details:
      - "C(diff.before) and C(diff.after) map C(main) (and C(history) when a history database is used) to the row
        count of each table the run may change, for example C({main: {tagente_datos: 9000, tevento: 300}})."
      - In check mode C(after) is the prediction (the counts before plus what each step would insert, minus what it
        would delete, cascaded deletes included); in the real run it is counted again after the run.
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
        reassignment of forgotten discovery tasks; V(history_move) the move of old data to the history database;
        V(history_purge) the purge of the history database.
      - The default is what C(pandora_db.pl) does when run without flags. An empty list is refused (it would do
        nothing).
      - The C(db_maintance) token is written only when V(purge) ran and the run completed.
      - The steps of each group and what each one cleans are listed in the description above.
    type: list
    elements: str
    choices: [purge, checkdb, integrity, history_move, compact, discovery_tasks, history_purge]
    default: [purge, checkdb, integrity, history_move, compact, discovery_tasks, history_purge]
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
    description:
      - Days of raw module data (C(tagente_datos)) to keep as they are; older data is averaged by the compaction
        step (V(compact)) into one row per module and O(step_compact) window, so graphs keep their shape with far
        fewer rows.
      - Defaults to C(tconfig) C(days_compact) (set in the console), else V(0).
      - V(0) turns compaction off. A value not lower than the days of data kept (O(days_purge)) also skips it, as
        the data would be purged before it is old enough. Must be V(0) or more.
    type: int
  step_compact:
    description:
      - Length in hours of the windows compaction averages over (one row per module and window).
      - Defaults to C(tconfig) C(step_compact) (Pandora's default is V(1)). Must be V(1) or more when compaction
        is on; unset in both places with compaction on stops the run before anything changes (upstream 7.0NG.774+
        loops forever on V(0)).
    type: int
  compact_row_budget:
    description:
      - The most raw rows compaction averages in one run; the run stops compaction cleanly when it is used up and
        the next run resumes where it stopped. Useful to work through a large backlog in slices.
      - Unset means no limit. Must be V(1) or more.
    type: int
  compact_chunk_rows:
    description:
      - About how many raw rows one compaction transaction covers (each transaction averages, deletes and inserts
        one bounded time range, and commits).
      - Smaller values hold row locks for a shorter time; larger ones need fewer statements.
      - Unset means V(20000), which suits most servers. Must be V(1) or more.
    type: int
  history_days_compact:
    description:
      - As O(days_compact), for the history database; defaults to that database's C(tconfig) C(days_compact),
        else V(0).
      - V(0) turns compaction of the history database off. Must be V(0) or more.
    type: int
  history_step_compact:
    description:
      - As O(step_compact), for the history database (hours per window); defaults to that database's C(tconfig)
        C(step_compact). Must be V(1) or more when its compaction is on.
    type: int
  partition_purge_exact:
    description:
      - Only for tables in the partitioned layout of M(pandorafms.server.pandora_partitions). The purge drops every
        partition whose whole range is older than the threshold; by default that is all it does, so data is kept
        up to one partition longer than the threshold.
      - V(true) also deletes, with the batched delete, the rows of the threshold's partition that are older than
        the threshold, leaving exactly what the purge of a plain table leaves.
    type: bool
    default: false
  history_db_days:
    description:
      - Move module data older than this many days to the history database. Overrides the main C(tconfig)
        C(history_db_days). Unset or V(0) skips the move.
    type: int
  history_db_string_days:
    description: Move string data older than this many days. Overrides C(tconfig) C(history_db_string_days)
      (used when C(history_db_adv) is V(1); else the strings follow O(history_db_days)). Never less than
      O(history_db_days).
    type: int
  history_event_days:
    description: Move events older than this many days (when C(history_event_enabled) is V(1)). Overrides
      C(tconfig) C(history_event_days), default V(90). Never less than O(history_db_days).
    type: int
  history_trap_days:
    description: Move SNMP traps older than this many days (when C(history_trap_enabled) is V(1)). Overrides
      C(tconfig) C(history_trap_days), default V(90). Never less than O(history_db_days).
    type: int
  history_db_step:
    description: The most rows one block of the move copies and deletes (a single second of one module holding
      more rows is one block). Overrides C(tconfig) C(history_db_step); unset or V(0) means V(1000); at most
      V(100000).
    type: int
  history_db_delay:
    description: Seconds to wait between two blocks of the move. Overrides C(tconfig) C(history_db_delay); V(0)
      (allowed here, for catch-up runs) does not wait.
    type: float
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
      - From V(1) to V(100000) (the option or the token); a larger statement holds its row locks for seconds.
    type: int
  batch_sleep:
    description:
      - Seconds to sleep after each batch, to leave room for the Pandora server on a busy database.
      - From V(0) to V(60).
    type: float
    default: 0
  max_runtime:
    description:
      - Stop cleanly, between two batches, after this many seconds; the result says which step was interrupted and
        how many rows it had left (RV(rows_left)) and which steps did not run (RV(remaining_steps)).
      - C(db_maintance) is not written by a run that stopped early.
      - For runs longer than the connection timeout of the controller, use C(async) and C(poll) on the task.
      - Unset or V(0) means no limit; must not be negative.
    type: float
  lock_timeout:
    description:
      - Seconds to wait for the maintenance lock. V(0) fails at once when C(pandora_db.pl) or another run
        holds it.
      - From V(0) to V(86400).
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
    description:
      - The server's incoming directory, where deleted agents' C(conf/<md5>.conf) and C(md5/<md5>.md5)
        files are removed. Defaults to C(incomingdir) of O(pandora_server_conf), else C(/var/spool/pandora/data_in).
      - Must be an absolute path.
    type: path
  log_file:
    description:
      - Append the run log, in C(pandora_db.pl)'s format, to this file (flushed line by line), in check mode too.
      - Must be an absolute path in an existing directory.
    type: path
  history_login_host:
    description: Host of the history database. Defaults to C(tconfig) C(history_db_host) when
      C(history_db_enabled) is V(1); without either, no history database is used.
    type: str
  history_login_port:
    description:
      - Port of the history database. Defaults to C(tconfig) C(history_db_port), else V(3306).
      - From V(1) to V(65535) (the option or the token).
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
notes:
  - Long runs work under C(async)/C(poll); O(max_runtime) bounds one run.
  - Netflow and sflow capture files are expired with the configured C(nfexpire); those steps do not count towards
    C(changed) because C(nfexpire) does not report what it removed.
  - Thresholds in days count whole days of 86400 seconds back from now.
  - When a database error stops a run, the message says which step and table failed, whether anything was changed
    (each batch commits, so the steps before it stay done and the next run continues) and what to do.
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

- name: Catch up on the move to the history database quickly, for at most one hour
  pandorafms.server.pandora_db_maintain:
    pandora_server_conf: /etc/pandora/pandora_server.conf
    steps: [history_move, history_purge]
    history_db_step: 10000
    history_db_delay: 0
    history_login_password: "{{ pandora_history_db_password }}"
    max_runtime: 3600

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
  description:
    - One entry per step and table, in the order they ran (the step names are listed in the description).
    - For V(history_move) (one entry per table), C(rows) is the rows moved (in check mode, that would
      move) and C(details) has C(blocks), C(max_block_rows), C(child_rows) (events), C(rows_per_second),
      C(lag_seconds) (age of the oldest row left on the main database that should have moved; V(0) when none)
      and C(resumed_range) (the range an interrupted run had left copied, when this run finished it).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The step's name, for example V(module_data) or V(compact).
      type: str
    table:
      description: The table the step works on (V(null) for the capture-file steps and the Enterprise hooks).
      type: str
    database:
      description: V(main) or V(history).
      type: str
    rows:
      description:
        - Rows the step deleted, inserted or updated in RV(steps[].table) (in check mode, would have). For the agent
          purges the number of agents; for V(compact) the raw rows averaged away.
        - The C(rows_by_table) and C(cascaded) keys of RV(steps[].details), and RV(totals), have every table.
      type: int
    seconds:
      description: Seconds the step took.
      type: float
    threshold:
      description:
        - What the step used, for a threshold step C(key) (the C(tconfig) token), C(value), C(unit) (V(days),
          V(minutes), V(hours)), C(source) (V(option), V(tconfig), V(default) or V(unset)) and C(cutoff) (the
          epoch or date older than which rows go); for V(compact) the epoch below which it averages.
      type: raw
    skipped_reason:
      description: Why the step did nothing (threshold unset or V(0), table missing, Enterprise hook, ...); V(null)
        when it ran.
      type: str
    details:
      description:
        - Step-specific facts. Common keys are C(statements) (write statements), C(max_statement_rows) (largest row
          count of one statement, never above RV(batch_size)), C(retries) and C(batch_size); C(action) (V(insert)
          or V(update ...) when the step does not delete); C(rows_by_table) (rows per table for the steps that
          touch several); C(cascaded) (rows of other tables deleted with these rows by the schema's ON DELETE
          CASCADE keys, for example event comments with their events).
        - V(compact) adds C(rows_deleted), C(rows_inserted) (the means), C(modules_compacted), C(windows),
          C(transactions), C(stopped_early) and C(stop_reason).
        - An entry cut short by O(max_runtime) has C(interrupted) and C(rows_left).
      type: dict
  sample:
    - {"name": "module_data", "table": "tagente_datos", "rows": 2278752, "seconds": 14.2, "database": "main",
       "threshold": {"key": "days_purge", "value": 45, "unit": "days", "source": "tconfig", "cutoff": 1786112000},
       "skipped_reason": null, "details": {"statements": 2279, "max_statement_rows": 1000}}
totals:
  description:
    - The sum of the steps' changes. For every table, RV(totals.by_table) C(inserted) minus C(deleted) is the change
      of its row count (the maintenance tokens in C(tconfig) aside), in check mode as predicted.
  returned: always
  type: dict
  contains:
    rows:
      description: RV(totals.deleted) + RV(totals.inserted) + RV(totals.updated).
      type: int
    deleted:
      description: Rows deleted, the FK-cascaded ones included.
      type: int
    inserted:
      description: Rows inserted (status rows created, the means compaction writes).
      type: int
    updated:
      description: Rows updated (modules marked for deletion, aliases, discovery tasks, ...).
      type: int
    cascaded:
      description: How many of RV(totals.deleted) the database deleted through ON DELETE CASCADE keys.
      type: int
    by_table:
      description: Per table (V(history.<table>) for the history database), a dict with C(deleted), C(inserted) and
        C(updated).
      type: dict
    steps_run:
      description: Step entries that ran.
      type: int
    steps_skipped:
      description: Step entries that were skipped.
      type: int
  sample: {"rows": 2319540, "deleted": 2300000, "inserted": 19540, "updated": 6, "cascaded": 40,
           "by_table": {"tagente_datos": {"deleted": 2278752, "inserted": 19540, "updated": 0},
                        "tevent_comment": {"deleted": 40, "inserted": 0, "updated": 0}},
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
  description: Informational notes (optional tables missing in this schema, no history database, ...). A missing
    core table is also an Ansible warning.
  returned: always
  type: list
  elements: str
diff:
  description: Rows per table before and after, when run with C(--diff) (see the C(diff_mode) attribute).
  returned: when diff mode is on
  type: dict
  sample: {"before": {"main": {"tagente_datos": 9000, "tevento": 300}},
           "after": {"main": {"tagente_datos": 7000, "tevento": 120}}}
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
from ansible_collections.pandorafms.server.plugins.module_utils._history_move import MOVE_OPTIONS
from ansible_collections.pandorafms.server.plugins.module_utils._maintain import (
    COMPACT_OPTIONS, STEP_CHOICES, options_from_params, run_maintenance)
from ansible_collections.pandorafms.server.plugins.module_utils._module_args import (
    connection_argument_spec, fail_from_error, settings_from_params, test_now)
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
    )
    for key in THRESHOLD_KEYS:
        spec[key] = dict(type="bool" if key == "delete_notinit" else "int")
    for key in COMPACT_OPTIONS:
        spec[key] = dict(type="int")
    spec["partition_purge_exact"] = dict(type="bool", default=False)
    for key in MOVE_OPTIONS:
        spec[key] = dict(type="float" if key == "history_db_delay" else "int")
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    settings = None
    try:
        settings, server_values = settings_from_params(params)
        # The same mapping serves the db_maintenance role's scheduled job (module_utils/_job.py).
        options = options_from_params(params)
        options["now"] = test_now(module)
        result = run_maintenance(settings, server_values, check_mode=module.check_mode, diff=module._diff,
                                 **options)
    except PandoraError as exc:
        partial = dict((key, exc.details[key]) for key in ("steps", "log") if key in exc.details)
        fail_from_error(module, exc, settings, **partial)
    except Exception as exc:  # a defect: reported without a password, with the traceback for -vvv
        fail_from_error(module, exc, settings)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
