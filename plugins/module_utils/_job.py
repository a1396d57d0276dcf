# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scheduled jobs: a module's engine run by cron or a systemd timer, without Ansible.

A role that schedules a job installs a copy of this collection's module_utils
on the host and a three-line command that imports this file and calls
:func:`main` with the job's name.  The command reads the module's options from
a JSON options file that only root can read (it may hold a password), so no
password is in a crontab, a unit file or a process's argv::

    {"log_file": "...", "lock_file": "...", "params": {<the module's options>}}

What every job shares lives here: reading and checking that file, masking
secrets, the overlap lock, exit statuses, ``--check`` and ``--verbose``.  What
one job does is a small class in :data:`JOBS`.

Exit statuses: 0 done (or nothing to do on this node), 1 the job failed (the
reason on stderr, which cron mails, and in the log), 2 bad options file or
engine copy, 75 another run holds the lock (try later).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import argparse
import errno
import fcntl
import json
import os
import sys
import time

from ansible_collections.pandorafms.server.plugins.module_utils._errors import LockBusy, PandoraError

EX_OK = 0
EX_FAILED = 1
EX_CONFIG = 2
EX_TEMPFAIL = 75
MASK = "********"
SECRET_SUFFIX = "password"


class JobFailure(Exception):
    """The job cannot run or failed: ``str(exc)`` is the message, ``status`` the exit status."""

    def __init__(self, msg, status=EX_FAILED):
        super(JobFailure, self).__init__(msg)
        self.status = status


def read_options(path):
    """The options file as a dict; refuses one that is unreadable, not JSON, or readable by others."""
    try:
        with open(path) as handle:
            data = json.load(handle)
        mode = os.stat(path).st_mode & 0o777
    except (IOError, OSError) as exc:
        raise JobFailure("cannot read the options file %s: %s" % (path, exc.strerror or exc), EX_CONFIG)
    except ValueError as exc:
        raise JobFailure("the options file %s is not valid JSON: %s" % (path, exc), EX_CONFIG)
    if not isinstance(data, dict) or not isinstance(data.get("params"), dict):
        raise JobFailure("the options file %s has no \"params\" object" % path, EX_CONFIG)
    if mode & 0o077:
        raise JobFailure("the options file %s is mode %04o; it may hold a password, make it 0600" % (path, mode),
                         EX_CONFIG)
    return data


def secrets_of(params):
    """The values of every ``*password`` option (what must never be printed or logged)."""
    return [v for k, v in params.items() if k.endswith(SECRET_SUFFIX) and isinstance(v, str) and v]


def redact(text, secrets):
    text = str(text)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def append_line(path, line):
    """Append one line to ``path`` (created 0640, its directory 0750); nothing when ``path`` is empty."""
    if not path:
        return
    folder = os.path.dirname(path)
    if folder and not os.path.isdir(folder):
        os.makedirs(folder, 0o750)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    with os.fdopen(fd, "a") as handle:
        handle.write(line + "\n")


class OverlapLock(object):
    """One run of a job at a time on this host (``flock`` on ``path``; no lock when ``path`` is empty)."""

    def __init__(self, path, prog):
        self.path = path
        self.prog = prog
        self.handle = None

    def __enter__(self):
        if not self.path:
            return self
        folder = os.path.dirname(self.path)
        if folder and not os.path.isdir(folder):
            os.makedirs(folder, 0o755)
        self.handle = open(self.path, "a")
        try:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (IOError, OSError) as exc:
            self.handle.close()
            self.handle = None
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise JobFailure("another %s run holds %s; not starting a second one" % (self.prog, self.path),
                                 EX_TEMPFAIL)
            raise
        return self

    def __exit__(self, *exc):
        if self.handle:
            self.handle.close()
            self.handle = None


class Job(object):
    """One kind of scheduled job.  Subclasses set :attr:`prog` and implement the three methods."""

    prog = "pandora-job"
    default_config = None
    # The connection settings once built (or None): the caller masks the password the engine read from a
    # configuration file, on success and on failure.
    settings = None

    def run(self, params, check_mode):
        """Run the engine and return its result; raise PandoraError on failure."""
        raise NotImplementedError

    def summary(self, result, check_mode):
        """The log line of a run that did not fail (without the date prefix)."""
        raise NotImplementedError

    def log_line(self, text, params):
        """A whole log line: the date, then who and what."""
        return "%s %s[%d]: %s" % (time.strftime("%Y-%m-%d %H:%M:%S"), self.prog, os.getpid(), text)


class MaintenanceJob(Job):
    """``pandora-db-maintain``: pandorafms.server.pandora_db_maintain's engine, on the schedule.

    The engine writes its run log in pandora_db.pl's format to the ``log_file``
    option; this job adds one dated line per run in the format of pandora_db.pl's
    error log (``YYYY-MM-DD HH:MM:SS - <servername> pandora_db: ...``).  A node
    that is not the master logs the skip and exits 0: on an HA fleet every node
    has the job, and only the master's run does something.
    """

    prog = "pandora-db-maintain"
    default_config = "/etc/pandorafms-server/db_maintenance.json"

    def __init__(self):
        self.servername = None

    def run(self, params, check_mode):
        from ansible_collections.pandorafms.server.plugins.module_utils._maintain import (
            options_from_params, run_maintenance)
        from ansible_collections.pandorafms.server.plugins.module_utils._module_args import settings_from_params
        self.settings, server_values = settings_from_params(params)
        self.servername = params.get("servername") or (server_values or {}).get("servername")
        result = run_maintenance(self.settings, server_values, check_mode=check_mode, **options_from_params(params))
        self.servername = result.get("server", {}).get("servername") or self.servername
        return result

    def summary(self, result, check_mode):
        mode = "check mode, nothing changed: " if check_mode else ""
        if result.get("skipped_reason"):
            return "%spandora_db maintenance tasks skipped: %s (master: %s)" % (
                mode, result["skipped_reason"], result.get("server", {}).get("master") or "none running")
        totals = result.get("totals", {})
        text = "%spandora_db maintenance tasks done: %s rows (%s deleted, %s inserted, %s updated) in %.1f s" % (
            mode, totals.get("rows", 0), totals.get("deleted", 0), totals.get("inserted", 0),
            totals.get("updated", 0), result.get("duration") or 0.0)
        if result.get("stopped_early"):
            text += "; max_runtime reached during %s, %s rows left" % (result.get("interrupted_step"),
                                                                       result.get("rows_left"))
        return text

    def log_line(self, text, params):
        if not self.servername:
            from ansible_collections.pandorafms.server.plugins.module_utils._serverconf import default_servername
            self.servername = params.get("servername") or default_servername()
        return "%s - %s pandora_db: %s" % (time.strftime("%Y-%m-%d %H:%M:%S"), self.servername, text)


class BackupJob(Job):
    """``pandora-backup``: pandorafms.server.pandora_backup's engine, on the schedule (the backup role)."""

    prog = "pandora-backup"
    default_config = "/etc/pandorafms-server/backup.json"
    # The module's defaults for the options the options file may leave out.
    PARAM_DEFAULTS = {"config_file": "~/.my.cnf", "connect_timeout": 30,
                      "console_path": "/var/www/html/pandora_console"}
    # As in the module: any of these means "log in as told" instead of reading the console's config.php.
    LOGIN_KEYS = ("login_host", "login_port", "login_user", "login_password", "login_unix_socket", "login_db",
                  "pandora_server_conf")
    BACKUP_OPTIONS = ("dest", "console_path", "config_dir", "spool_dir", "include_db", "include_files", "keep",
                      "compression", "tmp_dir", "config_file", "pandora_server_conf", "ha_hosts_file")

    def run(self, params, check_mode):
        from ansible_collections.pandorafms.server.plugins.module_utils._backup import run_backup
        from ansible_collections.pandorafms.server.plugins.module_utils._module_args import settings_from_params
        params = dict(self.PARAM_DEFAULTS, **params)
        if any(params.get(key) is not None for key in self.LOGIN_KEYS):
            # None lets the engine read the credentials from the console's config.php, as pandora_backup.sh does.
            self.settings = settings_from_params(params)[0]
        options = dict((k, params[k]) for k in self.BACKUP_OPTIONS if k in params)
        return run_backup(self.settings, check_mode=check_mode, **options)

    def summary(self, result, check_mode):
        return "%s archive=%s size=%s seconds=%s" % (
            "CHECK" if check_mode else "OK", result.get("archive"), result.get("size"), result.get("seconds"))


JOBS = {"db_maintenance": MaintenanceJob, "backup": BackupJob}


def run_job(job, config_path, check_mode):
    """Run ``job`` with the options in ``config_path``; return the engine's result or raise JobFailure."""
    data = read_options(config_path)
    params = dict((k, v) for k, v in data["params"].items() if v is not None)
    secrets = secrets_of(params)
    log_file = data.get("log_file")
    try:
        with OverlapLock(data.get("lock_file"), job.prog):
            try:
                result = job.run(params, check_mode)
            except LockBusy as exc:
                raise JobFailure(str(exc), EX_TEMPFAIL)
            except PandoraError as exc:
                raise JobFailure(str(exc))
            except Exception as exc:  # a bug, not a user error: say so, still without secrets
                raise JobFailure("unexpected %s: %s" % (type(exc).__name__, exc))
    except JobFailure as exc:
        if job.settings is not None and job.settings.password:
            secrets.append(job.settings.password)
        msg = redact(exc, secrets)
        append_line(log_file, job.log_line("FAILED: %s" % msg, params))
        raise JobFailure(msg, exc.status)
    if job.settings is not None and job.settings.password:
        secrets.append(job.settings.password)
    append_line(log_file, redact(job.log_line(job.summary(result, check_mode), params), secrets))
    return result


def main(name, argv=None, default_config=None):
    """The command line of job ``name``; returns the exit status."""
    job = JOBS[name]()
    parser = argparse.ArgumentParser(prog=job.prog, description="%s: a scheduled pandorafms.server job" % job.prog)
    parser.add_argument("--config", default=default_config or job.default_config,
                        help="options file (default %(default)s)")
    parser.add_argument("--check", action="store_true", help="report what a run would do; change nothing")
    parser.add_argument("--verbose", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        result = run_job(job, args.config, args.check)
    except JobFailure as exc:
        sys.stderr.write("%s: %s\n" % (job.prog, exc))
        return exc.status
    if args.verbose:
        sys.stdout.write(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
    return EX_OK
