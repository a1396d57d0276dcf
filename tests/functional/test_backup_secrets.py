"""The password never reaches a process's argv or environment, the results, or an error message."""

import json
import os

import pytest

from ansible_collections.pandorafms.server.plugins.module_utils._backup import run_backup, run_restore
from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConnectionFailed
from harness import backup_util as bu
from harness.mariadb import ROOT_PASSWORD

SECRET = "Spy-Pw#1;x'y\"z"


@pytest.fixture
def spy_user(filled_db):
    server = filled_db.server
    for host in ("127.0.0.1", "localhost"):
        server.execute("CREATE USER IF NOT EXISTS 'pandora_spy'@%s IDENTIFIED BY %s", None, (host, SECRET))
        server.execute("GRANT ALL PRIVILEGES ON *.* TO 'pandora_spy'@%s WITH GRANT OPTION", None, (host,))
    yield "pandora_spy"
    for host in ("127.0.0.1", "localhost"):
        server.execute("DROP USER IF EXISTS 'pandora_spy'@%s", None, (host,))


@pytest.fixture
def filled_db(pandora_db):
    bu.fill(pandora_db)
    return bu.Checked(pandora_db)


def test_password_never_in_argv_env_or_results(filled_db, spy_user, tmp_path, monkeypatch):
    db = filled_db
    tree = bu.make_tree(str(tmp_path / "root"), db.server.port, db.name, spy_user, SECRET)
    spies = str(tmp_path / "spybin")
    log = str(tmp_path / "spy.log")
    made = bu.install_spies(spies, log)
    assert {"mariadb-dump", "mariadb", "pigz"} <= set(made)
    monkeypatch.setenv("PATH", spies + os.pathsep + os.environ["PATH"])

    with bu.ArgvWatcher(SECRET) as watch, bu.ArgvWatcher(ROOT_PASSWORD) as watch_root:
        backup = run_backup(None, dest=str(tmp_path / "b"), **tree)         # credentials from config.php
        before = db.checksums()
        bu.scribble(db)
        restore = run_restore(None, src=backup["archive"], restore_files=True, **tree)
        check = run_restore(None, check_mode=True, src=backup["archive"], **tree)
    assert db.checksums() == before

    with open(log) as handle:
        recorded = handle.read()
    # The stand-ins really ran: the dump tool, the client that loaded the staging database, the compressor.
    assert "ARGV [%s/mariadb-dump]" % spies in recorded
    assert "ARGV [%s/mariadb]" % spies in recorded
    assert "ARGV [%s/pigz]" % spies in recorded
    assert "--defaults-extra-file=" in recorded
    assert SECRET not in recorded and "Spy-Pw" not in recorded
    assert "MYSQL_PWD" not in recorded
    assert watch.seen > 0
    assert watch.hits == [] and watch_root.hits == []
    for result in (backup, restore, check):
        assert "Spy-Pw" not in json.dumps(result)
    # The option files are gone.
    assert not [n for n in os.listdir(str(tmp_path / "b")) if n.endswith(".cnf") or n.startswith(".pandorafms-")]


def test_password_not_in_errors(filled_db, tmp_path):
    wrong = "Wrong-Secret-XYZ#42"
    tree = bu.make_tree(str(tmp_path / "root"), filled_db.server.port, filled_db.name, "root", wrong)
    with pytest.raises(ConnectionFailed) as info:
        run_backup(None, dest=str(tmp_path / "b"), **tree)
    assert "Access denied" in str(info.value)
    assert wrong not in str(info.value) and wrong not in repr(info.value.args)
