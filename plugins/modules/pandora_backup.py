#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pandora_backup
short_description: Back up and restore a Pandora FMS installation (database and files)
version_added: 0.1.0
description:
  - With O(state=present), writes one archive C(pandorafms_backup_<YYYY-MM-DD-HH-MM-SS>.tar.gz) into
    O(dest) holding a consistent dump of the Pandora FMS database (C(--single-transaction), routines,
    events and triggers), the configuration directory, the data spool and the console directory
    (dotfiles such as C(.htaccess) included), and a C(manifest.json) with the collection version, the
    Pandora schema version, the database engine version, the row count of every table and the sha256
    of every member.
  - The dump is streamed from the installed client tool (C(mariadb-dump) or C(mysqldump)) into the
    compressor and the archive; no uncompressed copy is written to disk. The archive is created with
    mode C(0600) under a temporary name and renamed only when it is complete; any failure leaves no
    partial archive behind.
  - With O(state=restored), verifies the whole archive O(src) against its manifest before touching
    anything, loads the dump into a staging database, checks its tables and row counts, and swaps it
    in with one atomic C(RENAME TABLE). The previous content is kept in a pre-restore database until
    the swap is done (or longer with O(keep_pre_restore)). The live database is always either the old
    or the new content, also when the run is killed.
  - The password reaches the client tools only through an option file read from an inherited pipe
    (C(--defaults-extra-file=/dev/fd/N)). It is never on disk, on a command line, in the output or in an
    error message, so a run killed at any moment leaves no file holding it.
  - A restore trusts nothing in the archive beyond what it checks. Before anything changes (also in check
    mode) it refuses, naming the member, absolute or C(..) names, hard links, devices, members under a
    link, a root member that is not a directory, and links on disk between a target and a member; and it
    reads the dump through a guard that refuses database switches (C(USE)), other databases' objects,
    account, privilege, plugin, file and server statements, and client commands. The dump is loaded by a
    temporary account with privileges on the staging database only, created and dropped by the restore.
    See the collection's C(docs/backup.md), section Trust model.
  - Compared with upstream's C(pandora_backup.sh) this module checks every exit status, never loses
    the archive (O(dest) must be absolute), honours C(dbport), sockets and TLS, writes no world-readable
    file, and never drops the live database.
author:
  - pandorafms.server maintainers (!UNKNOWN)
extends_documentation_fragment:
  - pandorafms.server.connection
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
  - pandorafms.server.attributes
attributes:
  check_mode:
    support: full
    details:
      - A backup reports the archive it would write, what it would contain and an estimated size.
      - A restore verifies the whole archive and reports its plan (databases, files that would change).
  diff_mode:
    support: none
  platform:
    platforms: posix
  action_group:
    support: full
    membership:
      - pandorafms.server.pandora
  idempotent:
    support: none
    details:
      - Every backup writes a new archive; every restore with O(restore_db=true) replaces the tables.
        A file restore only writes files that differ from the archive.
options:
  state:
    description:
      - V(present) makes a backup, V(restored) restores from O(src).
    type: str
    choices: [present, restored]
    default: present
  dest:
    description:
      - Absolute directory for the archives; created with mode C(0700) when missing.
      - Required with O(state=present).
    type: path
  src:
    description:
      - Absolute path of the archive to restore. Required with O(state=restored).
    type: path
  console_path:
    description:
      - The Pandora FMS console directory. It is archived (with O(include_files)), and its
        C(include/config.php) gives the database credentials when no C(login_*) option and no
        O(pandora_server_conf) are set, as upstream's C(-c) option did.
    type: path
    default: /var/www/html/pandora_console
  config_dir:
    description:
      - The Pandora FMS configuration directory to archive and restore.
    type: path
    default: /etc/pandora
  spool_dir:
    description:
      - The data spool (incoming agent data) to archive and restore.
    type: path
    default: /var/spool/pandora/data_in
  include_db:
    description:
      - Whether a backup contains the database dump (upstream's C(-b) is V(false)).
    type: bool
    default: true
  include_files:
    description:
      - Whether a backup contains O(config_dir), O(spool_dir) and O(console_path).
    type: bool
    default: true
  keep:
    description:
      - After a successful backup, keep only the newest O(keep) C(pandorafms_backup_*.tar.gz) archives of
        O(dest) (the new one included). V(0) keeps all. Negative values are refused.
    type: int
    default: 0
  compression:
    description:
      - V(auto) uses C(pigz) (parallel) when it is installed, else C(gzip).
    type: str
    choices: [auto, pigz, gzip]
    default: auto
  restore_db:
    description:
      - Whether a restore replaces the database. V(false) restores files only.
    type: bool
    default: true
  restore_files:
    description:
      - Whether a restore also writes O(config_dir), O(spool_dir) and O(console_path) from the archive
        (upstream's C(-f)). Every file it overwrites is saved first into O(saved_files_dir).
      - Files that exist on disk but not in the archive are left alone.
    type: bool
    default: false
  restore_console:
    description:
      - Restore the console directory from the archive first, before reading the credentials from its
        C(include/config.php). For a host whose console directory was lost.
    type: bool
    default: false
  keep_pre_restore:
    description:
      - Keep the previous content as database C(<db>_pre_restore_<YYYYMMDDHHMMSS>) after a successful swap.
        By default it is dropped once the swap is done.
    type: bool
    default: false
  grant_user:
    description:
      - The database user to grant C(ALL PRIVILEGES) on the restored database.
      - Defaults to the Pandora user of the console's C(config.php) or of O(pandora_server_conf).
        Nothing is granted when that user is the login user itself.
    type: str
  grant_hosts:
    description:
      - Hosts of O(grant_user) to grant. Defaults to every host that user already has in C(mysql.user).
    type: list
    elements: str
  tmp_dir:
    description:
      - Absolute directory for the scratch directories (tool messages). It must be writable; the check run
        refuses it too when it is not.
      - Scratch directories of killed runs are removed by the next run of the same kind.
      - Defaults to O(dest) for a backup and to the directory of O(src) for a restore.
    type: path
  saved_files_dir:
    description:
      - Absolute directory where a file restore saves the files it overwrites, under their absolute paths.
      - Defaults to C(pandorafms_restore_saved_<YYYYMMDDHHMMSS>) next to O(src).
    type: path
  lock_wait_timeout:
    description:
      - Seconds the swap waits for other sessions' metadata locks on the live tables (a running Pandora
        server) before it gives up, leaving the live database unchanged.
      - From V(1) to V(31536000).
    type: int
    default: 300
notes:
  - This module stops no service. The role C(pandorafms.server.restore) stops the Pandora server and its
    watchdog around a restore.
  - A restore creates databases (staging and pre-restore) and a temporary loading account, so it needs an
    account with the global privileges C(CREATE), C(DROP), C(CREATE USER), C(ALTER), C(INSERT),
    C(LOCK TABLES) and C(GRANT OPTION), usually C(root); a login without them is refused before anything
    changes, also in check mode. The Pandora user of C(config.php) usually can only back up.
  - Views, routines, events and triggers of a restored database get the restoring account as definer.
  - Views, routines, events and triggers are recreated right after the table swap (the Pandora schema
    has none). The pre-restore database keeps only the previous tables.
  - Archives of upstream's C(pandora_backup.sh) have no manifest and are refused; extract them and load
    the C(.sql) by hand.
requirements:
  - The MariaDB or MySQL client tools (C(mariadb-dump)/C(mysqldump), C(mariadb)/C(mysql)) on the managed host.
  - C(pigz) is used when installed (Debian/RHEL package C(pigz)); C(gzip) otherwise.
seealso:
  - module: pandorafms.server.pandora_db_info
'''

EXAMPLES = r'''
- name: Back up with the console's own credentials, keep a week of archives
  pandorafms.server.pandora_backup:
    dest: /var/backups/pandora
    keep: 7

- name: Back up the database only, as the server's configuration says
  pandorafms.server.pandora_backup:
    pandora_server_conf: /etc/pandora/pandora_server.conf
    dest: /var/backups/pandora
    include_files: false
  register: backup

- name: Show where it went
  ansible.builtin.debug:
    msg: "{{ backup.archive }} ({{ backup.size }} bytes, {{ backup.seconds }} s)"

- name: Verify an archive and show what a restore would do
  pandorafms.server.pandora_backup:
    state: restored
    src: /var/backups/pandora/pandorafms_backup_2026-01-31-03-00-00.tar.gz
  check_mode: true

- name: Restore database and files, keeping the previous database
  pandorafms.server.pandora_backup:
    state: restored
    src: /var/backups/pandora/pandorafms_backup_2026-01-31-03-00-00.tar.gz
    login_user: root
    login_unix_socket: /run/mysqld/mysqld.sock
    login_db: pandora
    restore_files: true
    keep_pre_restore: true
'''

RETURN = r'''
archive:
  description: Path of the archive written (or that would be written in check mode), or restored from.
  returned: success
  type: str
  sample: /var/backups/pandora/pandorafms_backup_2026-01-31-03-00-00.tar.gz
size:
  description: Size of the archive in bytes.
  returned: success and O(state=present) and not check mode
  type: int
  sample: 52000000
estimated_size:
  description: Rough size of the archive a backup would write.
  returned: check mode and O(state=present)
  type: int
sha256:
  description: sha256 of the archive file.
  returned: success and O(state=present) and not check mode
  type: str
seconds:
  description: Wall time of the run.
  returned: success
  type: float
database:
  description: The database backed up or restored.
  returned: success
  type: str
  sample: pandora
tables:
  description: Rows of every table in the dump (backup) or of every restored table.
  returned: success and not check mode, when the database is part of the run
  type: dict
  sample: {"tagente": 120, "tagente_datos": 9763200}
members:
  description: Number of members in the archive (the manifest included).
  returned: success and O(state=present) and not check mode
  type: int
manifest:
  description:
    - The archive's manifest without its per-member list - format, collection version, creation time,
      database (server engine and version, charset, Pandora schema tokens such as C(MR), dump tool and
      its sha256, row counts) and the file roots.
  returned: success and not (O(state=present) and check mode)
  type: dict
rotated:
  description: Archives removed by O(keep).
  returned: success and O(state=present) and not check mode
  type: list
  elements: str
compression:
  description: The compressor used (V(pigz), V(gzip), or V(zlib) when neither program exists).
  returned: O(state=present)
  type: str
plan:
  description:
    - Check mode only. For a backup, the tables, estimated rows, files and whether O(dest) exists; for a
      restore, the verified archive, the staging and pre-restore database names, the live database's
      state and the files that would be written.
  returned: check mode
  type: dict
pre_restore_database:
  description: The database holding the previous content, when O(keep_pre_restore) kept it.
  returned: O(state=restored)
  type: str
  sample: pandora_pre_restore_20260131031500
restored_files:
  description: Files, links and directories that the restore created or changed.
  returned: O(state=restored)
  type: list
  elements: str
saved_files_dir:
  description: Where the files overwritten by the restore were saved (V(null) when none was).
  returned: O(state=restored)
  type: str
saved_files:
  description: The overwritten paths saved into RV(saved_files_dir).
  returned: O(state=restored) and not check mode
  type: list
  elements: str
grants:
  description: The accounts granted C(ALL PRIVILEGES) on the restored database.
  returned: O(state=restored) and not check mode
  type: list
  elements: str
  sample: ["pandora@localhost"]
removed_stale_databases:
  description: Staging databases left by killed restores, and empty pre-restore databases, that were dropped.
  returned: O(state=restored) with O(restore_db) and not check mode
  type: list
  elements: str
removed_stale_accounts:
  description: Temporary loading accounts left by killed restores of this database, that were dropped.
  returned: O(state=restored) with O(restore_db) and not check mode
  type: list
  elements: str
removed_stale_scratch:
  description: Scratch directories of killed runs of the same kind that were removed.
  returned: not check mode, for a backup and for a restore with O(restore_db)
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pandorafms.server.plugins.module_utils._backup import run_backup
from ansible_collections.pandorafms.server.plugins.module_utils._errors import PandoraError
from ansible_collections.pandorafms.server.plugins.module_utils._module_args import (
    connection_argument_spec, fail_from_error, settings_from_params)
from ansible_collections.pandorafms.server.plugins.module_utils._restore import restore as run_restore

EXPLICIT_LOGIN = ("login_host", "login_port", "login_user", "login_password", "login_unix_socket", "login_db",
                  "pandora_server_conf")
ENGINE_OPTIONS = ("dest", "src", "console_path", "config_dir", "spool_dir", "include_db", "include_files", "keep",
                  "compression", "restore_db", "restore_files", "restore_console", "keep_pre_restore",
                  "grant_user", "grant_hosts", "tmp_dir", "saved_files_dir", "lock_wait_timeout", "config_file",
                  "pandora_server_conf", "ha_hosts_file")


def main():
    spec = connection_argument_spec()
    spec.update(
        state=dict(type="str", choices=["present", "restored"], default="present"),
        dest=dict(type="path"),
        src=dict(type="path"),
        console_path=dict(type="path", default="/var/www/html/pandora_console"),
        config_dir=dict(type="path", default="/etc/pandora"),
        spool_dir=dict(type="path", default="/var/spool/pandora/data_in"),
        include_db=dict(type="bool", default=True),
        include_files=dict(type="bool", default=True),
        keep=dict(type="int", default=0),
        compression=dict(type="str", choices=["auto", "pigz", "gzip"], default="auto"),
        restore_db=dict(type="bool", default=True),
        restore_files=dict(type="bool", default=False),
        restore_console=dict(type="bool", default=False),
        keep_pre_restore=dict(type="bool", default=False),
        grant_user=dict(type="str"),
        grant_hosts=dict(type="list", elements="str"),
        tmp_dir=dict(type="path"),
        saved_files_dir=dict(type="path"),
        lock_wait_timeout=dict(type="int", default=300),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           required_if=[("state", "present", ("dest",)), ("state", "restored", ("src",))])
    params = module.params
    settings = None
    try:
        if any(params.get(key) is not None for key in EXPLICIT_LOGIN):
            settings, dummy = settings_from_params(params)
        options = dict((key, params.get(key)) for key in ENGINE_OPTIONS)
        if params["state"] == "present":
            result = run_backup(settings, module.check_mode, **options)
        else:
            result = run_restore(settings, module.check_mode, **options)
    except PandoraError as exc:
        fail_from_error(module, exc, settings)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
