"""A small stand-in Pandora FMS installation in a directory, for fast tests of _service and _watchdog.

Real processes, not mocks: ``bin/pandora_server`` is a Python daemon that forks
once into the background and calls setsid (like ``pandora_server -D``) and runs with the
configuration file on its command line, so ``/proc`` shows
``python3 <dir>/bin/pandora_server <dir>/pandora_server.conf -D`` the way it
shows ``perl /usr/bin/pandora_server /etc/pandora/pandora_server.conf -D``.
``bin/pandora_ha`` writes its pid file (``-p``), starts the server when it is
down at start and stops it on SIGTERM, like the real one's first cycle and
its signal handler.  ``init.d/pandora_server`` has the verbs of the 776 init
script.  The molecule scenario ``watchdog`` runs the real daemon; these are for
the second-scale tests.

``mode`` (a file) steers the server: ``ok``, ``fail`` (exits before it
backgrounds) or ``die:<seconds>`` (dies that long after each start).
"""

import os
import signal
import stat
import sys
import time

SERVER = r'''#!%(python)s
import os, signal, sys, time
conf = sys.argv[1]
base = os.path.dirname(os.path.dirname(os.path.abspath(sys.argv[0])))
mode = open(os.path.join(base, "mode")).read().strip()
pid_file = sys.argv[sys.argv.index("-P") + 1] if "-P" in sys.argv else None
with open(os.path.join(base, "server.log"), "a") as log:
    log.write("start mode=%%s\n" %% mode)
if mode == "fail":
    with open(os.path.join(base, "server.log"), "a") as log:
        log.write("[E] cannot connect to the database\n")
    sys.exit(1)
# Like pandora_daemonize: one fork, then setsid (the daemon leads its session).
if os.fork():
    os._exit(0)
os.setsid()
fd = os.open(os.devnull, os.O_RDWR)
for target in (0, 1, 2):
    os.dup2(fd, target)
if pid_file:
    open(pid_file, "w").write("%%d\n" %% os.getpid())
def bye(*a):
    with open(os.path.join(base, "server.log"), "a") as log:
        log.write("Shutdown by signal\n")
    if pid_file and os.path.exists(pid_file):
        os.unlink(pid_file)
    os._exit(0)
signal.signal(signal.SIGTERM, bye)
limit = float(mode.split(":")[1]) if mode.startswith("die:") else None
started = time.time()
while limit is None or time.time() - started < limit:
    time.sleep(0.05)
with open(os.path.join(base, "server.log"), "a") as log:
    log.write("died\n")
os._exit(3)
'''

HA = r'''#!%(python)s
import os, signal, subprocess, sys, time
args = sys.argv[1:]
pid_file = args[args.index("-p") + 1]
init = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(sys.argv[0]))), "init.d", "pandora_server")
if os.fork():
    os._exit(0)
os.setsid()
fd = os.open(os.devnull, os.O_RDWR)
for target in (0, 1, 2):
    os.dup2(fd, target)
open(pid_file, "w").write("%%d\n" %% os.getpid())
def bye(*a):
    subprocess.call([init, "stop-server"])
    os.unlink(pid_file)
    os._exit(0)
signal.signal(signal.SIGTERM, bye)
subprocess.call([init, "start-server"])
while True:
    time.sleep(0.05)
'''

INIT = r'''#!/bin/bash
# Stand-in for /etc/init.d/pandora_server (776 verbs); pids from the pid files the stand-ins write.
BASE=%(base)s
CONF=$BASE/pandora_server.conf
SERVER_PID=$BASE/run/server.pid
HA_PID=$BASE/run/ha.pid
echo "$1" >> $BASE/init.calls
alive() { [ -n "$1" ] && [ -d /proc/$1 ] && ! grep -q '^[^)]*) [ZX]' /proc/$1/stat 2>/dev/null; }
pid_of() { [ -f "$1" ] && cat "$1"; }
stop_pid() {
  kill "$1" 2>/dev/null
  for i in $(seq 100); do alive "$1" || return 0; sleep 0.05; done
  kill -9 "$1" 2>/dev/null
}
case "$1" in
  start)
    p=$(pid_of $HA_PID); if alive "$p"; then echo "running $p"; exit 0; fi
    $BASE/bin/pandora_ha -d -p $HA_PID $CONF ;;
  stop)
    p=$(pid_of $HA_PID); if alive "$p"; then stop_pid "$p"; else echo "HA is not running"; fi ;;
  restart) "$0" stop; "$0" start ;;
  start-server)
    p=$(pid_of $SERVER_PID); if alive "$p"; then echo "running $p"; exit 0; fi
    $BASE/bin/pandora_server $CONF -D -P $SERVER_PID
    sleep 0.2
    p=$(pid_of $SERVER_PID); alive "$p" || { echo "Cannot start"; exit 7; } ;;
  stop-server)
    p=$(pid_of $SERVER_PID); if alive "$p"; then stop_pid "$p"; else echo "not running"; fi ;;
  restart-server) "$0" stop-server; "$0" start-server ;;
  *) echo "Usage"; exit 1 ;;
esac
exit 0
'''


class FakePandora(object):
    def __init__(self, base):
        self.base = str(base)
        for sub in ("bin", "init.d", "run"):
            os.makedirs(os.path.join(self.base, sub), exist_ok=True)
        self.conf = os.path.join(self.base, "pandora_server.conf")
        self.server = os.path.join(self.base, "bin", "pandora_server")
        self.ha = os.path.join(self.base, "bin", "pandora_ha")
        self.init = os.path.join(self.base, "init.d", "pandora_server")
        self.ha_pid_file = os.path.join(self.base, "run", "ha.pid")
        self.server_pid_file = os.path.join(self.base, "run", "server.pid")
        self.log = os.path.join(self.base, "server.log")
        with open(self.conf, "w") as handle:
            handle.write("servername fake\nlog_file %s\n" % self.log)
        values = {"python": sys.executable, "base": self.base}
        for path, text in ((self.server, SERVER), (self.ha, HA), (self.init, INIT)):
            with open(path, "w") as handle:
                handle.write(text % values)
            os.chmod(path, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP)
        self.set_mode("ok")

    def set_mode(self, mode):
        with open(os.path.join(self.base, "mode"), "w") as handle:
            handle.write(mode + "\n")

    def service_settings(self, **extra):
        from ansible_collections.pandorafms.server.plugins.module_utils._service import ServiceSettings
        values = dict(server_conf=self.conf, init_script=self.init, server_daemon=self.server, ha_daemon=self.ha,
                      ha_pid_file=self.ha_pid_file, manager="init", timeout=10, poll=0.05, settle=0.3)
        values.update(extra)
        return ServiceSettings(**values)

    def module_params(self, **extra):
        values = dict(server_conf=self.conf, init_script=self.init, server_daemon=self.server, ha_daemon=self.ha,
                      ha_pid_file=self.ha_pid_file, manager="init", timeout=10)
        values.update(extra)
        return values

    def calls(self):
        try:
            with open(os.path.join(self.base, "init.calls")) as handle:
                return handle.read().split()
        except IOError:
            return []

    def pids(self, program):
        """Live pids whose argv runs ``program`` (for cleanup)."""
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                argv = open("/proc/%s/cmdline" % name, "rb").read().split(b"\0")
                state = open("/proc/%s/stat" % name).read().rsplit(")", 1)[1].split()[0]
            except (IOError, OSError, IndexError):
                continue
            if state not in "ZX" and program.encode() in argv[:2]:
                found.append(int(name))
        return found

    def kill_all(self):
        """Stop every stand-in process this installation started (by pid)."""
        for program in (self.ha, self.server):
            for pid in self.pids(program):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        deadline = time.time() + 5
        while time.time() < deadline and (self.pids(self.ha) or self.pids(self.server)):
            time.sleep(0.05)
