"""Session-wide fixtures: private MariaDB servers, fresh Pandora databases, ansible-playbook.

The servers are started once per test session (a *main* and a *history*
server, each with its own datadir and port on 127.0.0.1) and stopped by pid at
the end, whatever happened.
"""

import itertools
import json
import os
import subprocess
import sys
import textwrap

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from harness.collection import COLLECTIONS_ROOT, REPO, ensure_collection_link  # noqa: E402
from harness.mariadb import MariaDBServer  # noqa: E402
from harness import schema  # noqa: E402

ensure_collection_link()

_db_counter = itertools.count(1)


@pytest.fixture(scope="session")
def main_server(tmp_path_factory):
    server = MariaDBServer(basedir=str(tmp_path_factory.mktemp("mariadb-main")), name="main")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def history_server(tmp_path_factory):
    server = MariaDBServer(basedir=str(tmp_path_factory.mktemp("mariadb-history")), name="history")
    server.start()
    yield server
    server.stop()


class Database(object):
    """A database on a test server, with handy accessors."""

    def __init__(self, server, name):
        self.server = server
        self.name = name

    def connect(self, **kwargs):
        return self.server.connect(self.name, **kwargs)

    def query(self, sql, args=None):
        return self.server.execute(sql, self.name, args)

    def scalar(self, sql, args=None):
        rows = self.query(sql, args)
        return rows[0][0] if rows else None

    def checksums(self):
        """CHECKSUM TABLE of every table: equal dicts mean equal content."""
        tables = [r[0] for r in self.query("SHOW TABLES")]
        out = {}
        for table in tables:
            out[table] = self.query("CHECKSUM TABLE `%s`" % table)[0][1]
        return out

    def login(self):
        """Module options that log in as root over TCP."""
        from harness.mariadb import ROOT_PASSWORD
        return {"login_host": "127.0.0.1", "login_port": self.server.port, "login_user": "root",
                "login_password": ROOT_PASSWORD, "login_db": self.name, "config_file": ""}

    def drop(self):
        self.server.execute("DROP DATABASE IF EXISTS `%s`" % self.name)


def _new_db(server, prefix, legacy=False):
    name = "%s_%d_%d" % (prefix, os.getpid(), next(_db_counter))
    schema.load_fixture(server, name, legacy=legacy)
    return Database(server, name)


@pytest.fixture
def pandora_db(main_server):
    """A fresh database with the project's Pandora schema fixture (empty tables)."""
    db = _new_db(main_server, "pandora")
    yield db
    db.drop()


@pytest.fixture
def history_db(history_server):
    """A fresh history database (same schema) on the history server."""
    db = _new_db(history_server, "pandora_history")
    yield db
    db.drop()


@pytest.fixture
def new_db():
    """Factory: ``new_db(server, prefix, legacy=False)``; dropped at teardown."""
    made = []

    def factory(server, prefix="pandora", legacy=False):
        db = _new_db(server, prefix, legacy)
        made.append(db)
        return db

    yield factory
    for db in made:
        db.drop()


class PlaybookRunner(object):
    """Runs real ansible-playbook against localhost with this collection installed."""

    def __init__(self, workdir):
        self.workdir = workdir

    def run(self, tasks, check=False, diff=False, extra_vars=None, expect_rc=None, env=None):
        play = [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]
        path = os.path.join(self.workdir, "play.yml")
        with open(path, "w") as handle:
            json.dump(play, handle)
        cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
               "-c", "local", path]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        if extra_vars:
            cmd += ["-e", json.dumps(extra_vars)]
        full_env = dict(os.environ)
        full_env.update({
            "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS_ROOT,
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_HOME": os.path.join(self.workdir, ".ansible"),
            "ANSIBLE_LOCAL_TEMP": os.path.join(self.workdir, ".ansible", "tmp"),
        })
        full_env.update(env or {})
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env,
                              cwd=self.workdir, universal_newlines=True, check=False)
        if expect_rc is not None:
            assert proc.returncode == expect_rc, proc.stdout[-4000:] + proc.stderr[-4000:]
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError("ansible-playbook printed no JSON:\n%s\n%s"
                                 % (proc.stdout[-4000:], proc.stderr[-4000:]))
        results = []
        for play_data in data["plays"]:
            for task in play_data["tasks"]:
                if "localhost" in task["hosts"]:  # meta tasks have no host entry
                    results.append(task["hosts"]["localhost"])
        return PlaybookResult(proc, results)


class PlaybookResult(object):
    def __init__(self, proc, results):
        self.proc = proc
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.results = results

    @property
    def last(self):
        return self.results[-1]


@pytest.fixture
def playbook(tmp_path):
    return PlaybookRunner(str(tmp_path))


def dedent(text):
    return textwrap.dedent(text).lstrip()


__all__ = ["REPO"]
