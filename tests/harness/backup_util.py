"""Helpers for the backup/restore tests: data, file trees, archive surgery, argv spies."""

import gzip
import io
import json
import os
import re
import shutil
import stat
import tarfile
import threading

from harness import datagen


class Checked(object):
    """A conftest Database whose checksums() runs one CHECKSUM TABLE over every table on one connection.

    Same values as ``Database.checksums`` (CHECKSUM TABLE of every table), without a
    new connection per table.
    """

    def __init__(self, db):
        self._db = db

    def __getattr__(self, name):
        return getattr(self._db, name)

    def checksums(self):
        conn = self._db.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW FULL TABLES WHERE Table_type <> 'VIEW'")
                tables = [row[0] for row in cur.fetchall()]
                if not tables:
                    return {}
                cur.execute("CHECKSUM TABLE " + ", ".join("`%s`" % t.replace("`", "``") for t in tables))
                return dict((row[0].split(".", 1)[1], row[1]) for row in cur.fetchall())
        finally:
            conn.close()


def fill(db, agents=2, days=2):
    conn = db.connect()
    try:
        datagen.generate(conn, agents=agents, days=days, events=300, traps=100, sessions=50, audit=100)
    finally:
        conn.close()


def scribble(db, marker=1):
    """Change, delete, drop and add data (so 'after' differs from a backup)."""
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION foreign_key_checks = 0")
            cur.execute("UPDATE tagente SET alias = CONCAT('changed-', %s, '-', id_agente)", (marker,))
            cur.execute("DELETE FROM tagente_datos WHERE id_agente_modulo %% 2 = %s", (marker % 2,))
            cur.execute("INSERT INTO tconfig (token, value) VALUES ('scribble', %s)", (str(marker),))
            cur.execute("DROP TABLE IF EXISTS tevent_comment")
            cur.execute("CREATE TABLE IF NOT EXISTS scribble_extra (id INT PRIMARY KEY)")
            cur.execute("INSERT IGNORE INTO scribble_extra VALUES (%s)", (marker,))
    finally:
        conn.close()


def databases(server, like):
    rows = server.execute("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s",
                          None, (like,))
    return sorted(r[0] for r in rows)


def make_tree(base, server_port=None, db_name=None, user=None, password=None):
    """config_dir, spool_dir and console_path under ``base`` with dotfiles, nesting and a link."""
    config = os.path.join(base, "etc", "pandora")
    spool = os.path.join(base, "var", "spool", "pandora", "data_in")
    console = os.path.join(base, "var", "www", "html", "pandora_console")
    for folder in (config, os.path.join(config, "conf.d"), os.path.join(spool, "conf"), os.path.join(spool, "md5"),
                   os.path.join(console, "include"), os.path.join(console, "images", ".data")):
        os.makedirs(folder, exist_ok=True)
    write(os.path.join(config, "pandora_server.conf"), "dbname %s\ndbuser %s\n" % (db_name, user))
    write(os.path.join(config, "conf.d", "second.conf"), "servername second\n")
    write(os.path.join(config, ".hidden_settings"), "secret-ish\n", 0o600)
    write(os.path.join(spool, "conf", "agent1.conf"), "agent_name agent1\n")
    write(os.path.join(spool, "md5", "agent1.md5"), "0123456789abcdef\n")
    write(os.path.join(spool, "agent1.1700000000.data"), "<agent_data/>\n")
    write(os.path.join(console, ".htaccess"), "Deny from all\n")
    write(os.path.join(console, "index.php"), "<?php echo 'Pandora'; ?>\n")
    write(os.path.join(console, "images", ".data", "cache.bin"), "\x00\x01\x02binary\n")
    write(os.path.join(console, "images", "logo.png"), "PNG" * 1000)
    if not os.path.lexists(os.path.join(console, "attachment")):
        os.symlink("/var/spool/pandora/data_in/attachment", os.path.join(console, "attachment"))
    if db_name:
        write_console_config(console, "127.0.0.1", server_port, db_name, user, password)
    return {"config_dir": config, "spool_dir": spool, "console_path": console}


def write_console_config(console, host, port, name, user, password):
    php = ("<?php\n// Pandora FMS console configuration\n"
           "$config[\"dbtype\"] = \"mysql\";\n"
           "$config[\"dbname\"]=\"%s\";\n$config[\"dbuser\"]=\"%s\";\n$config[\"dbpass\"]='%s';\n"
           "$config[\"dbhost\"]=\"%s\";\n$config[\"dbport\"]=\"%s\";\n"
           "$config[\"homedir\"]=\"%s\";\n" % (name, user, password.replace("'", "\\'"), host, port, console))
    write(os.path.join(console, "include", "config.php"), php, 0o640)


def write(path, text, mode=0o644):
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, mode)


def snapshot(*roots):
    """{path: (kind, content or link target, mode)} of every entry under the roots."""
    out = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = os.path.join(folder, name)
                st = os.lstat(path)
                if stat.S_ISLNK(st.st_mode):
                    out[path] = ("link", os.readlink(path), None)
                elif stat.S_ISDIR(st.st_mode):
                    out[path] = ("dir", None, stat.S_IMODE(st.st_mode))
                else:
                    with open(path, "rb") as handle:
                        out[path] = ("file", handle.read(), stat.S_IMODE(st.st_mode))
    return out


def rewrite_archive(src, dst, edit):
    """Decompress ``src``, let ``edit(bytes) -> bytes`` change the tar stream, recompress to ``dst``."""
    with gzip.open(src, "rb") as handle:
        data = handle.read()
    data = edit(data)
    with open(dst, "wb") as handle:
        handle.write(gzip.compress(data))
    return dst


def rebuild_archive(src, dst, keep=lambda info: True, manifest_edit=None):
    """Copy the members of ``src`` that ``keep`` accepts into ``dst`` (optionally editing the manifest)."""
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dst, "w:gz") as tout:
        for info in tin:
            if not keep(info):
                continue
            if info.name == "manifest.json" and manifest_edit:
                manifest = json.loads(tin.extractfile(info).read().decode())
                manifest_edit(manifest)
                data = json.dumps(manifest).encode()
                info.size = len(data)
                tout.addfile(info, io.BytesIO(data))
            else:
                tout.addfile(info, tin.extractfile(info) if info.isreg() else None)
    return dst


def archive_members(path):
    with tarfile.open(path, "r:gz") as tar:
        return [info.name for info in tar]


def archive_manifest(path):
    with tarfile.open(path, "r:gz") as tar:
        return json.loads(tar.extractfile("manifest.json").read().decode())


SPY = """#!/bin/sh
# Test stand-in: records argv and environment, then runs the real tool.
{
  printf 'ARGV'
  for arg in "$0" "$@"; do printf ' [%s]' "$arg"; done
  printf '\\n'
  env | sed 's/^/ENV /'
} >> "__LOG__"
exec "__REAL__" "$@"
"""


def install_spies(folder, log, names=("mariadb-dump", "mysqldump", "mariadb", "mysql", "pigz", "gzip")):
    """Stand-ins for the client and compression tools in ``folder`` (put it first in PATH)."""
    os.makedirs(folder, exist_ok=True)
    made = []
    for name in names:
        real = shutil.which(name)
        if not real:
            continue
        path = os.path.join(folder, name)
        with open(path, "w") as handle:
            handle.write(SPY.replace("__LOG__", log).replace("__REAL__", real))
        os.chmod(path, 0o755)
        made.append(name)
    return made


class ArgvWatcher(object):
    """Polls /proc/*/cmdline while running; remembers every command line that held ``secret``."""

    def __init__(self, secret):
        self.secret = secret.encode()
        self.hits = []
        self.seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.daemon = True

    def _run(self):
        me = str(os.getpid())
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or pid == me:
                    continue
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as handle:
                        cmd = handle.read()
                except OSError:
                    continue
                if re.search(rb"mariadb|mysql|pigz|gzip", cmd):
                    self.seen += 1
                if self.secret in cmd:
                    self.hits.append(cmd.replace(b"\0", b" "))
            self._stop.wait(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
