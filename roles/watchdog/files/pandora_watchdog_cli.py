# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pandora-watchdog: keeps a Pandora FMS server running, alerts when it cannot.

Installed by the pandorafms.server.watchdog role (as ``watchdog_cli_path``, with
a ``#!`` line naming ``watchdog_python``).  The logic is the collection's
engine (``_watchdog.py`` over ``_service.py``, copied under the library
directory named in the options file); this file only runs it as a process.

Usage: pandora-watchdog [--config FILE] COMMAND

  run       watch in the foreground (what the systemd unit runs)
  start     start a background watchdog unless one runs; clears "stopped on purpose"
  ensure    start one unless one runs or it was stopped on purpose (the cron check)
  stop      stop the running watchdog and mark it stopped on purpose
  restart   stop, then start
  status    exit 0 when a watchdog runs (its pid is printed), 3 when none does

One watchdog per options file: the running one holds an exclusive lock on its
pid file, and the pid file names it.  Exit status: 0 done, 1 failure, 2 bad
options file, 3 not running (status).
"""

from __future__ import absolute_import, division, print_function

import argparse
import errno
import fcntl
import json
import os
import signal
import sys
import time

DEFAULT_CONFIG = "/etc/pandorafms-server/watchdog.json"
EX_CONFIG = 2
EX_NOT_RUNNING = 3


class Failure(Exception):
    def __init__(self, msg, status=1):
        super(Failure, self).__init__(msg)
        self.status = status


def read_options(path):
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (IOError, OSError) as exc:
        raise Failure("cannot read the options file %s: %s" % (path, exc.strerror or exc), EX_CONFIG)
    except ValueError as exc:
        raise Failure("the options file %s is not valid JSON: %s" % (path, exc), EX_CONFIG)
    if not isinstance(data, dict) or not isinstance(data.get("watchdog"), dict):
        raise Failure("the options file %s has no \"watchdog\" object" % path, EX_CONFIG)
    for key in ("pid_file", "log_file", "stopped_marker"):
        if not data.get(key) or not os.path.isabs(data[key]):
            raise Failure("the options file %s needs an absolute %s" % (path, key), EX_CONFIG)
    return data


def engine(lib_dir):
    if lib_dir:
        sys.path.insert(0, lib_dir)
    try:
        from ansible_collections.pandorafms.server.plugins.module_utils import _errors, _watchdog
    except ImportError as exc:
        raise Failure("cannot load the pandorafms.server engine from %s: %s; re-run the "
                      "pandorafms.server.watchdog role" % (lib_dir, exc), EX_CONFIG)
    return _watchdog, _errors


def make_logger(path):
    folder = os.path.dirname(path)

    def log(text):
        if folder and not os.path.isdir(folder):
            os.makedirs(folder, 0o750)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        with os.fdopen(fd, "a") as handle:
            handle.write("%s pandora-watchdog[%d]: %s\n" % (time.strftime("%Y-%m-%d %H:%M:%S"), os.getpid(), text))
    return log


def running_pid(pid_file):
    """The pid of the watchdog holding the pid file's lock, or None."""
    try:
        fd = os.open(pid_file, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                return int(text) if text.isdigit() else -1
            raise
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def hold_pid_file(pid_file):
    """Take the pid file's exclusive lock and write our pid; the fd stays open for our lifetime."""
    folder = os.path.dirname(pid_file)
    if folder and not os.path.isdir(folder):
        os.makedirs(folder, 0o755)
    fd = os.open(pid_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise Failure("another watchdog holds %s" % pid_file)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, ("%d\n" % os.getpid()).encode("ascii"), 0)
    return fd


def cmd_run(config_path, data):
    watchdog_mod, errors = engine(data.get("lib_dir"))
    log = make_logger(data["log_file"])
    try:
        settings = watchdog_mod.WatchdogSettings.from_dict(data["watchdog"])
        dog = watchdog_mod.Watchdog(settings, log=log)
    except errors.PandoraError as exc:
        log("cannot start: %s" % exc)
        raise Failure(str(exc), EX_CONFIG)
    fd = hold_pid_file(data["pid_file"])
    signal.signal(signal.SIGTERM, dog.stop)
    signal.signal(signal.SIGINT, dog.stop)
    try:
        dog.run()
    finally:
        try:
            os.unlink(data["pid_file"])
        except OSError:
            pass
        os.close(fd)
    return 0


def cmd_start(config_path, data, quiet, respect_marker):
    marker = data["stopped_marker"]
    pid = running_pid(data["pid_file"])
    if pid:
        if not quiet:
            print("already running (pid %d)" % pid)
        return 0
    if respect_marker and os.path.exists(marker):
        if not quiet:
            print("stopped on purpose (%s exists); not starting" % marker)
        return 0
    if os.path.exists(marker):
        os.unlink(marker)
    # Check the options before going to the background, so a bad file fails here, visibly.
    watchdog_mod, errors = engine(data.get("lib_dir"))
    try:
        watchdog_mod.WatchdogSettings.from_dict(data["watchdog"])
    except errors.PandoraError as exc:
        raise Failure(str(exc), EX_CONFIG)
    child = os.fork()
    if child == 0:
        os.setsid()
        if os.fork():
            os._exit(0)
        devnull = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(devnull, target)
        os.chdir("/")
        os.execv(sys.executable, [sys.executable, os.path.abspath(sys.argv[0]), "--config", config_path, "run"])
    os.waitpid(child, 0)
    deadline = time.time() + 10
    while time.time() < deadline:
        pid = running_pid(data["pid_file"])
        if pid and pid > 0:
            print("started (pid %d)" % pid)
            return 0
        time.sleep(0.1)
    raise Failure("the watchdog did not start; see %s" % data["log_file"])


def cmd_stop(data, quiet, mark=True):
    if mark:
        folder = os.path.dirname(data["stopped_marker"])
        if folder and not os.path.isdir(folder):
            os.makedirs(folder, 0o755)
        with open(data["stopped_marker"], "w") as handle:
            handle.write("stopped on purpose at %s\n" % time.strftime("%Y-%m-%d %H:%M:%S"))
    pid = running_pid(data["pid_file"])
    if not pid or pid < 0:
        if not quiet:
            print("not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 15
    while time.time() < deadline and running_pid(data["pid_file"]):
        time.sleep(0.1)
    if running_pid(data["pid_file"]):
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
    print("stopped (pid %d)" % pid)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="pandora-watchdog", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="options file (default %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="print nothing when there is nothing to do")
    parser.add_argument("command", choices=["run", "start", "ensure", "stop", "restart", "status"])
    args = parser.parse_args(argv)
    config = os.path.abspath(args.config)
    try:
        data = read_options(config)
        if args.command == "run":
            return cmd_run(config, data)
        if args.command == "start":
            return cmd_start(config, data, args.quiet, respect_marker=False)
        if args.command == "ensure":
            return cmd_start(config, data, args.quiet, respect_marker=True)
        if args.command == "stop":
            return cmd_stop(data, args.quiet)
        if args.command == "restart":
            cmd_stop(data, True, mark=False)
            return cmd_start(config, data, args.quiet, respect_marker=False)
        pid = running_pid(data["pid_file"])
        if pid:
            print("running (pid %d)" % pid)
            return 0
        print("not running%s" % (" (stopped on purpose)" if os.path.exists(data["stopped_marker"]) else ""))
        return EX_NOT_RUNNING
    except Failure as exc:
        sys.stderr.write("pandora-watchdog: %s\n" % exc)
        return exc.status


if __name__ == "__main__":
    sys.exit(main())
