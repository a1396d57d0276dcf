# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The watchdog of a Pandora FMS server: what upstream's pandora_watchdog.sh meant to be.

Every ``interval`` seconds it reads the server's state from its pid file and
``/proc`` (``_service.find_process``).  When the server is down it:

1. restarts it with the service control of ``_service.py`` (``restart_state``,
   by default ``started``: pandora_ha when that is down, else the server), which
   waits until ``/proc`` shows the server, for at most ``restart_timeout`` s
   (no blind 90 s sleep);
2. when the server is still down, runs the alert command with the context
   (host, what failed, when, the failure count, the server log's last lines) as
   arguments and as ``PANDORA_WATCHDOG_*`` environment variables, and enters
   standby: no more restarts, a new alert every ``realert_interval`` s while
   the server stays down, standby left as soon as the server runs again;
3. flap protection: at most ``max_restarts`` restarts within ``window``
   seconds.  A server that dies right after each start is alerted on
   (reason ``flapping``) and left alone, not restarted forever.  Someone
   starting the server again ends the standby and gives a new budget.

The failure count is the number of times the server was found down since it
last ran for a whole ``window`` without dying.

Plain Python: no Ansible import.  The role pandorafms.server.watchdog runs it
through its ``pandora-watchdog`` command.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import socket
import subprocess
import time

from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConfigError, PandoraError
from ansible_collections.pandorafms.server.plugins.module_utils._service import (
    STATES, ServiceController, ServiceSettings, server_log_files, tail_lines)

RESTART_STATES = ("started", "restarted", "start-server", "restart-server")
ENV_PREFIX = "PANDORA_WATCHDOG_"
ALERT_OUTPUT_LIMIT = 2000


class WatchdogSettings(object):
    """The watchdog's knobs (the role's ``watchdog_*`` variables)."""

    def __init__(self, interval=7, restart_state="started", restart_timeout=90, max_restarts=3, window=600,
                 realert_interval=3600, alert_command="/usr/bin/pandora_alert", alert_timeout=60,
                 log_lines=20, server_log=None, hostname=None, service=None):
        self.interval = interval
        self.restart_state = restart_state
        self.restart_timeout = restart_timeout
        self.max_restarts = max_restarts
        self.window = window
        self.realert_interval = realert_interval
        self.alert_command = alert_command
        self.alert_timeout = alert_timeout
        self.log_lines = log_lines
        self.server_log = server_log
        self.hostname = hostname
        self.service = service if service is not None else ServiceSettings()
        self.check()

    def check(self):
        if self.restart_state not in RESTART_STATES:
            raise ConfigError("restart_state must be one of %s, not %r"
                              % (", ".join(RESTART_STATES), self.restart_state))
        for name in ("interval", "restart_timeout", "window", "realert_interval", "alert_timeout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ConfigError("%s must be a number of seconds above 0, not %r" % (name, value))
        if not isinstance(self.max_restarts, int) or isinstance(self.max_restarts, bool) or self.max_restarts < 0:
            raise ConfigError("max_restarts must be 0 or more, not %r" % (self.max_restarts,))
        if self.alert_command and not os.path.isabs(self.alert_command):
            raise ConfigError("alert_command must be an absolute path, not %r" % (self.alert_command,))

    @classmethod
    def from_dict(cls, values):
        values = dict(values)
        service = ServiceSettings.from_dict(values.pop("service", None) or {})
        known = set(cls.__init__.__code__.co_varnames[1:cls.__init__.__code__.co_argcount])
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError("unknown watchdog setting(s): %s" % ", ".join(unknown))
        values["service"] = service
        return cls(**dict((k, v) for k, v in values.items() if v is not None))


class Watchdog(object):
    """One watchdog.  ``tick()`` does one check; ``run()`` loops until ``stop()``."""

    def __init__(self, settings, log=None, controller=None, clock=None, sleep=None):
        self.s = settings
        self.log = log or (lambda msg: None)
        self.clock = clock or time.time
        self.sleep = sleep or time.sleep
        if controller is None:
            service = settings.service
            service.timeout = settings.restart_timeout
            controller = ServiceController(service)
        self.controller = controller
        self.host = settings.hostname or socket.getfqdn()
        self.standby = False
        self.standby_reason = None
        self.failures = 0
        self.alerts = 0
        self.last_alert = None
        self.last_failure = None
        self.restarts = []
        self.running = True
        self.recovering = None
        self.events = []

    def stop(self, *dummy):
        self.running = False

    def _event(self, kind, **details):
        details["event"] = kind
        details["time"] = self.clock()
        self.events.append(details)
        return details

    def tick(self):
        """One check; returns the event: ok, starting, recovered, restarted, restart_failed, flapping, standby,
        realert."""
        now = self.clock()
        server = self.controller.server_state()
        if server["running"] and not server["daemonized"]:
            # A server in its foreground phase (someone is starting it): neither down nor up yet.
            return "starting"
        if server["running"] and self.standby and self.recovering != server["pid"]:
            # Leave standby only for a server seen on two checks in a row with the same pid:
            # a daemon that cannot connect to its database forks and then dies.
            self.recovering = server["pid"]
            return "standby"
        if server["running"]:
            if self.failures and self.last_failure is not None and now - self.last_failure >= self.s.window:
                self.log("the server ran for %d s without failing; failure count reset" % self.s.window)
                self.failures = 0
            if self.standby:
                self.log("the server runs again (pid %s); leaving standby with a new restart budget"
                         % server["pid"])
                self.restarts = []
                self.standby = False
                self.standby_reason = None
                self.alerts = 0
                return self._event("recovered", pid=server["pid"])["event"]
            return "ok"
        if self.standby:
            self.recovering = None
            if now - self.last_alert >= self.s.realert_interval:
                self._alert(self.standby_reason, "the server is still down (%d s since the last alert)"
                            % (now - self.last_alert))
                return self._event("realert")["event"]
            return "standby"
        self.failures += 1
        self.last_failure = now
        self.restarts = [t for t in self.restarts if now - t < self.s.window]
        if len(self.restarts) >= self.s.max_restarts:
            self._enter_standby("flapping", "the server died again after %d restart(s) within %d s; not restarting "
                                "it any more until it runs again" % (len(self.restarts), self.s.window))
            return self._event("flapping", restarts=len(self.restarts))["event"]
        self.restarts.append(now)
        self.log("the server is not running (failure %d); restarting it (state=%s)"
                 % (self.failures, self.s.restart_state))
        detail = None
        try:
            result = self.controller.control(self.s.restart_state)
            pid = result["after"]["server"]["pid"]
        except PandoraError as exc:
            detail = str(exc)
        if detail is None:
            self.log("the server runs again, pid %s" % pid)
            return self._event("restarted", pid=pid)["event"]
        self._enter_standby("restart_failed", "the restart did not bring the server back: %s" % detail)
        return self._event("restart_failed")["event"]

    def _enter_standby(self, reason, message):
        self.log("ALERT %s: %s" % (reason, message))
        self._alert(reason, message)
        self.standby = True
        self.standby_reason = reason
        self.log("standby: no restart until the server runs again; next alert in %d s" % self.s.realert_interval)

    def context(self, reason, message):
        log_file = self.s.server_log or server_log_files(self.s.service.server_conf)[0]
        tail = "\n".join(tail_lines(log_file, self.s.log_lines))
        now = self.clock()
        return {
            "HOST": self.host,
            "REASON": reason,
            "MESSAGE": message,
            "TIME": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)),
            "EPOCH": str(int(now)),
            "FAILURES": str(self.failures),
            "ALERTS": str(self.alerts),
            "RESTARTS": str(len(self.restarts)),
            "SERVER_CONF": self.s.service.server_conf,
            "LOG_FILE": log_file,
            "LOG_TAIL": tail,
        }

    def _alert(self, reason, message):
        self.alerts += 1
        self.last_alert = self.clock()
        if not self.s.alert_command:
            self.log("no alert command configured")
            return None
        ctx = self.context(reason, message)
        argv = [self.s.alert_command, ctx["HOST"], reason, ctx["TIME"], ctx["FAILURES"], message, ctx["LOG_TAIL"]]
        env = dict(os.environ)
        env.update((ENV_PREFIX + key, value) for key, value in ctx.items())
        try:
            with open(os.devnull, "rb") as devnull:
                proc = subprocess.run(argv, stdin=devnull, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      env=env, timeout=self.s.alert_timeout, check=False)
        except subprocess.TimeoutExpired:
            self.log("the alert command %s did not finish within %d s" % (argv[0], self.s.alert_timeout))
            return None
        except OSError as exc:
            self.log("cannot run the alert command %s: %s" % (argv[0], exc.strerror or exc))
            return None
        output = proc.stdout.decode("utf-8", "replace").strip()[-ALERT_OUTPUT_LIMIT:]
        shown = (", output: " + output) if output else ""
        self.log("alert %d (%s) sent with %s: rc %d%s" % (self.alerts, reason, argv[0], proc.returncode, shown))
        self._event("alert", reason=reason, rc=proc.returncode)
        return proc.returncode

    def run(self, max_ticks=None):
        ticks = 0
        self.log("watching %s (%s) every %s s; restarts: %d per %d s; alert: %s"
                 % (self.s.service.server_daemon, self.s.service.server_conf, self.s.interval,
                    self.s.max_restarts, self.s.window, self.s.alert_command or "none"))
        while self.running:
            try:
                self.tick()
            except PandoraError as exc:
                self.log("check failed: %s" % exc)
            ticks += 1
            if max_ticks is not None and ticks >= max_ticks:
                break
            deadline = self.clock() + self.s.interval
            while self.running and self.clock() < deadline:
                self.sleep(min(0.5, max(0.0, deadline - self.clock())))
        self.log("watchdog stopped")


__all__ = ["Watchdog", "WatchdogSettings", "RESTART_STATES", "STATES"]
