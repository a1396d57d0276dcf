# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pandora-backup: the scheduled backup of a Pandora FMS server.

Installed by the pandorafms.server.backup role (as ``backup_cli_path``, with a
``#!`` line naming ``backup_python``).  It runs the same engine as the
pandorafms.server.pandora_backup module (a copy of the collection's
module_utils under the library directory named in the options file), with the
module's option names read from a 0600 JSON options file, so no password is on
a command line or in the crontab.

Usage: pandora-backup [--config FILE] [--check] [--verbose]

Exit status: 0 done, 1 the backup failed (reason on stderr and in the log),
2 bad options file, 75 another backup is still running.
"""

from __future__ import absolute_import, division, print_function

import argparse
import errno
import fcntl
import json
import os
import sys
import time

DEFAULT_CONFIG = "/etc/pandorafms-server/backup.json"
EX_CONFIG = 2
EX_TEMPFAIL = 75
# The module's defaults for the options the options file may leave out.
PARAM_DEFAULTS = {
    "config_file": "~/.my.cnf",
    "connect_timeout": 30,
    "console_path": "/var/www/html/pandora_console",
}
# As in the module: any of these means "log in as told" instead of reading config.php.
LOGIN_KEYS = ("login_host", "login_port", "login_user", "login_password", "login_unix_socket", "login_db",
              "pandora_server_conf")
BACKUP_OPTIONS = ("dest", "console_path", "config_dir", "spool_dir", "include_db", "include_files",
                  "keep", "compression", "tmp_dir", "config_file", "pandora_server_conf", "ha_hosts_file")
SECRET_SUFFIX = "password"
MASK = "********"


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
    if not isinstance(data, dict) or not isinstance(data.get("params"), dict):
        raise Failure("the options file %s has no \"params\" object" % path, EX_CONFIG)
    mode = os.stat(path).st_mode & 0o777
    if mode & 0o077:
        raise Failure("the options file %s is mode %04o; it may hold a password, make it 0600"
                      % (path, mode), EX_CONFIG)
    return data


def secrets_of(params):
    return [v for k, v in params.items() if k.endswith(SECRET_SUFFIX) and isinstance(v, str) and v]


def redact(text, secrets):
    text = str(text)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def log_line(path, text):
    if not path:
        return
    folder = os.path.dirname(path)
    if folder and not os.path.isdir(folder):
        os.makedirs(folder, 0o750)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    with os.fdopen(fd, "a") as handle:
        handle.write("%s pandora-backup[%d]: %s\n" % (time.strftime("%Y-%m-%d %H:%M:%S"), os.getpid(), text))


class Lock(object):
    """One backup at a time on this host (a cron run and a manual run must not overlap)."""

    def __init__(self, path):
        self.path = path
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
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise Failure("another pandora-backup run holds %s; not starting a second one" % self.path,
                              EX_TEMPFAIL)
            raise
        return self

    def __exit__(self, *exc):
        if self.handle:
            self.handle.close()


def engine(lib_dir):
    """Import the collection's engine from ``lib_dir`` (an ansible_collections tree)."""
    if lib_dir:
        sys.path.insert(0, lib_dir)
    try:
        from ansible_collections.pandorafms.server.plugins.module_utils import _backup, _errors, _module_args
    except ImportError as exc:
        raise Failure("cannot load the pandorafms.server engine from %s: %s; re-run the "
                      "pandorafms.server.backup role" % (lib_dir, exc), EX_CONFIG)
    return _backup, _errors, _module_args


def settings_for(params, module_args):
    """Connection settings the way the module builds them, or None.

    None lets the engine read the credentials from ``pandora_server_conf`` or
    the console's include/config.php (what pandora_backup.sh does).
    """
    if not any(params.get(key) is not None for key in LOGIN_KEYS):
        return None
    settings, dummy = module_args.settings_from_params(params)
    return settings


def run(config_path, check_mode):
    data = read_options(config_path)
    params = dict(PARAM_DEFAULTS)
    params.update(dict((k, v) for k, v in data["params"].items() if v is not None))
    secrets = secrets_of(params)
    log_file = data.get("log_file")
    settings = None
    try:
        with Lock(data.get("lock_file")):
            backup, errors, module_args = engine(data.get("lib_dir"))
            options = dict((k, params[k]) for k in BACKUP_OPTIONS if k in params)
            try:
                settings = settings_for(params, module_args)
                result = backup.run_backup(settings, check_mode=check_mode, **options)
            except errors.PandoraError as exc:
                raise Failure(str(exc))
            except Exception as exc:  # a bug, not a user error: say so, still without secrets
                raise Failure("unexpected %s: %s" % (type(exc).__name__, exc))
    except Failure as exc:
        if settings is not None and settings.password:
            secrets.append(settings.password)
        msg = redact(exc, secrets)
        log_line(log_file, "FAILED: %s" % msg)
        raise Failure(msg, exc.status)
    summary = "%s archive=%s size=%s seconds=%s" % (
        "CHECK" if check_mode else "OK", result.get("archive"), result.get("size"), result.get("seconds"))
    log_line(log_file, redact(summary, secrets))
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="pandora-backup", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="options file (default %(default)s)")
    parser.add_argument("--check", action="store_true", help="report what would be archived; change nothing")
    parser.add_argument("--verbose", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        result = run(args.config, args.check)
    except Failure as exc:
        sys.stderr.write("pandora-backup: %s\n" % exc)
        return exc.status
    if args.verbose:
        sys.stdout.write(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
