# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Service control of a Pandora FMS server: the daemon and ``pandora_ha``.

The real process state comes from pid files and ``/proc`` only, never from the
output of the init script or of ``ps | grep`` (which matches unrelated
processes, and counts zombies as alive):

* a process is *alive* when ``/proc/<pid>/stat`` exists and its state is not
  ``Z`` (zombie) or ``X`` (dead);
* it *is* the daemon when its argv names the program (``argv[0]``, or
  ``argv[1]`` behind an interpreter such as ``perl``) and the configuration
  file as whole arguments;
* a pid file is trusted only when the process it names passes both tests;
  otherwise it is reported as stale and ``/proc`` is scanned.

Verbs are the init script's (``start``, ``stop``, ``restart`` manage
``pandora_ha``, which starts and stops the server; ``start-server``,
``stop-server``, ``restart-server`` the server alone) or systemd's units
where systemd runs.  Each run plans the commands from the state it reads,
runs them (not in check mode), and waits until ``/proc`` shows the goal.

Plain Python: no Ansible import.  Used by the ``pandora_service`` module and
by the watchdog (``_watchdog.py``).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import subprocess
import tempfile
import time

from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConfigError, OperationFailed
from ansible_collections.pandorafms.server.plugins.module_utils._serverconf import parse_server_conf_text

STATES = ("started", "stopped", "restarted", "start-server", "stop-server", "restart-server")
MANAGERS = ("auto", "init", "systemd")
DEAD_STATES = ("Z", "X", "x")
OUTPUT_LIMIT = 4000


class ServiceSettings(object):
    """Where the Pandora FMS server and its HA watchdog live on this host."""

    def __init__(self, server_conf="/etc/pandora/pandora_server.conf", init_script="/etc/init.d/pandora_server",
                 server_daemon="/usr/bin/pandora_server", ha_daemon="/usr/bin/pandora_ha",
                 ha_pid_file="/var/run/pandora_ha.pid", server_pid_file=None, manager="auto",
                 manage_ha="auto", server_unit="pandora_server", ha_unit="pandora_ha", timeout=90,
                 command_timeout=300, proc_root="/proc", systemctl="systemctl",
                 systemd_run_dir="/run/systemd/system", poll=0.25, settle=1.0):
        self.server_conf = server_conf
        self.init_script = init_script
        self.server_daemon = server_daemon
        self.ha_daemon = ha_daemon
        self.ha_pid_file = ha_pid_file
        self.server_pid_file = server_pid_file
        self.manager = manager
        self.manage_ha = manage_ha
        self.server_unit = server_unit
        self.ha_unit = ha_unit
        self.timeout = timeout
        self.command_timeout = command_timeout
        self.proc_root = proc_root
        self.systemctl = systemctl
        self.systemd_run_dir = systemd_run_dir
        self.poll = poll
        self.settle = settle

    @classmethod
    def from_dict(cls, values):
        known = cls().__dict__
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError("unknown service setting(s): %s" % ", ".join(unknown))
        return cls(**dict((k, v) for k, v in values.items() if v is not None))


# --------------------------------------------------------------------------- /proc and pid files

def read_pid_file(path):
    """The pid a pid file names, or None (missing, empty, unreadable or not a number)."""
    if not path:
        return None
    try:
        with open(path) as handle:
            text = handle.read(64).strip()
    except (IOError, OSError):
        return None
    try:
        pid = int(text.split()[0]) if text else 0
    except ValueError:
        return None
    return pid if pid > 0 else None


def process_info(pid, proc_root="/proc"):
    """``{pid, state, ppid, starttime, argv}`` from /proc, or None when there is no such process."""
    base = os.path.join(proc_root, str(pid))
    try:
        with open(os.path.join(base, "stat"), "rb") as handle:
            stat = handle.read().decode("utf-8", "replace")
        with open(os.path.join(base, "cmdline"), "rb") as handle:
            raw = handle.read()
    except (IOError, OSError):
        return None
    # The command name is in parentheses and may itself hold spaces or parentheses.
    fields = stat[stat.rindex(")") + 2:].split()
    argv = [part.decode("utf-8", "surrogateescape") for part in raw.split(b"\0")]
    while argv and argv[-1] == "":
        argv.pop()
    return {"pid": int(pid), "state": fields[0], "ppid": int(fields[1]), "session": int(fields[3]),
            "starttime": int(fields[19]), "argv": argv}


def is_alive(info):
    return info is not None and info["state"] not in DEAD_STATES


def argv_matches(argv, program, conf):
    """Whether argv is ``program ... conf``, run directly or through an interpreter."""
    if not argv or not program:
        return False
    head = argv[:2]
    if program not in head:
        return False
    if conf is None:
        return True
    return conf in argv[head.index(program) + 1:]


def scan_proc(program, conf, proc_root="/proc"):
    """Every live process whose argv is the program with that configuration, oldest first."""
    found = []
    try:
        names = os.listdir(proc_root)
    except OSError as exc:
        raise OperationFailed("cannot read %s: %s" % (proc_root, exc))
    for name in names:
        if not name.isdigit():
            continue
        info = process_info(name, proc_root)
        if is_alive(info) and argv_matches(info["argv"], program, conf):
            found.append(info)
    found.sort(key=lambda i: (i["starttime"], i["pid"]))
    return found


def find_process(program, conf, pid_file=None, proc_root="/proc"):
    """The state of one daemon: running or not, its pid, and how it was found.

    Returns ``{running, pid, pids, source, pid_file, stale_pid_file, daemonized}``;
    ``source`` is ``pid_file`` or ``proc``.  ``pid`` is the main process: the
    oldest match that leads its own session (a daemon after ``setsid``), else
    the oldest whose parent is not itself a match.  ``daemonized`` says whether
    it leads its session: while ``pandora_server -D`` connects to the database
    and loads its configuration, the foreground process that will fork the
    daemon already has the daemon's argv, and it is not a session leader.
    """
    state = {"running": False, "pid": None, "pids": [], "source": None, "pid_file": pid_file,
             "stale_pid_file": False, "daemonized": False}
    named = read_pid_file(pid_file)
    if named is not None:
        info = process_info(named, proc_root)
        if is_alive(info) and argv_matches(info["argv"], program, conf):
            state.update(running=True, pid=named, pids=[named], source="pid_file",
                         daemonized=_daemonized(info, proc_root))
            return state
        state["stale_pid_file"] = True
    matches = scan_proc(program, conf, proc_root)
    if matches:
        pids = [m["pid"] for m in matches]
        leaders = [m["pid"] for m in matches if _daemonized(m, proc_root)]
        main = leaders or [m["pid"] for m in matches if m["ppid"] not in pids] or pids
        state.update(running=True, pid=main[0], pids=pids, source="proc", daemonized=bool(leaders))
    return state


def _daemonized(info, proc_root):
    """Whether a process leads its own session.

    Both Pandora daemons fork once and call ``setsid`` (``pandora_daemonize``,
    ``ha_daemonize``), so the daemon leads its session; the foreground process
    that forks it does not, and neither does a child the daemon forked that
    outlived it (same argv, reparented) - neither is "the server".
    """
    return info["session"] == info["pid"]


def tail_lines(path, lines=20, limit=65536):
    """The last ``lines`` lines of a text file (at most ``limit`` bytes read), or [] when unreadable."""
    if not path or lines <= 0:
        return []
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            data = handle.read()
    except (IOError, OSError):
        return []
    text = data.decode("utf-8", "replace").splitlines()
    if size > limit and text:
        text = text[1:]  # a partial first line
    return text[-lines:]


def server_log_files(server_conf):
    """``(log_file, errorlog_file)`` named by pandora_server.conf (upstream's defaults otherwise)."""
    values = {}
    try:
        with open(server_conf) as handle:
            values = parse_server_conf_text(handle.read())
    except (IOError, OSError, UnicodeDecodeError):
        values = {}
    return (values.get("log_file") or "/var/log/pandora/pandora_server.log",
            values.get("errorlog_file") or "/var/log/pandora/pandora_server.error")


# --------------------------------------------------------------------------- commands

def run_command(argv, timeout):
    """Run argv (no shell), stdin from /dev/null, output through temporary files.

    Files, not pipes: the init script starts daemons that may keep an inherited
    pipe open for their whole life, which would make a pipe reader wait forever.
    Returns ``(rc, stdout, stderr)``.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        with open(os.devnull, "rb") as devnull:
            try:
                proc = subprocess.Popen(argv, stdin=devnull, stdout=out, stderr=err, close_fds=True)
            except OSError as exc:
                raise OperationFailed("cannot run %s: %s" % (argv[0], exc.strerror or exc))
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise OperationFailed("%s did not finish within %d s" % (" ".join(argv), timeout))
        out.seek(0)
        err.seek(0)
        return (rc, out.read()[-OUTPUT_LIMIT:].decode("utf-8", "replace"),
                err.read()[-OUTPUT_LIMIT:].decode("utf-8", "replace"))


# --------------------------------------------------------------------------- the controller

class ServiceController(object):
    """Reads the state of the server and pandora_ha and drives them to a goal."""

    def __init__(self, settings, runner=None, clock=None, sleep=None):
        self.s = settings
        self.runner = runner or run_command
        self.clock = clock or time.time
        self.sleep = sleep or time.sleep
        if settings.manager not in MANAGERS:
            raise ConfigError("manager must be one of %s, not %r" % (", ".join(MANAGERS), settings.manager))
        self.manager = self._detect_manager()
        self.ha_managed = self._ha_managed()

    # --- configuration
    def _detect_manager(self):
        if self.s.manager != "auto":
            return self.s.manager
        if self.s.systemd_run_dir and os.path.isdir(self.s.systemd_run_dir):
            return "systemd"
        return "init"

    def _ha_managed(self):
        value = self.s.manage_ha
        if value is None:
            value = "auto"
        if value in (True, "true", "yes"):
            return True
        if value in (False, "false", "no"):
            return False
        if value != "auto":
            raise ConfigError("manage_ha must be auto, true or false, not %r" % (value,))
        return bool(self.s.ha_daemon) and os.path.exists(self.s.ha_daemon)

    def validate(self):
        """Fail, in check mode too, on what would make any verb fail."""
        if not os.path.isfile(self.s.server_daemon):
            raise ConfigError("the Pandora FMS server program %s does not exist; install the server or set "
                              "server_daemon to where it is" % self.s.server_daemon)
        if not os.path.isfile(self.s.server_conf):
            raise ConfigError("the server configuration %s does not exist; set server_conf" % self.s.server_conf)
        if self.manager == "init":
            if not os.path.isfile(self.s.init_script) or not os.access(self.s.init_script, os.X_OK):
                raise ConfigError("the init script %s does not exist or is not executable; set init_script, or "
                                  "manager=systemd on a host that runs systemd" % self.s.init_script)
        if not os.path.isdir(self.s.proc_root):
            raise ConfigError("%s is not mounted; the process state cannot be read" % self.s.proc_root)

    # --- state
    def server_state(self):
        return find_process(self.s.server_daemon, self.s.server_conf, self.s.server_pid_file, self.s.proc_root)

    def ha_state(self):
        if not self.ha_managed:
            return {"running": False, "pid": None, "pids": [], "source": None, "pid_file": self.s.ha_pid_file,
                    "stale_pid_file": False, "daemonized": False, "managed": False}
        state = find_process(self.s.ha_daemon, self.s.server_conf, self.s.ha_pid_file, self.s.proc_root)
        state["managed"] = True
        return state

    def status(self):
        return {"server": self.server_state(), "ha": self.ha_state()}

    def systemd_status(self, unit):
        """``systemctl show`` of a unit, or None where systemd does not run."""
        if self.manager != "systemd" or not unit:
            return None
        props = "LoadState,ActiveState,SubState,MainPID,UnitFileState,ExecMainStatus"
        rc, out, err = self.runner([self.s.systemctl, "show", "--property=" + props, unit], self.s.command_timeout)
        if rc != 0:
            return {"unit": unit, "error": (err or out).strip()}
        status = {"unit": unit}
        for line in out.splitlines():
            if "=" in line:
                key, value = line.split("=", 1)
                status[key] = value
        return status

    # --- commands
    def _verb(self, verb):
        if self.manager == "systemd":
            action, unit = {
                "start": ("start", self.s.ha_unit), "stop": ("stop", self.s.ha_unit),
                "restart": ("restart", self.s.ha_unit), "start-server": ("start", self.s.server_unit),
                "stop-server": ("stop", self.s.server_unit), "restart-server": ("restart", self.s.server_unit),
            }[verb]
            return [self.s.systemctl, action, unit]
        return [self.s.init_script, verb]

    def _whole(self, verb):
        """The verb for the whole service: pandora_ha's when it is managed, else the server's."""
        return verb if self.ha_managed else verb + "-server"

    def plan(self, state, before):
        """The verbs that take ``before`` to ``state`` (the first step; see ``_converge``)."""
        server, ha = before["server"], before["ha"]
        if state == "started":
            if self.ha_managed and not ha["running"]:
                return ["start"]
            return [] if server["running"] else ["start-server"]
        if state == "stopped":
            verbs = []
            if self.ha_managed and ha["running"]:
                verbs.append("stop")
            elif server["running"]:
                verbs.append("stop-server")
            return verbs
        if state == "restarted":
            if self.ha_managed and not ha["running"]:
                # pandora_ha's restart would find a server it did not start and leave it alone.
                return (["stop-server"] if server["running"] else []) + ["start"]
            return [self._whole("restart")]
        if state == "start-server":
            return [] if server["running"] else ["start-server"]
        if state == "stop-server":
            return ["stop-server"] if server["running"] else []
        if state == "restart-server":
            return ["restart-server"]
        raise ConfigError("state must be one of %s, not %r" % (", ".join(STATES), state))

    def _goal(self, state, before):
        """A predicate on a status dict, and a description of it."""
        old = set(before["server"]["pids"])
        need_ha = self.ha_managed and state in ("started", "restarted")

        def up(st):
            # A started daemon has forked into its own session; a process still in the
            # foreground (connecting to the database) is not started yet.
            return (st["server"]["running"] and st["server"]["daemonized"]
                    and (not need_ha or (st["ha"]["running"] and st["ha"]["daemonized"])))

        if state in ("started", "start-server"):
            return up, "the server running" + (" with pandora_ha" if need_ha else "")
        if state in ("restarted", "restart-server"):
            return (lambda st: up(st) and not old.intersection(st["server"]["pids"]),
                    "the server running with a new pid" + (" under pandora_ha" if need_ha else ""))
        if state == "stopped":
            return (lambda st: not st["server"]["running"] and not st["ha"]["running"],
                    "the server and pandora_ha stopped")
        return (lambda st: not st["server"]["running"]), "the server stopped"

    def wait_for(self, goal, timeout, give_up=None):
        """Poll /proc until the goal holds, with the same pids, for ``settle`` seconds (or the timeout).

        The settle time skips the transient processes of a start: the foreground
        process that forks the daemon has the daemon's argv for a moment, and a
        daemon that dies right after it forked is not "started".
        """
        deadline = self.clock() + timeout
        status = self.status()
        since = self.clock() if goal(status) else None
        hopeless = None
        while self.clock() < deadline or (since is not None and self.clock() < deadline + self.s.settle):
            if since is not None and self.clock() - since >= self.s.settle:
                return status, True
            if give_up is not None and give_up(status):
                hopeless = hopeless if hopeless is not None else self.clock()
                if self.clock() - hopeless >= 2 * self.s.settle + 1:
                    break
            else:
                hopeless = None
            self.sleep(self.s.poll)
            current = self.status()
            if not goal(current):
                since = None
            elif since is None or _pids(current) != _pids(status):
                since = self.clock()
            status = current
        return status, goal(status) and since is not None and self.clock() - since >= self.s.settle

    def run_verb(self, verb):
        argv = self._verb(verb)
        started = self.clock()
        rc, out, err = self.runner(argv, self.s.command_timeout)
        return {"verb": verb, "argv": argv, "rc": rc, "stdout": out.strip(), "stderr": err.strip(),
                "seconds": round(self.clock() - started, 3)}

    def control(self, state, check_mode=False):
        """Drive the service to ``state``; returns the result dict the module returns."""
        if state not in STATES:
            raise ConfigError("state must be one of %s, not %r" % (", ".join(STATES), state))
        self.validate()
        started = self.clock()
        before = self.status()
        verbs = self.plan(state, before)
        result = {"state": state, "manager": self.manager, "ha_managed": self.ha_managed, "before": before,
                  "changed": bool(verbs), "commands": []}
        if check_mode:
            result["commands"] = [{"verb": v, "argv": self._verb(v), "rc": None} for v in verbs]
            result["after"] = self._predict(state, before)
        else:
            result["after"] = self._converge(state, before, verbs, result["commands"])
        result["server_pid_changed"] = (before["server"]["pid"] != result["after"]["server"]["pid"])
        result["ha_systemd"] = self.systemd_status(self.s.ha_unit) if self.ha_managed else None
        result["server_systemd"] = self.systemd_status(self.s.server_unit)
        result["seconds"] = round(self.clock() - started, 3)
        return result

    def _converge(self, state, before, verbs, commands):
        goal, wanted = self._goal(state, before)
        for verb in verbs:
            commands.append(self.run_verb(verb))
        if not verbs:
            return before

        def give_up(st):
            # The start command failed and no process of the server exists at all (not even one
            # still in its foreground phase): waiting longer cannot help.
            failed = any(c["rc"] != 0 for c in commands if c["verb"] in ("start", "start-server", "restart",
                                                                         "restart-server"))
            return failed and state != "stopped" and state != "stop-server" and not st["server"]["pids"]

        status, reached = self.wait_for(goal, self.s.timeout, give_up)
        # pandora_ha stops the server when it stops; a server it did not start may still run.
        if not reached and state == "stopped" and status["server"]["running"]:
            commands.append(self.run_verb("stop-server"))
            status, reached = self.wait_for(goal, self.s.timeout)
        # pandora_ha already up (or just started) but the server still down: start the server.
        if not reached and state == "started" and not status["server"]["running"] and status["ha"]["running"] \
                and "start-server" not in [c["verb"] for c in commands]:
            commands.append(self.run_verb("start-server"))
            status, reached = self.wait_for(goal, self.s.timeout, give_up)
        if not reached:
            raise OperationFailed(self._failure_message(state, wanted, status, commands),
                                  status=status, commands=commands)
        return status

    def _predict(self, state, before):
        server = dict(before["server"])
        ha = dict(before["ha"])
        if state in ("started", "restarted", "start-server", "restart-server"):
            server["running"] = True
            if state in ("restarted", "restart-server"):
                server.update(pid=None, pids=[], source=None)
            if self.ha_managed and state in ("started", "restarted"):
                ha["running"] = True
                if state == "restarted":
                    ha.update(pid=None, pids=[], source=None)
        else:
            server.update(running=False, pid=None, pids=[], source=None)
            if state == "stopped":
                ha.update(running=False, pid=None, pids=[], source=None)
        server["predicted"] = ha["predicted"] = True
        return {"server": server, "ha": ha}

    def _failure_message(self, state, wanted, status, commands):
        ran = "; ".join("%s -> rc %s%s" % (" ".join(c["argv"]), c["rc"],
                                           (": " + (c["stdout"] or c["stderr"]).splitlines()[-1])
                                           if (c["stdout"] or c["stderr"]) else "") for c in commands)
        log_file, error_file = server_log_files(self.s.server_conf)
        tail = tail_lines(error_file, 3) or tail_lines(log_file, 3)
        msg = ("state=%s: %s was not reached within %s s (server %s, pandora_ha %s). Commands: %s."
               % (state, wanted, self.s.timeout, _describe(status["server"]),
                  _describe(status["ha"]) if self.ha_managed else "not managed", ran or "none"))
        if tail:
            msg += " Last lines of %s: %s" % (error_file if tail_lines(error_file, 1) else log_file, " | ".join(tail))
        return msg


def _pids(status):
    return (status["server"]["pid"], status["ha"]["pid"])


def _describe(proc_state):
    if proc_state["running"]:
        return "running, pid %s" % proc_state["pid"]
    return "not running"
