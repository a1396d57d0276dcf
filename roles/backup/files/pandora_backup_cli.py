# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pandora-backup: the scheduled backup of a Pandora FMS server.

Installed by the pandorafms.server.backup role (as ``backup_cli_path``, with a
``#!`` line naming ``backup_python``).  It runs the same engine as the
pandorafms.server.pandora_backup module (a copy of the collection's
module_utils under the library directory named in the options file), with the
module's option names read from a 0600 JSON options file, so no password is on
a command line or in the crontab.  The job itself is ``BackupJob`` in
module_utils/_job.py, which the db_maintenance role's job shares; this file
only finds that engine copy.

Usage: pandora-backup [--config FILE] [--check] [--verbose]

Exit status: 0 done, 1 the backup failed (reason on stderr and in the log),
2 bad options file, 75 another backup is still running.
"""

from __future__ import absolute_import, division, print_function

import json
import sys

DEFAULT_CONFIG = "/etc/pandorafms-server/backup.json"
EX_CONFIG = 2


def config_path(argv):
    """The --config value (argparse in _job.main checks the whole command line)."""
    for index, arg in enumerate(argv):
        if arg == "--config" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return DEFAULT_CONFIG


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    path = config_path(argv)
    try:
        with open(path) as handle:
            lib_dir = json.load(handle).get("lib_dir")
    except (IOError, OSError) as exc:
        sys.stderr.write("pandora-backup: cannot read the options file %s: %s\n" % (path, exc.strerror or exc))
        return EX_CONFIG
    except ValueError as exc:
        sys.stderr.write("pandora-backup: the options file %s is not valid JSON: %s\n" % (path, exc))
        return EX_CONFIG
    except AttributeError:
        lib_dir = None  # not an object: _job.read_options says so
    if lib_dir:
        sys.path.insert(0, lib_dir)
    try:
        from ansible_collections.pandorafms.server.plugins.module_utils import _job
    except ImportError as exc:
        sys.stderr.write("pandora-backup: cannot load the pandorafms.server engine from %s: %s; re-run the "
                         "pandorafms.server.backup role\n" % (lib_dir, exc))
        return EX_CONFIG
    return _job.main("backup", argv, default_config=DEFAULT_CONFIG)


if __name__ == "__main__":
    sys.exit(main())
