# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup of a Pandora FMS installation: the database dump and the files, in one archive.

Entry points (also called outside Ansible by the scheduled backup job):

* :func:`run_backup` (``state: present``) writes
  ``<dest>/pandorafms_backup_<YYYY-MM-DD-HH-MM-SS>.tar.gz``;
* :func:`run_restore` (``state: restored``) is in ``_restore.py``.

The pipeline of a backup, with no uncompressed copy of the dump on disk::

    mariadb-dump --defaults-extra-file=<0600 file> --single-transaction ...
        | Python (sha256, rows per table, end marker)
        | pigz/gzip
        > <dest>/.pandorafms_backup_<ts>.tar.gz.part      (mode 0600)

then the files of ``config_dir``, ``spool_dir`` and ``console_path`` (dotfiles
included), then ``manifest.json``; the temporary file is fsynced and renamed to
its final name only when everything succeeded.  See ``_archive.py`` for the
file layout.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import fcntl
import grp
import json
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tarfile
import tempfile
import time

from ansible_collections.pandorafms.server.plugins.module_utils._archive import (
    CHUNK, MANIFEST_NAME, ArchiveWriter, _grow_pipe, choose_compressor, find_tool, write_all)
from ansible_collections.pandorafms.server.plugins.module_utils._connection import (
    connect, defaults_text, resolve_settings, server_info)
from ansible_collections.pandorafms.server.plugins.module_utils._errors import (
    ConfigError, LockBusy, MissingDependency, OperationFailed, PandoraError, PreconditionFailed)
from ansible_collections.pandorafms.server.plugins.module_utils._serverconf import (
    read_console_config, read_server_conf, server_conf_connection)

COLLECTION = "pandorafms.server"
COLLECTION_VERSION = "0.1.0"
FORMAT = "pandorafms.server/backup"
FORMAT_VERSION = 1
ARCHIVE_RE = re.compile(r"^pandorafms_backup_(\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)\.tar\.gz$")
PARTIAL_RE = re.compile(r"^\.pandorafms_backup_\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d\.tar\.gz\.part$")
LOCK_FILE = ".pandorafms_backup.lock"
SCHEMA_TOKENS = ("db_scheme_first_version", "db_scheme_version", "db_scheme_build", "MR", "current_package")
# Rough ratios measured on Pandora data (9.7M rows: 496 MB InnoDB data -> 46 MB gzip dump).
DB_ESTIMATE_RATIO = 0.1
FILES_ESTIMATE_RATIO = 0.5

FILE_ROOTS = ("config_dir", "spool_dir", "console_path")
WORKDIR_PREFIX = ".pandorafms-backup-"
DEFAULTS = {
    "state": "present",
    "dest": None,
    "src": None,
    "console_path": "/var/www/html/pandora_console",
    "config_dir": "/etc/pandora",
    "spool_dir": "/var/spool/pandora/data_in",
    "include_db": True,
    "include_files": True,
    "keep": 0,
    "compression": "auto",
    "restore_db": True,
    "restore_files": False,
    "restore_console": False,
    "keep_pre_restore": False,
    "grant_user": None,
    "grant_hosts": None,
    "tmp_dir": None,
    "saved_files_dir": None,
    "config_file": None,
    "pandora_server_conf": None,
    "ha_hosts_file": None,
    "lock_wait_timeout": 300,
}


MAX_LOCK_WAIT = 31536000  # MariaDB's own maximum for lock_wait_timeout (one year)
ABSOLUTE_PATHS = ("dest", "src", "tmp_dir", "saved_files_dir", "console_path", "config_dir", "spool_dir")


def options_with_defaults(options):
    """The options merged with :data:`DEFAULTS`, every value checked (the same for check mode and run)."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise ConfigError("unknown backup option(s): %s" % ", ".join(unknown))
    merged = dict(DEFAULTS)
    for key, value in options.items():
        if value is not None:
            merged[key] = value
    validate_options(merged)
    return merged


def validate_options(opts):
    """Refuse, by name, every value out of range (raises ConfigError)."""
    for key in ABSOLUTE_PATHS:
        value = opts.get(key)
        if value and not os.path.isabs(value):
            raise ConfigError("%s must be an absolute path, not %r (a relative path would land in the module's "
                              "working directory)" % (key, value))
    for key in ("keep", "lock_wait_timeout"):
        value = opts.get(key)
        try:
            opts[key] = int(value)
        except (TypeError, ValueError):
            raise ConfigError("%s must be a whole number, not %r" % (key, value))
    if opts["keep"] < 0:
        raise ConfigError("keep must be 0 (keep every archive) or a positive number, not %d" % opts["keep"])
    if not 1 <= opts["lock_wait_timeout"] <= MAX_LOCK_WAIT:
        raise ConfigError("lock_wait_timeout must be between 1 and %d seconds, not %d (the server treats a "
                          "smaller value as 0 and every statement after the swap would fail at once)"
                          % (MAX_LOCK_WAIT, opts["lock_wait_timeout"]))
    if opts.get("compression") not in ("auto", "pigz", "gzip"):
        raise ConfigError("compression must be auto, pigz or gzip, not %r" % opts.get("compression"))
    hosts = opts.get("grant_hosts")
    if hosts is not None:
        if isinstance(hosts, str) or not all(isinstance(h, str) and h.strip() for h in hosts):
            raise ConfigError("grant_hosts must be a list of host names (for example [localhost, '%%']), not %r"
                              % (hosts,))
        if not hosts:
            raise ConfigError("grant_hosts is an empty list: leave it out to grant every host the user has, "
                              "or name the hosts")
    if opts.get("grant_user") is not None and not str(opts["grant_user"]).strip():
        raise ConfigError("grant_user is empty: leave it out or name the database user to grant")


def check_writable(key, path):
    """Refuse a directory (``key`` names the option) that the run could not create or write into."""
    probe = path
    while not os.path.lexists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise ConfigError("%s %s cannot be used: %s exists and is not a directory" % (key, path, probe))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError("%s %s cannot be used: %s is not writable by this user (or its filesystem is "
                          "read-only); choose another %s or fix its permissions" % (key, path, probe, key))


class PipedDefaults(object):
    """``with PipedDefaults(settings) as (option, fds):`` hands a client tool its option file through a pipe.

    The text (it holds the password) goes into a pipe whose read end the child
    inherits (``pass_fds=fds``) and opens as ``--defaults-extra-file=/dev/fd/N``:
    it never touches a disk, so no kill at any moment can leave it behind, and
    no argv shows it.
    """

    def __init__(self, settings):
        self.settings = settings
        self.fd = None

    def __enter__(self):
        data = defaults_text(self.settings).encode("utf-8")
        if len(data) > 60000:
            raise ConfigError("the client options (paths of the TLS files) are too long")
        read_fd, write_fd = os.pipe()
        try:
            write_all(write_fd, data)  # smaller than a pipe's buffer: never blocks
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self.fd = read_fd
        return "--defaults-extra-file=/dev/fd/%d" % read_fd, (read_fd,)

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def timestamp(now=None):
    return time.strftime("%Y-%m-%d-%H-%M-%S", time.localtime(now))


class Redactor(object):
    """Masks every known secret in a text (messages, tool stderr)."""

    def __init__(self):
        self.secrets = []

    def add(self, settings):
        if settings is not None and settings.password and settings.password not in self.secrets:
            self.secrets.append(settings.password)

    def __call__(self, text):
        text = str(text)
        for secret in self.secrets:
            text = text.replace(secret, "********")
        return text


def guarded(func):
    """Run an entry point: every error leaves as a PandoraError with secrets masked."""
    def wrapper(settings=None, check_mode=False, **options):
        redact = Redactor()
        redact.add(settings)
        try:
            return func(settings, check_mode, redact, **options)
        except PandoraError as exc:
            exc.msg = redact(exc.msg)
            exc.args = (exc.msg,)
            raise
        except (IOError, OSError) as exc:
            raise OperationFailed(redact("%s: %s" % (getattr(exc, "filename", None) or "I/O error",
                                                     exc.strerror or exc)))
    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


# -- credentials ---------------------------------------------------------------
def resolve_connection(settings, opts):
    """``(settings, pandora_user)``: fill what the options left open from the Pandora configuration.

    With ``settings`` None the credentials come from ``pandora_server_conf`` and
    ``<console_path>/include/config.php`` (as upstream's script does).  Given
    settings without a database name take it from those files too.
    """
    console_conf = None
    console_path = opts.get("console_path")
    if console_path and os.path.isfile(os.path.join(console_path, "include", "config.php")):
        try:
            console_conf = read_console_config(console_path)
        except ConfigError:
            if settings is None:
                raise
            # Explicit login options were given; an odd config.php does not matter then.
    server_values = None
    if opts.get("pandora_server_conf"):
        server_values = read_server_conf(opts["pandora_server_conf"], opts.get("ha_hosts_file"))
    if settings is None:
        if not console_conf and not server_values:
            raise ConfigError(
                "no database credentials: give login_user/login_password (or pandora_server_conf), or a "
                "console_path whose include/config.php exists (%s has none)" % (console_path or "(unset)"))
        settings = resolve_settings(None, opts.get("config_file"),
                                    server_conf_connection(server_values) if server_values else None,
                                    console_conf)
    elif not settings.database:
        name = (console_conf or {}).get("database") or (server_values or {}).get("dbname")
        if name:
            settings = settings.copy(database=name)
    if not settings.database:
        raise ConfigError("no database name: set login_db, pandora_server_conf, or console_path with an "
                          "include/config.php")
    pandora_user = (console_conf or {}).get("user") or (server_values or {}).get("dbuser")
    return settings, pandora_user


def client_tool(info, kind):
    """Path of the installed dump (``kind='dump'``) or command-line client (``'client'``)."""
    if kind == "dump":
        names = info.dump_tool_names() if info is not None else ("mariadb-dump", "mysqldump")
    else:
        names = ("mariadb", "mysql") if info is None or info.is_mariadb else ("mysql", "mariadb")
    path = find_tool(*names)
    if not path:
        raise MissingDependency("none of %s is installed on this host; install the MariaDB/MySQL client "
                                "(Debian: mariadb-client)" % " or ".join(names))
    return path


def tool_version(path):
    try:
        out = subprocess.run([path, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=30, check=False).stdout
        return out.decode("utf-8", "replace").strip()
    except (OSError, subprocess.SubprocessError):
        return None


WORKDIR_LOCK = ".in-use"


class WorkDir(object):
    """A private (0700) scratch directory removed afterwards.

    Its owner holds an flock on ``<dir>/.in-use`` while it works; a directory
    whose lock is free was left by a killed run and :func:`clean_stale_workdirs`
    removes it.
    """

    def __init__(self, parent, prefix):
        self.parent = parent
        self.prefix = prefix
        self.path = None
        self.fd = None

    def __enter__(self):
        if self.parent:
            os.makedirs(self.parent, exist_ok=True)
        self.path = tempfile.mkdtemp(prefix=self.prefix, dir=self.parent)
        os.chmod(self.path, 0o700)
        self.fd = os.open(os.path.join(self.path, WORKDIR_LOCK), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self.path

    def __exit__(self, *exc):
        if self.path:
            shutil.rmtree(self.path, ignore_errors=True)
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def clean_stale_workdirs(parent, prefix):
    """Remove the scratch directories ``<parent>/<prefix>*`` of killed runs; return their paths."""
    removed = []
    if not parent or not os.path.isdir(parent):
        return removed
    for name in sorted(os.listdir(parent)):
        path = os.path.join(parent, name)
        if not name.startswith(prefix) or os.path.islink(path) or not os.path.isdir(path):
            continue
        lock = os.path.join(path, WORKDIR_LOCK)
        fd = None
        try:
            fd = os.open(lock, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (IOError, OSError) as exc:
            if fd is not None and exc.errno in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                continue  # a running job's
            if fd is not None:
                os.close(fd)
                fd = None
            if exc.errno != errno.ENOENT:
                continue
            # no lock file: made by a version without one (or killed at its very start)
        shutil.rmtree(path, ignore_errors=True)
        if fd is not None:
            os.close(fd)
        removed.append(path)
    return removed


def db_facts(conn, database):
    """Schema tokens, charset, table estimates and object counts of ``database``."""
    facts = {"schema": {}, "charset": None, "collation": None, "tables": {}, "data_bytes": 0,
             "views": [], "routines": 0, "triggers": 0, "events": 0}
    with conn.cursor() as cur:
        cur.execute("SELECT default_character_set_name, default_collation_name FROM information_schema.schemata"
                    " WHERE schema_name = %s", (database,))
        row = cur.fetchone()
        if row is None:
            raise PreconditionFailed("the database %s does not exist on the server" % database)
        facts["charset"], facts["collation"] = row
        cur.execute("SELECT table_name, table_type, COALESCE(table_rows, 0), COALESCE(data_length, 0)"
                    " FROM information_schema.tables WHERE table_schema = %s", (database,))
        for name, kind, rows, size in cur.fetchall():
            if kind == "VIEW":
                facts["views"].append(name)
            else:
                facts["tables"][name] = int(rows)
                facts["data_bytes"] += int(size)
        cur.execute("SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = %s", (database,))
        facts["routines"] = int(cur.fetchone()[0])
        cur.execute("SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = %s", (database,))
        facts["triggers"] = int(cur.fetchone()[0])
        cur.execute("SELECT COUNT(*) FROM information_schema.events WHERE event_schema = %s", (database,))
        facts["events"] = int(cur.fetchone()[0])
        if "tconfig" in facts["tables"]:
            cur.execute("SELECT token, value FROM `%s`.tconfig WHERE token IN (%s) ORDER BY id_config" % (
                database.replace("`", "``"), ", ".join(["%s"] * len(SCHEMA_TOKENS))), SCHEMA_TOKENS)
            for token, value in cur.fetchall():
                facts["schema"].setdefault(token, value)
    facts["views"].sort()
    return facts


# -- the dump stream -----------------------------------------------------------
_INSERT_RE = re.compile(rb"INSERT INTO `((?:[^`]|``)+)` VALUES( ?)")
_CREATE_RE = re.compile(rb"CREATE TABLE `((?:[^`]|``)+)`")
_STRING_RE = re.compile(rb"'[^'\\]*(?:\\.[^'\\]*)*'")


def _name(raw):
    return raw.replace(b"``", b"`").decode("utf-8", "surrogateescape")


class DumpCounter(object):
    """Counts the rows of every table in a mysqldump/mariadb-dump stream, at C speed.

    Handles both layouts of extended INSERTs: MariaDB >= 10.11's one row per
    line (``VALUES\\n(...),\\n(...);``) and the classic one statement per line
    (``VALUES (...),(...);``, where string literals are skipped so a ``),(``
    inside a value is not counted).  Newlines inside values are always escaped
    by the dump tools, so line starts are reliable; ``DELIMITER`` blocks
    (routine and trigger bodies) are skipped.  Also records every
    ``CREATE TABLE`` (tables without rows count 0) and whether the stream ends
    with the dump tool's ``-- Dump completed`` line.
    """

    def __init__(self):
        self.rows = {}
        self._table = None
        self._one_per_line = False
        self._delimiter = False
        self._parts = []
        self._tail = b""

    def feed(self, chunk):
        self._tail = (self._tail + chunk[-256:])[-256:]
        cut = chunk.rfind(b"\n")
        if cut < 0:
            self._parts.append(chunk)
            return
        self._parts.append(chunk[:cut + 1])
        region = b"".join(self._parts) if len(self._parts) > 1 else self._parts[0]
        self._parts = [chunk[cut + 1:]] if cut + 1 < len(chunk) else []
        self._region(region)

    def close(self):
        if self._parts:
            self._region(b"".join(self._parts) + b"\n")
            self._parts = []

    @property
    def completed(self):
        lines = self._tail.rstrip(b"\n").split(b"\n")
        return bool(lines) and lines[-1].startswith(b"-- Dump completed")

    def _region(self, data):
        pos = 0
        end = len(data)
        while pos < end:
            if self._table is not None:
                stop = data.find(b";\n", pos)
                seg_end = stop + 2 if stop >= 0 else end
                if self._one_per_line:
                    count = data.count(b"\n(", pos, seg_end)
                    if data[pos:pos + 1] == b"(":
                        count += 1
                else:
                    body = data[pos:seg_end]
                    if b"'" in body:
                        body = _STRING_RE.sub(b"", body)
                    count = body.count(b"),(") + 1
                self.rows[self._table] = self.rows.get(self._table, 0) + count
                if stop < 0:
                    return
                self._table = None
                pos = seg_end
                continue
            eol = data.find(b"\n", pos)
            if eol < 0:
                eol = end
            if self._delimiter:
                if data[pos:eol].strip() == b"DELIMITER ;":
                    self._delimiter = False
            elif data.startswith(b"INSERT INTO `", pos):
                match = _INSERT_RE.match(data, pos, eol)
                if match:
                    self._table = _name(match.group(1))
                    self._one_per_line = match.group(2) == b"" and match.end() == eol
                    pos = eol + 1 if self._one_per_line else match.end()
                    continue
            elif data.startswith(b"CREATE TABLE `", pos):
                match = _CREATE_RE.match(data, pos, eol)
                if match:
                    self.rows.setdefault(_name(match.group(1)), 0)
            elif data.startswith(b"DELIMITER ", pos):
                self._delimiter = data[pos:eol].strip() != b"DELIMITER ;"
            pos = eol + 1


def dump_command(tool, option, database):
    """``option`` is ``--defaults-extra-file=...``."""
    return [tool, option, "--single-transaction", "--quick", "--routines",
            "--events", "--triggers", "--max-allowed-packet=1G", "--default-character-set=utf8mb4",
            "--", database]


def stream_dump(tool, settings, database, workdir, write, redact):
    """Run the dump tool; pass its output through ``write``; return ``(DumpCounter, warnings)``."""
    counter = DumpCounter()
    errpath = os.path.join(workdir, "dump.err")
    with PipedDefaults(settings) as (option, fds):
        with open(errpath, "wb") as errfile:
            proc = subprocess.Popen(dump_command(tool, option, database), stdout=subprocess.PIPE,
                                    stderr=errfile, close_fds=True, pass_fds=fds)
        _grow_pipe(proc.stdout)
        fd = proc.stdout.fileno()
        try:
            while True:
                data = os.read(fd, CHUNK)
                if not data:
                    break
                counter.feed(data)
                write(data)
        except BaseException:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
            raise
        proc.stdout.close()
        rc = proc.wait()
    counter.close()
    with open(errpath, "rb") as handle:
        err = redact(handle.read().decode("utf-8", "replace").strip())
    name = os.path.basename(tool)
    if rc != 0:
        raise OperationFailed("%s of database %s failed (exit %s): %s" % (
            name, database, rc, err[-2000:] or "no message"))
    if not counter.completed:
        raise OperationFailed("%s of database %s ended without its '-- Dump completed' line: the dump is "
                              "incomplete%s" % (name, database, (": " + err[-2000:]) if err else ""))
    return counter, [line for line in err.splitlines() if line.strip()]


# -- files -------------------------------------------------------------------
class _Names(object):
    def __init__(self):
        self.users = {}
        self.groups = {}

    def user(self, uid):
        if uid not in self.users:
            try:
                self.users[uid] = pwd.getpwuid(uid).pw_name
            except KeyError:
                self.users[uid] = ""
        return self.users[uid]

    def group(self, gid):
        if gid not in self.groups:
            try:
                self.groups[gid] = grp.getgrgid(gid).gr_name
            except KeyError:
                self.groups[gid] = ""
        return self.groups[gid]


def tarinfo_for(name, st, names, linkname=None):
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid = st.st_uid
    info.gid = st.st_gid
    info.uname = names.user(st.st_uid)
    info.gname = names.group(st.st_gid)
    info.mtime = int(st.st_mtime)
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = linkname
    else:
        info.type = tarfile.REGTYPE
        info.size = st.st_size
    return info


def member_prefix(path):
    return os.path.normpath(path).strip("/")


def walk_root(root, excluded):
    """Yield ``(path, lstat)`` for ``root`` and everything under it, sorted, dotfiles included.

    Symbolic links are yielded, never followed; ``excluded`` real paths are skipped.
    """
    st = os.stat(root)
    yield root, st
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            continue
        subdirs = []
        for name in names:
            path = os.path.join(folder, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if os.path.realpath(path) in excluded:
                    continue
                subdirs.append(path)
            yield path, st
        stack.extend(reversed(subdirs))


def scan_roots(opts):
    """``[(key, path, exists)]`` for the file roots of a backup."""
    out = []
    for key in FILE_ROOTS:
        path = opts.get(key)
        if not path:
            continue
        if not os.path.isabs(path):
            raise ConfigError("%s must be an absolute path, not %r" % (key, path))
        out.append((key, os.path.normpath(path), os.path.isdir(path)))
    return out


def estimate_files(roots, excluded):
    count = 0
    size = 0
    for dummy_key, root, exists in roots:
        if not exists:
            continue
        for dummy_path, st in walk_root(root, excluded):
            count += 1
            if stat.S_ISREG(st.st_mode):
                size += st.st_size
    return count, size


def add_root(writer, key, root, excluded, names, warnings):
    """Archive one root; return its manifest entry."""
    prefix = member_prefix(root)
    entry = {"path": root, "member": prefix, "files": 0, "bytes": 0}
    for path, st in walk_root(root, excluded):
        rel = os.path.relpath(path, root)
        name = prefix if rel == "." else prefix + "/" + rel
        if name in writer.members:
            continue  # roots nested in one another
        if stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(path)
            except FileNotFoundError:
                continue
            writer.add_special(tarinfo_for(name, st, names, target))
        elif stat.S_ISDIR(st.st_mode):
            writer.add_special(tarinfo_for(name, st, names))
        elif stat.S_ISREG(st.st_mode):
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            except FileNotFoundError:
                warnings.append("%s disappeared during the backup (not archived)" % path)
                continue
            with os.fdopen(fd, "rb") as handle:
                fst = os.fstat(fd)
                dummy_sha, changed = writer.add_file(tarinfo_for(name, fst, names), handle)
            if changed:
                warnings.append("%s changed while it was archived" % path)
            entry["files"] += 1
            entry["bytes"] += fst.st_size
        else:
            warnings.append("%s is not a regular file, directory or link (not archived)" % path)
    return entry


# -- destination handling ----------------------------------------------------
class DestLock(object):
    """An exclusive flock on ``<dest>/.pandorafms_backup.lock``: one backup per destination."""

    def __init__(self, dest):
        self.path = os.path.join(dest, LOCK_FILE)
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (IOError, OSError) as exc:
            os.close(self.fd)
            self.fd = None
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise LockBusy("another backup into %s is running (it holds %s)" % (
                    os.path.dirname(self.path), self.path))
            raise
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def check_dest(dest):
    if not dest:
        raise ConfigError("dest is required for a backup (state=present)")
    if not os.path.isabs(dest):
        raise ConfigError("dest must be an absolute path, not %r (upstream's script loses the archive with a "
                          "relative -d; this module refuses it)" % dest)
    return os.path.normpath(dest)


def prepare_dest(dest):
    """Create ``dest`` (mode 0700) when it is missing."""
    if not os.path.isdir(dest):
        if os.path.exists(dest):
            raise ConfigError("dest %s exists and is not a directory" % dest)
        os.makedirs(dest, 0o700)
        os.chmod(dest, 0o700)
    return os.path.normpath(dest)


def archive_name(ts):
    return "pandorafms_backup_%s.tar.gz" % ts


def rotate(dest, keep):
    if not keep or keep < 1:
        return []
    names = sorted((n for n in os.listdir(dest) if ARCHIVE_RE.match(n)), reverse=True)
    removed = []
    for name in names[keep:]:
        os.unlink(os.path.join(dest, name))
        removed.append(os.path.join(dest, name))
    return removed


def sha256_file(path):
    import hashlib
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            data = handle.read(CHUNK)
            if not data:
                break
            digest.update(data)
    return digest.hexdigest()


def public_manifest(manifest):
    """The manifest without its per-member list (which can hold thousands of files)."""
    out = dict(manifest)
    out.pop("members", None)
    return out


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- backup ------------------------------------------------------------------
@guarded
def _backup(settings, check_mode, redact, **options):
    opts = options_with_defaults(options)
    started = time.time()
    include_db = bool(opts["include_db"])
    include_files = bool(opts["include_files"])
    if not include_db and not include_files:
        raise ConfigError("nothing to back up: include_db and include_files are both false")
    dest = check_dest(opts["dest"])
    keep = opts["keep"]
    compressor = choose_compressor(opts["compression"])
    roots = scan_roots(opts) if include_files else []
    tmp_parent = opts["tmp_dir"] or dest
    check_writable("dest", dest)
    check_writable("tmp_dir" if opts["tmp_dir"] else "dest", tmp_parent)
    excluded = set(os.path.realpath(p) for p in (dest, tmp_parent))
    warnings = []
    for key, path, exists in roots:
        if not exists:
            warnings.append("%s %s does not exist; not archived" % (key, path))

    database = None
    facts = None
    info = None
    tool = None
    if include_db:
        settings, dummy_user = resolve_connection(settings, opts)
        redact.add(settings)
        conn = connect(settings)
        try:
            info = server_info(conn)
            facts = db_facts(conn, settings.database)
        finally:
            conn.close()
        database = settings.database
        tool = client_tool(info, "dump")

    result = {"changed": True, "warnings": warnings, "database": database,
              "compression": compressor[0]}
    if check_mode:
        files, file_bytes = estimate_files(roots, excluded)
        estimate = int((facts["data_bytes"] if facts else 0) * DB_ESTIMATE_RATIO + file_bytes * FILES_ESTIMATE_RATIO)
        result.update({
            "archive": os.path.join(dest, archive_name(timestamp())),
            "estimated_size": estimate,
            "plan": {
                "dest": dest, "dest_exists": os.path.isdir(dest), "dump_tool": tool,
                "tables": sorted(facts["tables"]) if facts else [],
                "estimated_rows": facts["tables"] if facts else {},
                "database_data_bytes": facts["data_bytes"] if facts else 0,
                "files": files, "files_bytes": file_bytes,
                "roots": dict((k, {"path": p, "exists": e}) for k, p, e in roots),
                "keep": keep,
                "would_rotate": _would_rotate(dest, keep),
            },
            "seconds": round(time.time() - started, 3),
        })
        return result

    prepare_dest(dest)
    with DestLock(dest):
        for name in os.listdir(dest):
            if PARTIAL_RE.match(name):  # left by a killed run (we hold the lock)
                os.unlink(os.path.join(dest, name))
        result["removed_stale_scratch"] = clean_stale_workdirs(tmp_parent, WORKDIR_PREFIX)
        ts = timestamp()
        while os.path.exists(os.path.join(dest, archive_name(ts))):
            time.sleep(0.2)
            ts = timestamp()
        final = os.path.join(dest, archive_name(ts))
        partial = os.path.join(dest, "." + archive_name(ts) + ".part")
        writer = None
        try:
            with WorkDir(tmp_parent, WORKDIR_PREFIX) as workdir:
                excluded.add(os.path.realpath(workdir))
                writer = ArchiveWriter(partial, opts["compression"])
                manifest = {
                    "format": FORMAT, "format_version": FORMAT_VERSION,
                    "collection": {"name": COLLECTION, "version": COLLECTION_VERSION},
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "timestamp": ts, "host": socket.gethostname(),
                    "compression": writer.kind, "database": None, "files": {},
                }
                if include_db:
                    manifest["database"] = _archive_database(writer, tool, settings, facts, info, ts, workdir,
                                                             redact, warnings)
                names = _Names()
                for key, path, exists in roots:
                    if exists:
                        manifest["files"][key] = add_root(writer, key, path, excluded, names, warnings)
                    else:
                        manifest["files"][key] = {"path": path, "member": member_prefix(path), "files": 0,
                                                  "bytes": 0, "missing": True}
                manifest["members"] = writer.members
                data = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")
                minfo = tarfile.TarInfo(MANIFEST_NAME)
                minfo.mode = 0o600
                minfo.mtime = int(time.time())
                writer.finish(data, minfo)
                writer = None
                os.rename(partial, final)
                _fsync_dir(dest)
        except BaseException:
            if writer is not None:
                writer.abort()
            try:
                os.unlink(partial)
            except OSError:
                pass
            raise
        rotated = rotate(dest, keep)
    size = os.path.getsize(final)
    result.update({
        "archive": final,
        "size": size,
        "sha256": sha256_file(final),
        "tables": manifest["database"]["tables"] if manifest["database"] else {},
        "members": len(manifest["members"]) + 1,
        "manifest": public_manifest(manifest),
        "rotated": rotated,
        "seconds": round(time.time() - started, 3),
    })
    return result


def _would_rotate(dest, keep):
    if not keep or not os.path.isdir(dest):
        return []
    names = sorted((n for n in os.listdir(dest) if ARCHIVE_RE.match(n)), reverse=True)
    # The new archive counts as one of the ``keep``.
    return [os.path.join(dest, n) for n in names[keep - 1:]]


def _archive_database(writer, tool, settings, facts, info, ts, workdir, redact, warnings):
    member = "pandorafms_backup_%s.sql" % ts
    tinfo = tarfile.TarInfo(member)
    tinfo.mode = 0o600
    tinfo.mtime = int(time.time())
    state = {}

    def produce(write):
        state["counter"], state["warnings"] = stream_dump(tool, settings, settings.database, workdir, write,
                                                          redact)

    size, sha = writer.add_stream(tinfo, produce)
    warnings.extend("%s: %s" % (os.path.basename(tool), w) for w in state["warnings"])
    return {
        "name": settings.database,
        "server": info.as_dict(),
        "charset": facts["charset"], "collation": facts["collation"],
        "schema": facts["schema"],
        "dump": {"member": member, "tool": os.path.basename(tool), "tool_version": tool_version(tool),
                 "options": dump_command(tool, "X", settings.database)[2:-2],
                 "bytes": size, "sha256": sha},
        "tables": dict(sorted(state["counter"].rows.items())),
        "views": facts["views"], "routines": facts["routines"], "triggers": facts["triggers"],
        "events": facts["events"],
    }


def run_backup(settings=None, check_mode=False, **options):
    """Back up the database and files; return the result dict (see the module's RETURN)."""
    return _backup(settings, check_mode, **options)


def run_restore(settings=None, check_mode=False, **options):
    """Restore from ``src``; return the result dict (see the module's RETURN)."""
    from ansible_collections.pandorafms.server.plugins.module_utils._restore import restore
    return restore(settings, check_mode, **options)
