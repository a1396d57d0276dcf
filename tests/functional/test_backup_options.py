"""pandora_backup's options: out-of-range values refused by name, check mode refusing what the run refuses,
database errors explained (what failed, what was changed, what to do)."""

import os

import pytest

from ansible_collections.pandorafms.server.plugins.module_utils._backup import run_backup, run_restore
from ansible_collections.pandorafms.server.plugins.module_utils._connection import ConnectionSettings
from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConfigError, OperationFailed
from harness import backup_util as bu
from harness.mariadb import ROOT_PASSWORD


def settings_for(db, user="root", password=ROOT_PASSWORD):
    return ConnectionSettings(host="127.0.0.1", port=db.server.port, user=user, password=password,
                              database=db.name)


BAD = [
    (dict(lock_wait_timeout=0), "lock_wait_timeout must be between 1 and"),
    (dict(lock_wait_timeout=-5), "lock_wait_timeout must be between 1 and"),
    (dict(lock_wait_timeout=10 ** 9), "lock_wait_timeout must be between 1 and"),
    (dict(tmp_dir="scratch"), "tmp_dir must be an absolute path"),
    (dict(saved_files_dir="saved"), "saved_files_dir must be an absolute path"),
    (dict(config_dir="etc/pandora"), "config_dir must be an absolute path"),
    (dict(keep=-1), "keep must be 0"),
    (dict(grant_hosts=[]), "grant_hosts is an empty list"),
    (dict(grant_hosts=[""]), "grant_hosts must be a list of host names"),
    (dict(grant_user=" "), "grant_user is empty"),
]


# A backup refused a relative root directory and a negative keep before; a restore did not.
CASES = [(kind, options, match) for kind in ("backup", "restore") for options, match in BAD
         if not (kind == "backup" and ("config_dir" in options or "keep" in options))]


@pytest.mark.parametrize("kind,options,match", CASES)
def test_out_of_range_options_are_refused_by_name(tmp_path, kind, options, match):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(b"not read: the options are checked first")
    base = dict(dest=str(tmp_path / "b")) if kind == "backup" else dict(src=str(archive))
    func = run_backup if kind == "backup" else run_restore
    for check in (True, False):
        with pytest.raises(ConfigError, match=match):
            func(None, check_mode=check, **dict(base, **options))
    assert not os.path.exists(str(tmp_path / "b"))


def test_check_mode_refuses_a_destination_the_run_cannot_write(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    tree = bu.make_tree(str(tmp_path / "root"))
    for dest in (str(blocker / "backups"), str(blocker)):
        for check in (True, False):
            with pytest.raises(ConfigError, match="dest .* cannot be used: .* is not a directory"):
                run_backup(None, check_mode=check, dest=dest, include_db=False, **tree)
    with pytest.raises(ConfigError, match="tmp_dir .* cannot be used"):
        run_backup(None, check_mode=True, dest=str(tmp_path / "b"), tmp_dir=str(blocker / "t"), include_db=False,
                   **tree)


def test_module_refuses_out_of_range_values_in_check_mode(pandora_db, playbook, tmp_path):
    args = dict(pandora_db.login(), dest=str(tmp_path / "b"), include_files=False, lock_wait_timeout=0)
    res = playbook.run([{"pandorafms.server.pandora_backup": args}], check=True, expect_rc=2)
    assert res.last["failed"] is True
    assert "lock_wait_timeout must be between 1 and" in res.last["msg"]
    assert "Traceback" not in res.stdout + res.stderr
    assert not os.path.exists(str(tmp_path / "b"))


@pytest.fixture
def weak_user(pandora_db):
    server = pandora_db.server
    for host in ("127.0.0.1", "localhost"):
        server.execute("CREATE USER IF NOT EXISTS 'pb_weak'@%s IDENTIFIED BY 'Weak-pw1'", None, (host,))
        server.execute("GRANT SELECT, LOCK TABLES, SHOW VIEW, EVENT, TRIGGER ON `%s`.* TO 'pb_weak'@%%s"
                       % pandora_db.name, None, (host,))
    yield "pb_weak"
    for host in ("127.0.0.1", "localhost"):
        server.execute("DROP USER IF EXISTS 'pb_weak'@%s", None, (host,))


def test_restore_by_an_account_without_create_is_refused_before_anything(pandora_db, weak_user, tmp_path):
    db = bu.Checked(pandora_db)
    bu.fill(db, agents=1, days=1)
    res = run_backup(settings_for(db, weak_user, "Weak-pw1"), dest=str(tmp_path / "b"), include_files=False)
    bu.scribble(db)
    before = db.checksums()
    for check in (True, False):
        with pytest.raises(ConfigError) as info:
            run_restore(settings_for(db, weak_user, "Weak-pw1"), check_mode=check, src=res["archive"])
        msg = str(info.value)
        assert "lacks the global privilege(s) CREATE, DROP, CREATE USER" in msg
        assert "nothing was changed" in msg and "login_user" in msg
        assert "1044" not in msg and "Weak-pw1" not in msg
    assert db.checksums() == before
    assert bu.databases(db.server, db.name + "\\_%restore\\_%") == []


def test_lock_wait_at_the_swap_is_explained_and_changes_nothing(pandora_db, tmp_path):
    db = bu.Checked(pandora_db)
    bu.fill(db, agents=1, days=1)
    res = run_backup(settings_for(db), dest=str(tmp_path / "b"), include_files=False)
    bu.scribble(db)
    before = db.checksums()
    holder = db.connect()
    try:
        with holder.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SELECT COUNT(*) FROM tagente")  # holds a metadata lock on tagente until COMMIT
        with pytest.raises(OperationFailed) as info:
            run_restore(settings_for(db), src=res["archive"], lock_wait_timeout=1)
    finally:
        holder.rollback()
        holder.close()
    msg = str(info.value)
    assert "the swap (one RENAME TABLE) failed (MariaDB error 1205" in msg
    assert "keeps its content" in msg and "raise lock_wait_timeout (now 1s)" in msg
    assert db.checksums() == before
    assert bu.databases(db.server, db.name + "\\_%restore\\_%") == []
