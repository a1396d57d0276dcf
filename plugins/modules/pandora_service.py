#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pandora_service
short_description: Start, stop and restart the Pandora FMS server and pandora_ha, judged by the real process state
version_added: 0.1.0
description:
  - Drives the Pandora FMS server to O(state) with the init script's verbs (C(/etc/init.d/pandora_server))
    or, where systemd runs, with its units.
  - V(started), V(stopped) and V(restarted) act on the whole service. Since 7.0NG.756 that is C(pandora_ha)
    (the "Pandora FMS Daemon Watchdog"), which starts the server and stops it when it stops; the module
    also starts or stops the server itself when C(pandora_ha) leaves it in the wrong state.
    V(start-server), V(stop-server) and V(restart-server) act on the server alone, as the init script's verbs
    of the same names do.
  - The state is read from the pid files and C(/proc), never from C(ps | grep) or the init script's messages
    - a process is running when C(/proc/<pid>) exists and is not a zombie, and it is the daemon only when its
    command line names the program and O(server_conf) as whole arguments. A pid file naming another or a dead
    process is reported as stale and C(/proc) is scanned instead.
  - After the commands the module waits, up to O(timeout) seconds, until C(/proc) shows the goal (for
    V(restarted) and V(restart-server), a server with a new pid), and fails with the commands' output and the
    server log's last lines otherwise.
author:
  - pandorafms.server maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
  - pandorafms.server.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads the real state, validates the paths, and returns the commands it would run and the predicted
        state; runs nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
  action_group:
    support: full
    membership:
      - pandorafms.server.pandora
  idempotent:
    support: partial
    details:
      - V(started), V(stopped), V(start-server) and V(stop-server) change nothing when the processes are
        already in that state. V(restarted) and V(restart-server) always restart.
options:
  state:
    description:
      - The goal. See the description for what each value acts on.
    type: str
    required: true
    choices: [started, stopped, restarted, start-server, stop-server, restart-server]
  server_conf:
    description:
      - The server's configuration file; the daemons are recognised by it on their command line.
    type: path
    default: /etc/pandora/pandora_server.conf
  init_script:
    description:
      - The init script whose verbs are used when O(manager=init).
    type: path
    default: /etc/init.d/pandora_server
  server_daemon:
    description:
      - The server program, as it appears on the daemon's command line.
    type: path
    default: /usr/bin/pandora_server
  ha_daemon:
    description:
      - The C(pandora_ha) program. When it does not exist (servers older than 756) the whole-service states
        act on the server alone.
    type: path
    default: /usr/bin/pandora_ha
  ha_pid_file:
    description:
      - The pid file C(pandora_ha) writes (the init script and the systemd unit pass it with C(-p)).
    type: path
    default: /var/run/pandora_ha.pid
  server_pid_file:
    description:
      - A pid file of the server, when it is started with C(-P) (the stock init script does not). Without
        it the server is found in C(/proc).
    type: path
  manager:
    description:
      - V(init) uses O(init_script); V(systemd) uses O(server_unit) and O(ha_unit) with C(systemctl);
        V(auto) takes V(systemd) when systemd runs (C(/run/systemd/system) exists), else V(init).
    type: str
    choices: [auto, init, systemd]
    default: auto
  manage_ha:
    description:
      - Whether the whole-service states manage C(pandora_ha). Unset means yes when O(ha_daemon) exists.
    type: bool
  server_unit:
    description: The server's systemd unit.
    type: str
    default: pandora_server
  ha_unit:
    description: The systemd unit of C(pandora_ha).
    type: str
    default: pandora_ha
  timeout:
    description:
      - Seconds to wait, after the commands, for the processes to reach the goal.
    type: int
    default: 90
notes:
  - Secondary servers started from C(/etc/pandora/conf.d/*.conf) by the init script are not followed;
    only the server of O(server_conf) is.
  - While C(pandora_ha) runs it starts a stopped server again at its next cycle (C(ha_interval));
    use V(stopped) to stop both.
seealso:
  - module: pandorafms.server.pandora_db_maintain
'''

EXAMPLES = r'''
- name: Make sure the server and pandora_ha run (no change when they do)
  pandorafms.server.pandora_service:
    state: started

- name: Restart the server only, leaving pandora_ha alone
  pandorafms.server.pandora_service:
    state: restart-server
  register: restart

- name: Show the pids before and after
  ansible.builtin.debug:
    msg: "{{ restart.before.server.pid }} -> {{ restart.after.server.pid }}"

- name: What would stopping do?
  pandorafms.server.pandora_service:
    state: stopped
  check_mode: true
'''

RETURN = r'''
state:
  description: The requested state.
  returned: always
  type: str
manager:
  description: What ran the commands, V(init) or V(systemd).
  returned: always
  type: str
ha_managed:
  description: Whether C(pandora_ha) is part of the whole service on this host.
  returned: always
  type: bool
before:
  description:
    - The state read before any command. C(server) and C(ha) each hold C(running), C(pid) (the main
      process), C(pids), C(source) (V(pid_file) or V(proc)), C(pid_file), C(stale_pid_file) and
      C(daemonized) (the main process leads its own session, as a started Pandora daemon does; the
      foreground process of a start that is still running does not).
  returned: always
  type: dict
  sample:
    server: {running: true, pid: 4242, pids: [4242], source: proc, pid_file: null, stale_pid_file: false,
             daemonized: true}
    ha: {running: true, pid: 4200, pids: [4200], source: pid_file, pid_file: /var/run/pandora_ha.pid,
         stale_pid_file: false, daemonized: true, managed: true}
after:
  description:
    - The state read after the commands, as RV(before). In check mode the predicted state, marked
      C(predicted), with V(null) pids where a new process would start.
  returned: always
  type: dict
commands:
  description:
    - The commands run, in order, each with C(verb), C(argv), C(rc), C(stdout), C(stderr) and C(seconds).
      In check mode the commands that would run, with C(rc) V(null).
  returned: always
  type: list
  elements: dict
server_pid_changed:
  description: Whether the server's main pid differs between RV(before) and RV(after).
  returned: always
  type: bool
ha_systemd:
  description:
    - C(systemctl show) of O(ha_unit) (C(LoadState), C(ActiveState), C(SubState), C(MainPID),
      C(UnitFileState), C(ExecMainStatus)) where systemd runs; V(null) otherwise.
  returned: always
  type: dict
server_systemd:
  description: The same for O(server_unit).
  returned: always
  type: dict
seconds:
  description: Wall time of the run.
  returned: always
  type: float
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pandorafms.server.plugins.module_utils._errors import PandoraError
from ansible_collections.pandorafms.server.plugins.module_utils._service import (
    MANAGERS, STATES, ServiceController, ServiceSettings)

SETTINGS = ("server_conf", "init_script", "server_daemon", "ha_daemon", "ha_pid_file", "server_pid_file",
            "manager", "manage_ha", "server_unit", "ha_unit", "timeout")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", required=True, choices=list(STATES)),
            server_conf=dict(type="path", default="/etc/pandora/pandora_server.conf"),
            init_script=dict(type="path", default="/etc/init.d/pandora_server"),
            server_daemon=dict(type="path", default="/usr/bin/pandora_server"),
            ha_daemon=dict(type="path", default="/usr/bin/pandora_ha"),
            ha_pid_file=dict(type="path", default="/var/run/pandora_ha.pid"),
            server_pid_file=dict(type="path"),
            manager=dict(type="str", choices=list(MANAGERS), default="auto"),
            manage_ha=dict(type="bool"),
            server_unit=dict(type="str", default="pandora_server"),
            ha_unit=dict(type="str", default="pandora_ha"),
            timeout=dict(type="int", default=90),
        ),
        supports_check_mode=True,
    )
    if module.params["timeout"] < 0:
        module.fail_json(msg="timeout must be 0 or more seconds, not %d" % module.params["timeout"])
    try:
        settings = ServiceSettings(**dict((k, module.params[k]) for k in SETTINGS))
        result = ServiceController(settings).control(module.params["state"], check_mode=module.check_mode)
    except PandoraError as exc:
        module.fail_json(msg=str(exc), **dict((k, v) for k, v in exc.details.items() if k in ("status", "commands")))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
