"""Private, throwaway MariaDB servers for tests, benchmarks and the demo.

Each server gets its own datadir, unix socket and TCP port under a temporary
directory, listens on 127.0.0.1 only, and is stopped by the pid we started.
Nothing here touches a system MariaDB service.
"""

import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pymysql

ROOT_PASSWORD = "root-Pw_for.tests"


def _find(*names):
    for name in names:
        for folder in ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"):
            path = os.path.join(folder, name)
            if os.access(path, os.X_OK):
                return path
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(
        "none of %s is installed; install Debian's mariadb-server (make deps does)" % ", ".join(names)
    )


PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """In the forked child before exec: ask Linux to SIGTERM it when the process that started it dies.

    A pytest run killed by a signal skips fixture teardown; without this its mariadbd would survive.
    Best effort: where prctl is unavailable the explicit stop() still applies.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MariaDBServer(object):
    """One mariadbd process with a private datadir on 127.0.0.1."""

    def __init__(self, basedir=None, name="main", port=None, buffer_pool="256M", extra_args=()):
        self.name = name
        self._own_basedir = basedir is None
        self.basedir = basedir or tempfile.mkdtemp(prefix="pandora-mariadb-%s-" % name)
        self.datadir = os.path.join(self.basedir, "data")
        self.socket = os.path.join(self.basedir, "mysqld.sock")
        self.pidfile = os.path.join(self.basedir, "mysqld.pid")
        self.logfile = os.path.join(self.basedir, "error.log")
        self.tmpdir = os.path.join(self.basedir, "tmp")
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.buffer_pool = buffer_pool
        self.extra_args = list(extra_args)
        self.proc = None

    # -- lifecycle -------------------------------------------------------
    def start(self, timeout=60):
        if not os.path.isdir(os.path.join(self.datadir, "mysql")):
            os.makedirs(self.datadir, exist_ok=True)
            cmd = [
                _find("mariadb-install-db", "mysql_install_db"),
                "--no-defaults",
                "--datadir=%s" % self.datadir,
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ]
            if os.geteuid() == 0:
                cmd.append("--user=root")
            subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        os.makedirs(self.tmpdir, exist_ok=True)
        args = [
            _find("mariadbd", "mysqld"),
            "--no-defaults",
            "--datadir=%s" % self.datadir,
            "--socket=%s" % self.socket,
            "--pid-file=%s" % self.pidfile,
            "--port=%d" % self.port,
            "--bind-address=127.0.0.1",
            "--log-error=%s" % self.logfile,
            # Its own temporary directory: nothing else on the machine cleaning /tmp can take its files.
            "--tmpdir=%s" % self.tmpdir,
            "--skip-log-bin",
            "--innodb-buffer-pool-size=%s" % self.buffer_pool,
            "--innodb-log-file-size=256M",
            "--innodb-flush-log-at-trx-commit=2",
            "--max-allowed-packet=64M",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            "--default-time-zone=+00:00",
        ] + self.extra_args
        if os.geteuid() == 0:
            args.append("--user=root")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("mariadbd (%s) exited at start; see %s:\n%s" % (
                    self.name, self.logfile, self._tail_log()))
            try:
                conn = pymysql.connect(unix_socket=self.socket, user="root", password="", connect_timeout=2)
                break
            except pymysql.err.OperationalError as exc:
                if exc.args and exc.args[0] == 1045:
                    conn = pymysql.connect(unix_socket=self.socket, user="root", password=ROOT_PASSWORD,
                                           connect_timeout=2)
                    break
                if time.time() > deadline:
                    self.stop()
                    raise RuntimeError("mariadbd (%s) not ready after %ss" % (self.name, timeout))
                time.sleep(0.2)
        with conn.cursor() as cur:
            cur.execute("ALTER USER 'root'@'localhost' IDENTIFIED BY %s", (ROOT_PASSWORD,))
            cur.execute("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY %s", (ROOT_PASSWORD,))
            cur.execute("GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION")
        conn.close()
        return self

    def _tail_log(self):
        try:
            with open(self.logfile) as handle:
                return "".join(handle.readlines()[-20:])
        except OSError:
            return "(no log)"

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def cleanup(self):
        self.stop()
        if self._own_basedir:
            shutil.rmtree(self.basedir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # -- helpers ---------------------------------------------------------
    def connect(self, db=None, autocommit=True, **kwargs):
        return pymysql.connect(host=self.host, port=self.port, user="root", password=ROOT_PASSWORD,
                               database=db, autocommit=autocommit, charset="utf8mb4", **kwargs)

    def execute(self, sql, db=None, args=None):
        conn = self.connect(db)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall()
        finally:
            conn.close()

    def client_cmd(self, db=None, extra=()):
        """A mariadb client command line that reads the password from a defaults file."""
        cnf = os.path.join(self.basedir, "root.cnf")
        if not os.path.exists(cnf):
            fd = os.open(cnf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write("[client]\nuser=root\npassword=%s\nhost=127.0.0.1\nport=%d\n" % (
                    ROOT_PASSWORD, self.port))
        cmd = [_find("mariadb", "mysql"), "--defaults-extra-file=%s" % cnf] + list(extra)
        if db:
            cmd.append(db)
        return cmd

    def load_sql_file(self, path, db, sql_mode="", force=False):
        extra = ["--init-command=SET SESSION sql_mode='%s'" % sql_mode]
        if force:
            extra.append("--force")
        with open(path, "rb") as handle:
            return subprocess.run(self.client_cmd(db, extra), stdin=handle, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, check=False)

    def create_database(self, name, drop=True):
        if drop:
            self.execute("DROP DATABASE IF EXISTS `%s`" % name)
        self.execute("CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci" % name)
