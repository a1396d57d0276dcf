# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore of a backup made by ``_backup.py``, in an order that cannot destroy the live data.

1. **Verify** the whole archive first: every member is read and hashed and
   compared with ``manifest.json``; a truncated file, a changed or missing
   member, an extra member or a missing dump stops here, before anything on the
   server or the disk is touched.
2. ``restore_console``: the console directory comes back first (its
   ``include/config.php`` holds the credentials), saving what it overwrites.
3. **Load** the dump into a staging database ``<db>_restore_<ts>`` with the
   client tool (password in a 0600 defaults file), streamed from the archive;
   then compare the staging tables and their row counts with the manifest.
4. **Swap** with ONE ``RENAME TABLE`` statement: every live table to
   ``<db>_pre_restore_<ts>`` and every staging table to the live database.
   The statement is atomic, so the live database always holds either the old
   or the new tables, whenever the process is killed.  Views, routines, events
   and triggers (which ``RENAME TABLE`` cannot move between databases) are
   recreated right after it.
5. Drop the pre-restore database (or keep it: ``keep_pre_restore``), re-grant
   the Pandora user, and restore files (``restore_files``), saving every file
   that is overwritten.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import os
import posixpath
import pwd
import grp
import re
import secrets
import shutil
import subprocess
import tempfile
import time

from ansible_collections.pandorafms.server.plugins.module_utils._archive import (
    CHUNK, MANIFEST_NAME, ArchiveStream, member_type, write_all)
from ansible_collections.pandorafms.server.plugins.module_utils._backup import (
    FILE_ROOTS, FORMAT, FORMAT_VERSION, PipedDefaults, WorkDir, check_writable, clean_stale_workdirs, client_tool,
    guarded, options_with_defaults, public_manifest, resolve_connection, sha256_file)
from ansible_collections.pandorafms.server.plugins.module_utils._connection import (
    connect, server_info)
from ansible_collections.pandorafms.server.plugins.module_utils._dumpscan import DumpGuard, UnsafeDump
from ansible_collections.pandorafms.server.plugins.module_utils._errors import (
    ConfigError, LockBusy, OperationFailed, PandoraError, PreconditionFailed)
from ansible_collections.pandorafms.server.plugins.module_utils._lock import MaintenanceLock

MAX_MANIFEST = 512 * 1024 * 1024
TABLE_TYPES = ("BASE TABLE", "SYSTEM VERSIONED", "SEQUENCE")
WORKDIR_PREFIX = ".pandorafms-restore-"
LOADER_PREFIX = "pfms_rst_"
PRIVILEGE_ERRORS = (1044, 1045, 1142, 1143, 1227, 1370, 1410, 1419)
NEEDS_ROOT = ("a restore needs an account that may create and drop databases, create and drop users and "
              "grant privileges (usually root): set login_user/login_password to such an account")
_DEFINER_SQL = re.compile(r"DEFINER\s*=\s*`(?:[^`]|``)*`@`(?:[^`]|``)*`\s*")


def q(name):
    """A quoted SQL identifier."""
    return "`%s`" % name.replace("`", "``")


# -- 1. verification -------------------------------------------------------------
class Verified(object):
    def __init__(self, manifest, members, dump_member):
        self.manifest = manifest
        self.members = members
        self.dump_member = dump_member


def verify_archive(src, compression="auto", need_dump=True, schemas=()):
    """Read the whole archive; raise PreconditionFailed unless it matches its manifest exactly.

    With ``need_dump`` the dump is also read through :class:`DumpGuard` (the
    first ``.sql`` member, the one the manifest names is checked below), so an
    archive whose dump reaches outside its database is refused here, before
    anything changes.
    """
    seen = {}
    order = []
    manifest = None
    dump_tail = {}
    guards = {}
    refused = {}
    with ArchiveStream(src, compression) as members:
        for info, reader in members:
            _check_name(src, info.name)
            if info.name == MANIFEST_NAME:
                if info.size > MAX_MANIFEST:
                    raise PreconditionFailed("%s: manifest.json is implausibly large" % src)
                data = b"".join(iter(lambda: reader.read(CHUNK), b""))
                try:
                    manifest = json.loads(data.decode("utf-8"))
                except ValueError as exc:
                    raise PreconditionFailed("%s: manifest.json is not valid JSON (%s)" % (src, exc))
                order.append(info.name)
                continue
            entry = {"type": member_type(info)}
            if reader is not None:
                tail = b""
                guard = None
                if need_dump and info.name.endswith(".sql") and not guards:
                    guard = guards[info.name] = DumpGuard(info.name, schemas)
                while True:
                    data = reader.read(CHUNK)
                    if not data:
                        break
                    if guard is not None:
                        try:
                            guard.feed(data)
                        except UnsafeDump as exc:
                            # Read the member to its end all the same: a damaged archive (a CRC or sha256
                            # mismatch found later) is reported as damaged, not as a hostile dump.
                            refused[info.name] = exc
                            guard = None
                    tail = (tail + data[-512:])[-512:]
                if guard is not None:
                    try:
                        guard.close()
                    except UnsafeDump as exc:
                        refused[info.name] = exc
                entry["size"] = reader.read_bytes
                entry["sha256"] = reader.hexdigest()
                dump_tail[info.name] = tail
            elif info.issym():
                entry["target"] = info.linkname
            if info.name in seen:
                raise PreconditionFailed("%s holds %s twice" % (src, info.name))
            seen[info.name] = entry
            order.append(info.name)
    if manifest is None:
        raise PreconditionFailed("%s has no manifest.json: it was not made by pandorafms.server's backup, or "
                                 "it is truncated" % src)
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("members"), dict):
        raise PreconditionFailed("%s: manifest.json is not a %s manifest" % (src, FORMAT))
    if int(manifest.get("format_version") or 0) > FORMAT_VERSION:
        raise PreconditionFailed("%s was written by a newer format (%s) than this collection reads (%s); "
                                 "upgrade the collection" % (src, manifest.get("format_version"), FORMAT_VERSION))
    if order[-1] != MANIFEST_NAME:
        raise PreconditionFailed("%s has members after manifest.json (%s): it was altered" % (src, order[-1]))
    expected = manifest["members"]
    problems = []
    for name in sorted(set(expected) - set(seen)):
        problems.append("%s is missing" % name)
    for name in sorted(set(seen) - set(expected)):
        problems.append("%s is not in the manifest" % name)
    for name in sorted(set(seen) & set(expected)):
        want, got = expected[name], seen[name]
        if want.get("type") != got["type"]:
            problems.append("%s is a %s, the manifest says %s" % (name, got["type"], want.get("type")))
        elif got["type"] == "file" and (want.get("sha256") != got["sha256"] or want.get("size") != got["size"]):
            problems.append("%s has sha256 %s..., the manifest says %s..." % (
                name, got["sha256"][:12], str(want.get("sha256"))[:12]))
        elif got["type"] == "symlink" and want.get("target") != got.get("target"):
            problems.append("%s points to %s, the manifest says %s" % (name, got.get("target"), want.get("target")))
    if problems:
        more = " (and %d more)" % (len(problems) - 10) if len(problems) > 10 else ""
        raise PreconditionFailed("%s does not match its manifest: %s%s" % (src, "; ".join(problems[:10]), more))
    for name in sorted(refused):
        raise refused[name]
    dump_member = None
    database = manifest.get("database")
    if database:
        dump_member = (database.get("dump") or {}).get("member")
        if dump_member not in seen or seen[dump_member]["type"] != "file":
            raise PreconditionFailed("%s: the manifest names the dump %s but the archive has none" % (
                src, dump_member))
        lines = dump_tail.get(dump_member, b"").rstrip(b"\n").split(b"\n")
        if not lines[-1].startswith(b"-- Dump completed"):
            raise PreconditionFailed("%s: the dump %s does not end with '-- Dump completed': it is incomplete"
                                     % (src, dump_member))
        if need_dump:
            guard = guards.get(dump_member)
            if guard is None:
                raise PreconditionFailed("%s: the dump %s is not the archive's first .sql member: it was "
                                         "altered" % (src, dump_member))
            own = [n for n in (database.get("name"),) + tuple(schemas) if n]
            guard.check_qualifiers(own)
    if need_dump and not dump_member:
        raise PreconditionFailed("%s has no database dump (it was made with include_db=false); set "
                                 "restore_db=false to restore files only" % src)
    return Verified(manifest, seen, dump_member)


def _check_name(src, name):
    """Refuse member names that are absolute, hold ``..``/``.``/empty parts or are not normalised."""
    if (not name or name.startswith("/") or "\0" in name or posixpath.normpath(name) != name
            or any(part in ("", ".", "..") for part in name.split("/"))):
        raise PreconditionFailed("%s holds the unsafe member name %r (absolute, with '..' or not normalised); "
                                 "the archive was refused before anything changed" % (src, name))


def check_members(src, verified, maps):
    """Refuse, naming the member, whatever a file restore could not write inside its targets.

    Runs before anything changes (and in check mode): member types (hard links,
    devices, FIFOs), members under a link of the archive, roots that are not
    directories, and links already on disk between a target and a member.
    """
    members = verified.members

    def refuse(name, why):
        raise PreconditionFailed("%s: the member %s %s; the archive was refused before anything changed"
                                 % (src, name, why))

    links = set(name for name, entry in members.items() if entry["type"] == "symlink")
    for name, entry in sorted(members.items()):
        if entry["type"] == "other":
            refuse(name, "is a hard link, a device or another special file (a backup never holds one)")
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in links:
                refuse(name, "lies under %s, which the archive holds as a symbolic link" % parent)
    for key, prefix, target in maps:
        root = members.get(prefix)
        if root is not None and root["type"] != "dir":
            refuse(prefix, "(the root of %s) is a %s, not a directory: restoring it would replace %s"
                   % (key, root["type"], target))
    targets = {}
    for name, entry in sorted(members.items()):
        key, path, root = map_member(name, maps)
        if path is None:
            continue
        if path in targets and not (entry["type"] == "dir" and members[targets[path]]["type"] == "dir"):
            refuse(name, "and the member %s would both be written to %s (two roots restored into one "
                   "directory): give each root its own target" % (targets[path], path))
        targets.setdefault(path, name)
        if path == root:
            continue
        rel = path[len(root):].strip("/").split("/")
        current = root
        for part in rel[:-1]:
            current = os.path.join(current, part)
            if os.path.islink(current):
                refuse(name, "would be written through %s, a symbolic link on disk (to %s): move the link "
                       "away or restore elsewhere" % (current, os.readlink(current)))
            if not os.path.lexists(current):
                break
        if entry["type"] == "dir" and os.path.islink(path):
            refuse(name, "is a directory where %s on disk is a symbolic link (to %s): move the link away or "
                   "restore elsewhere" % (path, os.readlink(path)))


# -- files -----------------------------------------------------------------------
class Saver(object):
    """Keeps a copy of everything a restore overwrites under ``<dir>/<absolute path>``."""

    def __init__(self, directory):
        self.directory = directory
        self.used = False
        self.saved = []

    def _target(self, path):
        target = os.path.join(self.directory, path.lstrip("/"))
        parent = os.path.dirname(target)
        if not self.used:
            os.makedirs(self.directory, 0o700, exist_ok=True)
            os.chmod(self.directory, 0o700)
            self.used = True
        os.makedirs(parent, 0o700, exist_ok=True)
        return target

    def copy(self, path):
        target = self._target(path)
        if os.path.islink(path):
            if os.path.lexists(target):
                os.unlink(target)
            os.symlink(os.readlink(path), target)
        else:
            shutil.copy2(path, target)
        self.saved.append(path)

    def move(self, path):
        target = self._target(path)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        elif os.path.lexists(target):
            os.unlink(target)
        shutil.move(path, target)
        self.saved.append(path)


def _owner(info):
    uid, gid = info.uid, info.gid
    if info.uname:
        try:
            uid = pwd.getpwnam(info.uname).pw_uid
        except KeyError:
            pass
    if info.gname:
        try:
            gid = grp.getgrnam(info.gname).gr_gid
        except KeyError:
            pass
    return uid, gid


def _inside(path, root):
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip("/") + "/")


def root_maps(manifest, keys, opts, warnings):
    maps = []
    for key in keys:
        entry = manifest.get("files", {}).get(key)
        if not entry or entry.get("missing"):
            warnings.append("the archive has no %s (%s was not backed up)" % (
                key, entry.get("path") if entry else "files"))
            continue
        target = opts.get(key)
        if not target or not os.path.isabs(target):
            raise ConfigError("%s must be an absolute path to restore files into, not %r" % (key, target))
        maps.append((key, entry["member"], os.path.normpath(target)))
    return maps


def map_member(name, maps):
    for key, prefix, target in maps:
        if name == prefix:
            return key, target, target
        if name.startswith(prefix + "/"):
            rel = name[len(prefix) + 1:]
            parts = rel.split("/")
            if any(part in ("", ".", "..") for part in parts):
                raise PreconditionFailed("unsafe member name %r in the archive" % name)
            return key, os.path.join(target, *parts), target
    return None, None, None


def plan_files(verified, maps):
    """Paths that a file restore would create or change (check mode)."""
    changes = []
    for name, entry in sorted(verified.members.items()):
        key, path, root = map_member(name, maps)
        if path is None:
            continue
        if entry["type"] == "file":
            if not (os.path.isfile(path) and not os.path.islink(path) and os.path.getsize(path) == entry["size"]
                    and sha256_file(path) == entry["sha256"]):
                changes.append(path)
        elif entry["type"] == "symlink":
            if not (os.path.islink(path) and os.readlink(path) == entry.get("target")):
                changes.append(path)
        elif entry["type"] == "dir" and (not os.path.isdir(path) or (os.path.islink(path) and path != root)):
            changes.append(path)
    return changes


def restore_roots(src, verified, maps, saver, compression):
    """Write the members under ``maps``; return the paths created or changed."""
    restored = []
    dirs = []
    as_root = os.geteuid() == 0
    with ArchiveStream(src, compression) as members:
        for info, reader in members:
            key, path, root = map_member(info.name, maps)
            if path is None:
                continue
            parent = os.path.dirname(path)
            if path != root and not _inside(parent, root):
                raise PreconditionFailed("refusing to write %s: its directory leads outside %s" % (path, root))
            if path == root and not info.isdir():
                raise PreconditionFailed("refusing to replace %s with the archive's %s" % (
                    root, member_type(info)))
            if info.isdir():
                if path == root and os.path.islink(path) and os.path.isdir(path):
                    continue  # e.g. /etc/pandora as a link to the real directory: keep the link
                if os.path.lexists(path) and (os.path.islink(path) or not os.path.isdir(path)):
                    saver.move(path)
                if not os.path.isdir(path):
                    os.makedirs(path, 0o700)
                    restored.append(path)
                dirs.append((path, info))
            elif info.issym():
                if os.path.islink(path) and os.readlink(path) == info.linkname:
                    continue
                os.makedirs(parent, exist_ok=True)
                if os.path.lexists(path):
                    saver.move(path)
                os.symlink(info.linkname, path)
                if as_root:
                    os.lchown(path, *_owner(info))
                restored.append(path)
            elif info.isreg():
                want = verified.members[info.name]["sha256"]
                if (os.path.isfile(path) and not os.path.islink(path) and os.path.getsize(path) == info.size
                        and sha256_file(path) == want):
                    _set_meta(path, info, as_root)
                    continue
                os.makedirs(parent, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=".pandora-restore-", dir=parent)
                try:
                    digest = hashlib.sha256()
                    while True:
                        data = reader.read(CHUNK)
                        if not data:
                            break
                        digest.update(data)
                        write_all(fd, data)
                    os.fsync(fd)
                    os.close(fd)
                    fd = None
                    if digest.hexdigest() != want:
                        raise PreconditionFailed("%s changed since it was verified (member %s)" % (src, info.name))
                    _set_meta(tmp, info, as_root)
                    if os.path.lexists(path):
                        if os.path.isdir(path) and not os.path.islink(path):
                            saver.move(path)
                        else:
                            saver.copy(path)
                    os.replace(tmp, path)
                    tmp = None
                finally:
                    if fd is not None:
                        os.close(fd)
                    if tmp is not None and os.path.exists(tmp):
                        os.unlink(tmp)
                restored.append(path)
    for path, info in reversed(dirs):
        _set_meta(path, info, as_root)
    return restored


def _set_meta(path, info, as_root):
    if as_root:
        os.chown(path, *_owner(info))
    os.chmod(path, info.mode & 0o7777)
    os.utime(path, (info.mtime, info.mtime))


# -- database ----------------------------------------------------------------------
def db_name_with_suffix(live, suffix):
    """``<live><suffix>``, shortened with a hash when it would pass MariaDB's 64-character limit."""
    name = live + suffix
    if len(name) <= 64:
        return name
    digest = hashlib.sha256(live.encode("utf-8")).hexdigest()[:8]
    return live[:64 - len(suffix) - 9] + "_" + digest + suffix


def _schema_exists(cur, name):
    cur.execute("SELECT default_character_set_name, default_collation_name FROM information_schema.schemata"
                " WHERE schema_name = %s", (name,))
    return cur.fetchone()


def _tables(cur, schema):
    cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_type IN"
                " (%s) ORDER BY table_name" % ("%s", ", ".join(["%s"] * len(TABLE_TYPES))),
                (schema,) + TABLE_TYPES)
    return [row[0] for row in cur.fetchall()]


class Objects(object):
    """Views, routines, events and triggers of a schema, as statements that recreate them."""

    def __init__(self):
        self.views = []      # (name, create statement)
        self.routines = []   # (kind, name, sql_mode, create statement)
        self.events = []     # (name, sql_mode, time_zone, create statement)
        self.triggers = []   # (name, sql_mode, create statement)

    @classmethod
    def read(cls, conn, schema):
        objs = cls()
        with conn.cursor() as cur:
            cur.execute("USE %s" % q(schema))
            cur.execute("SELECT table_name FROM information_schema.views WHERE table_schema = %s ORDER BY 1",
                        (schema,))
            for (name,) in cur.fetchall():
                cur.execute("SHOW CREATE VIEW %s" % q(name))
                objs.views.append((name, cur.fetchone()[1]))
            cur.execute("SELECT routine_type, routine_name FROM information_schema.routines"
                        " WHERE routine_schema = %s ORDER BY 1, 2", (schema,))
            for kind, name in cur.fetchall():
                cur.execute("SHOW CREATE %s %s" % (kind, q(name)))
                row = cur.fetchone()
                objs.routines.append((kind, name, row[1], row[2]))
            cur.execute("SELECT event_name FROM information_schema.events WHERE event_schema = %s ORDER BY 1",
                        (schema,))
            for (name,) in cur.fetchall():
                cur.execute("SHOW CREATE EVENT %s" % q(name))
                row = cur.fetchone()
                objs.events.append((name, row[1], row[2], row[3]))
            cur.execute("SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = %s"
                        " ORDER BY event_object_table, action_timing, event_manipulation, action_order",
                        (schema,))
            for (name,) in cur.fetchall():
                cur.execute("SHOW CREATE TRIGGER %s" % q(name))
                row = cur.fetchone()
                objs.triggers.append((name, row[1], row[2]))
        return objs

    def without_definers(self, schema=None):
        """The same objects with their DEFINER clauses removed: recreated, they belong to the restoring account.

        Objects read from the staging database name the temporary loading
        account (which is dropped) as their definer.
        """
        own = (q(schema) + ".") if schema else None

        def strip(sql):
            sql = _DEFINER_SQL.sub("", sql, count=1)
            # objects of a definer that no longer exists are shown with their schema spelt out
            return sql.replace(own, "") if own else sql
        objs = Objects()
        objs.views = [(n, strip(sql)) for n, sql in self.views]
        objs.routines = [(k, n, m, strip(sql)) for k, n, m, sql in self.routines]
        objs.events = [(n, m, z, strip(sql)) for n, m, z, sql in self.events]
        objs.triggers = [(n, m, strip(sql)) for n, m, sql in self.triggers]
        return objs

    def drop_triggers(self, conn, schema):
        with conn.cursor() as cur:
            for name, dummy_mode, dummy_sql in self.triggers:
                cur.execute("DROP TRIGGER IF EXISTS %s.%s" % (q(schema), q(name)))

    def create_triggers(self, conn, schema):
        with conn.cursor() as cur:
            cur.execute("USE %s" % q(schema))
            for name, mode, sql in self.triggers:
                cur.execute("SET SESSION sql_mode = %s", (mode,))
                cur.execute(sql)

    def replace_objects_in(self, conn, schema, current):
        """Make ``schema``'s views, routines and events those of ``self`` (``current``: what it has now)."""
        with conn.cursor() as cur:
            cur.execute("USE %s" % q(schema))
            for name, dummy in current.views:
                cur.execute("DROP VIEW IF EXISTS %s" % q(name))
            for kind, name, dummy_mode, dummy_sql in current.routines:
                cur.execute("DROP %s IF EXISTS %s" % (kind, q(name)))
            for name, dummy_mode, dummy_tz, dummy_sql in current.events:
                cur.execute("DROP EVENT IF EXISTS %s" % q(name))
            pending = list(self.views)
            while pending:  # views over views: retry until no progress
                failed = []
                error = None
                for name, sql in pending:
                    try:
                        cur.execute(sql)
                    except Exception as exc:  # pylint: disable=broad-except
                        failed.append((name, sql))
                        error = exc
                if len(failed) == len(pending):
                    raise OperationFailed("cannot recreate view(s) %s in %s: %s" % (
                        ", ".join(n for n, s in failed), schema, error))
                pending = failed
            for kind, name, mode, sql in self.routines:
                cur.execute("SET SESSION sql_mode = %s", (mode,))
                cur.execute(sql)
            for name, mode, zone, sql in self.events:
                cur.execute("SET SESSION sql_mode = %s", (mode,))
                cur.execute("SET SESSION time_zone = %s", (zone,))
                cur.execute(sql)


_SANDBOX = {}


def _client_sandbox(client):
    """``["--sandbox"]`` when the client knows it (no client command may touch files or run programs)."""
    if client not in _SANDBOX:
        try:
            out = subprocess.run([client, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 timeout=30, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            out = b""
        _SANDBOX[client] = ["--sandbox"] if b"--sandbox" in out else []
    return _SANDBOX[client]


def load_dump(src, verified, client, settings, staging, workdir, compression, redact, schemas):
    """Stream the dump member into ``staging`` with the client tool, through :class:`DumpGuard` again.

    ``settings`` is the temporary loading account (privileges on ``staging``
    only); its option file reaches the client through a pipe.  The archive is
    hashed again on the way: it must be the one that was verified.
    """
    init = ("SET SESSION foreign_key_checks = 0, unique_checks = 0, "
            "sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')")
    errpath = os.path.join(workdir, "client.err")
    want = verified.members[verified.dump_member]["sha256"]
    guard = DumpGuard(verified.dump_member, schemas, rewrite=True)
    with PipedDefaults(settings) as (option, fds):
        cmd = [client, option, "--batch", "--max-allowed-packet=1G", "--default-character-set=utf8mb4",
               "--init-command=%s" % init] + _client_sandbox(client) + ["--", staging]
        with open(errpath, "wb") as errfile:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errfile,
                                    close_fds=True, pass_fds=fds)
        digest = hashlib.sha256()
        broken = False
        try:
            with ArchiveStream(src, compression) as members:
                for info, reader in members:
                    if info.name != verified.dump_member:
                        continue
                    fd = proc.stdin.fileno()
                    while not broken:
                        data = reader.read(CHUNK)
                        last = not data
                        digest.update(data)
                        out = guard.close() if last else guard.feed(data)
                        try:
                            if out:
                                write_all(fd, out)
                        except (IOError, OSError):
                            broken = True
                        if last:
                            break
                    break
            try:
                proc.stdin.close()
            except (IOError, OSError):
                broken = True
        except BaseException:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            raise
        rc = proc.wait()
    with open(errpath, "rb") as handle:
        err = redact(handle.read().decode("utf-8", "replace").strip())
    if rc != 0 or broken:
        raise OperationFailed("loading the dump into the staging database %s failed (%s exit %s): %s; the live "
                              "database was not touched" % (staging, os.path.basename(client), rc,
                                                            err[-2000:] or "no message"))
    if digest.hexdigest() != want:
        raise PreconditionFailed("%s changed since it was verified; the live database was not touched" % src)


def _db_error(exc):
    args = getattr(exc, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):
        return args[0], str(args[1])
    return None, str(exc)


def execute(cur, sql, args=None, what=None, state="nothing was changed", hint=None):
    """``cur.execute`` whose failure says what failed, what was or was not changed, and what to do."""
    try:
        cur.execute(sql, args)
    except PandoraError:
        raise
    except Exception as exc:  # pylint: disable=broad-except
        code, text = _db_error(exc)
        if hint is None:
            if code in PRIVILEGE_ERRORS:
                hint = NEEDS_ROOT
            elif code in (1205, 1213):
                hint = ("another session holds a lock on these tables (a running Pandora server or console): "
                        "stop them, or raise lock_wait_timeout, and run the restore again")
            else:
                hint = "fix the cause and run the restore again"
        raise OperationFailed("%s failed (MariaDB error %s: %s); %s. %s" % (
            what or sql.split(" (")[0][:80], code if code is not None else "?", text, state, hint))
    return cur


def loader_prefix(live):
    return LOADER_PREFIX + hashlib.sha256(live.encode("utf-8")).hexdigest()[:6] + "_"


class LoadingAccount(object):
    """A temporary account with ALL PRIVILEGES on the staging database only, dropped afterwards.

    Its name is ``pfms_rst_<hash of the live name>_<random>`` and its password
    random; both live only in this process and in the pipe handed to the
    client.  A killed restore's account is dropped by the next restore of the
    same database (:func:`cleanup_stale`).
    """

    def __init__(self, conn, admin, live, staging, redact):
        self.conn = conn
        self.admin = admin
        self.staging = staging
        self.name = loader_prefix(live) + secrets.token_hex(3)
        self.password = secrets.token_urlsafe(24)
        self.host = None
        self.redact = redact

    def __enter__(self):
        with self.conn.cursor() as cur:
            cur.execute("SELECT SUBSTRING_INDEX(USER(), '@', -1)")
            self.host = cur.fetchone()[0] or "localhost"
            self.redact.secrets.append(self.password)
            execute(cur, "CREATE USER %s@%s IDENTIFIED BY %s", (self.name, self.host, self.password),
                    what="creating the temporary loading account %s@%s" % (self.name, self.host),
                    state="the live database was not touched (the empty staging database %s is dropped)"
                    % self.staging)
            try:
                execute(cur, "GRANT ALL PRIVILEGES ON %s.* TO %%s@%%s" % q(self.staging), (self.name, self.host),
                        what="granting the loading account privileges on %s" % self.staging,
                        state="the live database was not touched")
            except BaseException:
                self.__exit__()
                raise
        return self.admin.copy(user=self.name, password=self.password, database=None)

    def __exit__(self, *exc):
        try:
            with self.conn.cursor() as cur:
                cur.execute("DROP USER IF EXISTS %s@%s", (self.name, self.host))
        except Exception:  # pylint: disable=broad-except
            pass  # the next restore drops it (cleanup_stale)


def check_staging(conn, staging, expected):
    with conn.cursor() as cur:
        have = set(_tables(cur, staging))
        want = set(expected)
        if have != want:
            raise OperationFailed("the staging database %s does not hold the archive's tables (missing: %s; "
                                  "extra: %s); the live database was not touched" % (
                                      staging, ", ".join(sorted(want - have)) or "none",
                                      ", ".join(sorted(have - want)) or "none"))
        wrong = []
        for table in sorted(want):
            cur.execute("SELECT COUNT(*) FROM %s.%s" % (q(staging), q(table)))
            rows = int(cur.fetchone()[0])
            if rows != int(expected[table]):
                wrong.append("%s has %d rows, the backup had %s" % (table, rows, expected[table]))
        if wrong:
            raise OperationFailed("the staging database %s does not match the backup: %s; the live database was "
                                  "not touched" % (staging, "; ".join(wrong[:10])))


def swap(conn, live, staging, pre, charset, collation, lock_wait):
    """Move live -> pre and staging -> live in one RENAME TABLE; return (pre or None, tables)."""
    untouched = "the live database %s was not changed" % live
    with conn.cursor() as cur:
        cur.execute("SET SESSION lock_wait_timeout = %s", (int(lock_wait),))
        live_row = _schema_exists(cur, live)
        staging_tables = _tables(cur, staging)
    new_objects = Objects.read(conn, staging).without_definers(staging)
    new_objects.drop_triggers(conn, staging)
    with conn.cursor() as cur:
        if live_row:
            old_objects = Objects.read(conn, live)
            live_tables = _tables(cur, live)
            execute(cur, "CREATE DATABASE %s CHARACTER SET %s COLLATE %s" % (q(pre), live_row[0], live_row[1]),
                    what="creating the pre-restore database %s" % pre, state=untouched)
        else:
            old_objects = Objects()
            live_tables = []
            execute(cur, "CREATE DATABASE %s CHARACTER SET %s COLLATE %s" % (q(live), charset, collation),
                    what="creating the database %s" % live, state="nothing was changed")
        old_objects.drop_triggers(conn, live)
        pairs = ["%s.%s TO %s.%s" % (q(live), q(t), q(pre), q(t)) for t in live_tables]
        pairs += ["%s.%s TO %s.%s" % (q(staging), q(t), q(live), q(t)) for t in staging_tables]
        try:
            if pairs:
                cur.execute("RENAME TABLE " + ", ".join(pairs))
        except Exception as exc:  # pylint: disable=broad-except
            try:
                old_objects.create_triggers(conn, live)
            finally:
                if live_row:
                    cur.execute("DROP DATABASE IF EXISTS %s" % q(pre))
            code, text = _db_error(exc)
            hint = ("another session holds these tables (a running Pandora server, console or a long query): "
                    "stop them, or raise lock_wait_timeout (now %ss), and run the restore again" % lock_wait
                    if code in (1205, 1213) else NEEDS_ROOT if code in PRIVILEGE_ERRORS else
                    "fix the cause and run the restore again")
            raise OperationFailed("the swap (one RENAME TABLE) failed (MariaDB error %s: %s); the live database "
                                  "%s keeps its content. %s" % (code, text, live, hint))
    try:
        new_objects.replace_objects_in(conn, live, old_objects)
        new_objects.create_triggers(conn, live)
        with conn.cursor() as cur:
            cur.execute("DROP DATABASE %s" % q(staging))
    except Exception as exc:  # pylint: disable=broad-except
        code, text = _db_error(exc)
        kept = ("the previous content is kept in %s (not dropped)" % pre) if live_row else \
            "there was no previous content"
        raise OperationFailed(
            "the swap is done: the live database %s holds the restored tables, but recreating its views, routines, "
            "events and triggers and dropping %s failed afterwards (MariaDB error %s: %s); %s. %s; then recreate "
            "the missing objects from the archive's dump, or run the restore again" % (
                live, staging, code, text, kept,
                "Another session held a lock (raise lock_wait_timeout, stop the Pandora server)"
                if code in (1205, 1213) else "Fix the cause"), pre_restore_database=pre if live_row else None)
    return (pre if live_row else None), staging_tables


def grant(conn, live, user, hosts, warnings):
    if not user:
        return []
    with conn.cursor() as cur:
        if not hosts:
            try:
                cur.execute("SELECT Host FROM mysql.user WHERE User = %s ORDER BY Host", (user,))
                hosts = [row[0] for row in cur.fetchall()]
            except Exception as exc:  # pylint: disable=broad-except
                warnings.append("cannot read mysql.user to find the hosts of %s (%s); set grant_hosts" % (user, exc))
                return []
            if not hosts:
                warnings.append("the database user %s has no account on this server; no privileges granted" % user)
                return []
        done = []
        for host in hosts:
            try:
                cur.execute("GRANT ALL PRIVILEGES ON %s.* TO %%s@%%s" % q(live), (user, host))
                done.append("%s@%s" % (user, host))
            except Exception as exc:  # pylint: disable=broad-except
                warnings.append("GRANT ALL PRIVILEGES ON %s.* TO %s@%s failed: %s" % (live, user, host, exc))
    return done


STALE_STAGING = r"^%s_restore_\d{14}$"
STALE_PRE = r"^%s_pre_restore_\d{14}$"


def cleanup_stale(conn, live, warnings, accounts_removed=None):
    """Drop staging databases and loading accounts left by killed restores (we hold the restore lock),
    and empty pre-restore databases."""
    removed = []
    with conn.cursor() as cur:
        try:
            cur.execute("SELECT User, Host FROM mysql.user WHERE User LIKE %s",
                        (loader_prefix(live).replace("_", "\\_") + "%",))
            accounts = cur.fetchall()
        except Exception as exc:  # pylint: disable=broad-except
            accounts = []
            warnings.append("cannot read mysql.user to drop the loading accounts of killed restores (%s)"
                            % (_db_error(exc)[1],))
        for user, host in accounts:
            cur.execute("DROP USER IF EXISTS %s@%s", (user, host))
            if accounts_removed is not None:
                accounts_removed.append("%s@%s" % (user, host))
        cur.execute("SELECT schema_name FROM information_schema.schemata")
        names = [row[0] for row in cur.fetchall()]
        for name in names:
            if re.match(STALE_STAGING % re.escape(live), name):
                cur.execute("DROP DATABASE %s" % q(name))
                removed.append(name)
            elif re.match(STALE_PRE % re.escape(live), name):
                if not _tables(cur, name):
                    cur.execute("DROP DATABASE %s" % q(name))
                    removed.append(name)
                else:
                    warnings.append("the pre-restore database %s from an earlier restore still exists; drop it "
                                    "when you no longer need it" % name)
    return removed


class RestoreLock(object):
    def __init__(self, conn, live):
        self.conn = conn
        self.name = ("%s_pandora_restore" % live)[:64]

    def __enter__(self):
        with self.conn.cursor() as cur:
            cur.execute("SELECT GET_LOCK(%s, 0)", (self.name,))
            if cur.fetchone()[0] != 1:
                raise LockBusy("another restore of this database is running (it holds the lock %s)" % self.name)
        return self

    def __exit__(self, *exc):
        try:
            with self.conn.cursor() as cur:
                cur.execute("SELECT RELEASE_LOCK(%s)", (self.name,))
        except Exception:  # pylint: disable=broad-except
            pass


RESTORE_PRIVILEGES = ("CREATE", "DROP", "CREATE USER", "ALTER", "INSERT", "LOCK TABLES")


def check_privileges(settings):
    """Refuse (before anything changes, also in check mode) a login without the privileges a restore uses."""
    admin = settings.copy()
    admin.database = None
    conn = connect(admin)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER()")
            account = cur.fetchone()[0]
            try:
                cur.execute("SELECT CURRENT_ROLE()")
                role = cur.fetchone()[0]
            except Exception:  # pylint: disable=broad-except
                role = None
            if role:
                return  # privileges through a role: the statements themselves tell
            user, dummy, host = account.rpartition("@")
            grantee = "'%s'@'%s'" % (user, host)
            cur.execute("SELECT privilege_type, is_grantable FROM information_schema.user_privileges "
                        "WHERE grantee = %s", (grantee,))
            rows = cur.fetchall()
    finally:
        conn.close()
    have = set(row[0] for row in rows)
    grantable = any(row[1] == "YES" for row in rows)
    missing = [p for p in RESTORE_PRIVILEGES if p not in have]
    if not grantable:
        missing.append("GRANT OPTION")
    if missing:
        raise ConfigError("the login account %s lacks the global privilege(s) %s that a restore needs (it creates "
                          "a staging database and a temporary loading account, swaps the tables and drops the "
                          "previous ones); nothing was changed. %s" % (account, ", ".join(missing), NEEDS_ROOT))


def list_schemas(settings):
    admin = settings.copy()
    admin.database = None
    conn = connect(admin)
    try:
        return server_schemas(conn)
    finally:
        conn.close()


def server_schemas(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT schema_name FROM information_schema.schemata")
        return [row[0] for row in cur.fetchall()]


def restore_database(settings, opts, verified, src, ts, tmp_parent, redact, warnings):
    live = settings.database
    dbm = verified.manifest["database"]
    admin = settings.copy()
    admin.database = None
    conn = connect(admin)
    result = {"database": live}
    try:
        info = server_info(conn)
        client = client_tool(info, "client")
        with RestoreLock(conn, live), MaintenanceLock(conn, live, wait=0):
            accounts = []
            result["removed_stale_databases"] = cleanup_stale(conn, live, warnings, accounts)
            result["removed_stale_accounts"] = accounts
            result["removed_stale_scratch"] = clean_stale_workdirs(tmp_parent, WORKDIR_PREFIX)
            staging = db_name_with_suffix(live, "_restore_%s" % ts)
            pre = db_name_with_suffix(live, "_pre_restore_%s" % ts)
            charset = dbm.get("charset") or "utf8mb4"
            collation = dbm.get("collation") or "utf8mb4_general_ci"
            schemas = [n for n in server_schemas(conn) if n != staging] + [live, dbm.get("name") or live]
            with conn.cursor() as cur:
                execute(cur, "CREATE DATABASE %s CHARACTER SET %s COLLATE %s" % (q(staging), charset, collation),
                        what="creating the staging database %s as %s" % (staging, settings.user),
                        state="nothing was changed (the live database %s was not touched)" % live)
            try:
                with LoadingAccount(conn, admin, live, staging, redact) as loader:
                    with WorkDir(tmp_parent, WORKDIR_PREFIX) as workdir:
                        load_dump(src, verified, client, loader, staging, workdir, opts["compression"], redact,
                                  schemas)
                check_staging(conn, staging, dbm["tables"])
                kept, tables = swap(conn, live, staging, pre, charset, collation, opts["lock_wait_timeout"])
            except BaseException:
                try:
                    with conn.cursor() as cur:
                        cur.execute("DROP DATABASE IF EXISTS %s" % q(staging))
                except Exception:  # pylint: disable=broad-except
                    pass
                raise
            if kept and not opts["keep_pre_restore"]:
                with conn.cursor() as cur:
                    execute(cur, "DROP DATABASE %s" % q(kept), what="dropping the pre-restore database %s" % kept,
                            state="the restore itself is done (the live database %s holds the archive's content)"
                            % live,
                            hint="drop %s by hand when nothing holds its tables any more" % kept)
                kept = None
            result["pre_restore_database"] = kept
            result["tables"] = dict((t, dbm["tables"][t]) for t in tables)
    finally:
        conn.close()
    return result


def _grant_step(settings, opts, pandora_user, warnings):
    user = opts["grant_user"] or pandora_user
    if not user or user == settings.user:
        return []
    admin = settings.copy()
    admin.database = None
    conn = connect(admin)
    try:
        return grant(conn, settings.database, user, opts["grant_hosts"], warnings)
    finally:
        conn.close()


# -- entry point ---------------------------------------------------------------------
@guarded
def _restore(settings, check_mode, redact, **options):
    opts = options_with_defaults(options)
    started = time.time()
    src = opts["src"]
    if not src:
        raise ConfigError("src (the archive to restore) is required for state=restored")
    if not os.path.isabs(src):
        raise ConfigError("src must be an absolute path, not %r" % src)
    if not os.path.isfile(src):
        raise ConfigError("the archive %s does not exist or is not a file" % src)
    restore_db = bool(opts["restore_db"])
    restore_files = bool(opts["restore_files"])
    restore_console = bool(opts["restore_console"])
    if not (restore_db or restore_files or restore_console):
        raise ConfigError("nothing to restore: restore_db, restore_files and restore_console are all false")
    warnings = []
    ts = time.strftime("%Y%m%d%H%M%S")
    src_dir = os.path.dirname(src)
    tmp_parent = opts["tmp_dir"] or src_dir
    saved_dir = opts["saved_files_dir"] or os.path.join(src_dir, "pandorafms_restore_saved_%s" % ts)
    # Everything that can refuse the run comes first, the same in check mode: the options, the archive
    # (manifest, every member's name and type, the dump's statements), the targets on disk.
    if restore_db:
        check_writable("tmp_dir", tmp_parent)
    if restore_files or restore_console:
        check_writable("saved_files_dir", saved_dir)
    known = []
    if restore_db:
        try:
            db_settings = resolve_connection(settings, opts)[0]
        except ConfigError:
            if not restore_console:
                raise
            db_settings = None  # the credentials come with the console restored first
        if db_settings is not None:
            redact.add(db_settings)
            check_privileges(db_settings)
            known = [db_settings.database] + list_schemas(db_settings)
    verified = verify_archive(src, opts["compression"], need_dump=restore_db, schemas=known)
    manifest = verified.manifest
    first_keys = ["console_path"] if restore_console else []
    later_keys = [k for k in FILE_ROOTS if restore_files and k not in first_keys]
    first_maps = root_maps(manifest, first_keys, opts, warnings)
    later_maps = root_maps(manifest, later_keys, opts, warnings)
    check_members(src, verified, first_maps + later_maps)
    result = {"changed": True, "archive": src, "manifest": public_manifest(manifest), "warnings": warnings,
              "database": None, "pre_restore_database": None, "restored_files": [], "saved_files_dir": None}

    if check_mode:
        plan = {"verified": True, "members": len(verified.members) + 1,
                "files_to_write": plan_files(verified, first_maps + later_maps), "database": None}
        if restore_db:
            plan["database"] = _plan_database(settings, opts, manifest, ts, restore_console, redact)
            result["database"] = plan["database"].get("name")
        result["plan"] = plan
        result["changed"] = bool(restore_db or plan["files_to_write"])
        result["seconds"] = round(time.time() - started, 3)
        return result

    saver = Saver(saved_dir)
    restored = []
    if first_maps:
        restored += restore_roots(src, verified, first_maps, saver, opts["compression"])
    grants = []
    if restore_db:
        settings, pandora_user = resolve_connection(settings, opts)
        redact.add(settings)
        if not known:
            check_privileges(settings)
        result.update(restore_database(settings, opts, verified, src, ts, tmp_parent, redact, warnings))
        grants = _grant_step(settings, opts, pandora_user, warnings)
    if later_maps:
        restored += restore_roots(src, verified, later_maps, saver, opts["compression"])
    result.update({
        "restored_files": restored,
        "saved_files_dir": saved_dir if saver.used else None,
        "saved_files": saver.saved,
        "grants": grants,
        "changed": bool(restore_db or restored),
        "seconds": round(time.time() - started, 3),
    })
    return result


def _plan_database(settings, opts, manifest, ts, restore_console, redact):
    dbm = manifest["database"]
    plan = {"name": None, "tables": len(dbm["tables"]), "rows": sum(int(v) for v in dbm["tables"].values()),
            "schema": dbm.get("schema"), "backup_server": dbm.get("server")}
    try:
        settings, pandora_user = resolve_connection(settings, opts)
    except ConfigError:
        if restore_console:
            plan["name"] = dbm.get("name")
            plan["note"] = "credentials will be read from the restored console's include/config.php"
            return plan
        raise
    redact.add(settings)
    live = settings.database
    plan["name"] = live
    plan["staging_database"] = db_name_with_suffix(live, "_restore_%s" % ts)
    plan["pre_restore_database"] = db_name_with_suffix(live, "_pre_restore_%s" % ts)
    plan["keep_pre_restore"] = bool(opts["keep_pre_restore"])
    admin = settings.copy()
    admin.database = None
    check_privileges(settings)
    conn = connect(admin)
    try:
        info = server_info(conn)
        plan["server"] = info.as_dict()
        plan["client_tool"] = client_tool(info, "client")
        with conn.cursor() as cur:
            plan["live_exists"] = bool(_schema_exists(cur, live))
            plan["live_tables"] = len(_tables(cur, live)) if plan["live_exists"] else 0
    finally:
        conn.close()
    user = opts["grant_user"] or pandora_user
    plan["grant_user"] = None if user == settings.user else user
    return plan


def restore(settings=None, check_mode=False, **options):
    return _restore(settings, check_mode, **options)
