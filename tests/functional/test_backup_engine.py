"""pandora_backup's engine (run_backup / run_restore) against the real private MariaDB server."""

import os
import stat
import subprocess
import tarfile

import pytest

from ansible_collections.pandorafms.server.plugins.module_utils._backup import run_backup, run_restore
from ansible_collections.pandorafms.server.plugins.module_utils._connection import ConnectionSettings
from ansible_collections.pandorafms.server.plugins.module_utils._errors import (
    ConfigError, ConnectionFailed, OperationFailed, PreconditionFailed)
from harness import backup_util as bu
from harness.mariadb import ROOT_PASSWORD, free_port


def settings_for(db, **over):
    values = dict(host="127.0.0.1", port=db.server.port, user="root", password=ROOT_PASSWORD, database=db.name)
    values.update(over)
    return ConnectionSettings(**values)


@pytest.fixture
def tree(tmp_path):
    return bu.make_tree(str(tmp_path / "root"))


@pytest.fixture
def filled(pandora_db):
    bu.fill(pandora_db)
    return bu.Checked(pandora_db)


def leftovers(db):
    return bu.databases(db.server, db.name + "\\_%restore\\_%")


def dest_entries(dest):
    return sorted(n for n in os.listdir(dest) if n != ".pandorafms_backup.lock") if os.path.isdir(dest) else []


def test_round_trip_database_and_files(filled, tree, tmp_path):
    dest = str(tmp_path / "backups" / "nested")  # created by the backup
    before = filled.checksums()
    files_before = bu.snapshot(*tree.values())
    res = run_backup(settings_for(filled), dest=dest, **tree)

    archive = res["archive"]
    assert os.path.dirname(archive) == dest
    assert stat.S_IMODE(os.stat(archive).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o700
    assert dest_entries(dest) == [os.path.basename(archive)]
    assert res["size"] == os.path.getsize(archive)
    # The dump's row counts are exact (parsed from the dump stream, not estimates).
    for table in ("tagente", "tagente_datos", "tagente_datos_string", "tevento", "tconfig", "tusuario"):
        assert res["tables"][table] == filled.scalar("SELECT COUNT(*) FROM `%s`" % table), table
    assert set(res["tables"]) == set(before)
    names = bu.archive_members(archive)
    assert names[0] == "pandorafms_backup_%s.sql" % res["manifest"]["timestamp"]
    assert names[-1] == "manifest.json"
    console = tree["console_path"].lstrip("/")
    assert console + "/.htaccess" in names           # dotfiles (upstream's <console>/* misses them)
    assert console + "/images/.data/cache.bin" in names
    assert tree["config_dir"].lstrip("/") + "/.hidden_settings" in names
    manifest = bu.archive_manifest(archive)
    assert manifest["database"]["schema"]["MR"] == "64"
    assert manifest["database"]["server"]["engine"] == "mariadb"
    assert manifest["collection"]["name"] == "pandorafms.server"
    assert manifest["members"][console + "/attachment"] == {"type": "symlink", "size": 0,
                                                            "target": "/var/spool/pandora/data_in/attachment"}
    assert len(manifest["members"][names[0]]["sha256"]) == 64
    # GNU tar reads it as a plain .tar.gz
    listing = subprocess.run(["tar", "tzf", archive], stdout=subprocess.PIPE, check=True).stdout.decode()
    assert console + "/.htaccess" in listing

    bu.scribble(filled)
    bu.write(os.path.join(tree["config_dir"], "pandora_server.conf"), "changed after the backup\n")
    os.unlink(os.path.join(tree["console_path"], ".htaccess"))
    bu.write(os.path.join(tree["spool_dir"], "new_after_backup.data"), "new\n")
    assert filled.checksums() != before

    out = run_restore(settings_for(filled), src=archive, restore_files=True, **tree)
    assert filled.checksums() == before
    assert out["database"] == filled.name
    assert out["pre_restore_database"] is None
    assert leftovers(filled) == []
    after = bu.snapshot(*tree.values())
    extra = os.path.join(tree["spool_dir"], "new_after_backup.data")
    assert after.pop(extra)[1] == b"new\n"            # files not in the archive are left alone
    assert after == files_before
    conf = os.path.join(tree["config_dir"], "pandora_server.conf")
    assert conf in out["restored_files"]
    saved = os.path.join(out["saved_files_dir"], conf.lstrip("/"))
    with open(saved) as handle:
        assert handle.read() == "changed after the backup\n"
    assert stat.S_IMODE(os.stat(out["saved_files_dir"]).st_mode) == 0o700

    # A second file restore changes nothing.
    again = run_restore(settings_for(filled), src=archive, restore_db=False, restore_files=True, **tree)
    assert again["restored_files"] == [] and again["changed"] is False


def test_keep_pre_restore_keeps_previous_content(filled, tmp_path):
    res = run_backup(settings_for(filled), dest=str(tmp_path / "b"), include_files=False)
    original = filled.checksums()
    bu.scribble(filled, marker=3)
    changed = filled.checksums()
    out = run_restore(settings_for(filled), src=res["archive"], keep_pre_restore=True)
    pre = out["pre_restore_database"]
    try:
        assert pre.startswith(filled.name + "_pre_restore_")
        assert filled.checksums() == original
        kept = bu.Checked(type(filled._db)(filled.server, pre))
        assert kept.checksums() == changed
    finally:
        filled.server.execute("DROP DATABASE IF EXISTS `%s`" % pre)


def test_views_routines_events_and_triggers_come_back(pandora_db, tmp_path):
    db = bu.Checked(pandora_db)
    db.query("INSERT INTO tgrupo (id_grupo, nombre) VALUES (10, 'Servers'), (11, 'Network')")
    db.query("CREATE VIEW group_names AS SELECT id_grupo, nombre FROM tgrupo")
    db.query("CREATE TABLE audit_log (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(50))")
    db.query("CREATE TRIGGER tgrupo_ai AFTER INSERT ON tgrupo FOR EACH ROW "
             "INSERT INTO audit_log (what) VALUES (CONCAT('group ', NEW.nombre))")
    db.query("CREATE PROCEDURE count_groups(OUT n INT) SELECT COUNT(*) INTO n FROM tgrupo")
    db.query("CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM audit_log")
    res = run_backup(settings_for(db), dest=str(tmp_path / "b"), include_files=False)
    assert res["manifest"]["database"]["views"] == ["group_names"]
    db.query("DROP VIEW group_names")
    db.query("DROP TRIGGER tgrupo_ai")
    db.query("DROP PROCEDURE count_groups")
    db.query("DROP EVENT nightly")
    run_restore(settings_for(db), src=res["archive"])
    assert [r[0] for r in db.query("SELECT nombre FROM group_names ORDER BY 1")] == ["Network", "Servers"]
    db.query("INSERT INTO tgrupo (id_grupo, nombre) VALUES (12, 'Web')")
    assert db.scalar("SELECT what FROM audit_log ORDER BY id DESC LIMIT 1") == "group Web"
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("CALL count_groups(@n)")
            cur.execute("SELECT @n")
            assert cur.fetchone()[0] == 3
    finally:
        conn.close()
    assert db.scalar("SELECT COUNT(*) FROM information_schema.events WHERE event_schema = %s", (db.name,)) == 1


def test_credentials_from_console_config_and_regrant(filled, tmp_path):
    """Upstream's -c: credentials from config.php (a password with symbols, a non-default port)."""
    user, password = "pandora_bk", "Pw'with #symbols; and = signs"
    server = filled.server
    server.execute("CREATE USER IF NOT EXISTS %s@'127.0.0.1' IDENTIFIED BY %s", None, (user, password))
    server.execute("CREATE USER IF NOT EXISTS %s@'localhost' IDENTIFIED BY %s", None, (user, password))
    try:
        server.execute("GRANT ALL PRIVILEGES ON `%s`.* TO %%s@'127.0.0.1'" % filled.name, None, (user,))
        tree = bu.make_tree(str(tmp_path / "root"), server.port, filled.name, user, password)
        res = run_backup(None, dest=str(tmp_path / "b"), **tree)   # no login options at all
        assert res["database"] == filled.name
        assert res["tables"]["tagente"] == 2
        before = filled.checksums()
        bu.scribble(filled)
        server.execute("REVOKE ALL PRIVILEGES ON `%s`.* FROM %%s@'127.0.0.1'" % filled.name, None, (user,))
        out = run_restore(settings_for(filled), src=res["archive"], **tree)
        assert filled.checksums() == before
        assert sorted(out["grants"]) == ["pandora_bk@127.0.0.1", "pandora_bk@localhost"]
        grants = " ".join(r[0] for r in server.execute("SHOW GRANTS FOR %s@'127.0.0.1'", None, (user,)))
        assert "ALL PRIVILEGES ON `%s`.*" % filled.name in grants
    finally:
        server.execute("DROP USER IF EXISTS %s@'127.0.0.1'", None, (user,))
        server.execute("DROP USER IF EXISTS %s@'localhost'", None, (user,))


def test_restore_console_first_for_a_lost_console(filled, tmp_path):
    tree = bu.make_tree(str(tmp_path / "root"), filled.server.port, filled.name, "root", ROOT_PASSWORD)
    res = run_backup(None, dest=str(tmp_path / "b"), **tree)
    before = filled.checksums()
    bu.scribble(filled)
    console_files = bu.snapshot(tree["console_path"])
    import shutil
    shutil.rmtree(tree["console_path"])
    with pytest.raises(ConfigError, match="no database credentials"):
        run_restore(None, src=res["archive"], **tree)
    out = run_restore(None, src=res["archive"], restore_console=True, **tree)
    assert filled.checksums() == before
    assert bu.snapshot(tree["console_path"]) == console_files
    assert os.path.join(tree["console_path"], "include", "config.php") in out["restored_files"]


def test_files_only_backup_and_restore_db_false(filled, tree, tmp_path):
    res = run_backup(None, dest=str(tmp_path / "b"), include_db=False, **tree)
    assert res["manifest"]["database"] is None
    assert not any(n.endswith(".sql") for n in bu.archive_members(res["archive"]))
    before = filled.checksums()
    with pytest.raises(PreconditionFailed, match="has no database dump"):
        run_restore(settings_for(filled), src=res["archive"], **tree)
    bu.write(os.path.join(tree["console_path"], "index.php"), "broken\n")
    out = run_restore(None, src=res["archive"], restore_db=False, restore_files=True, **tree)
    assert out["restored_files"] == [os.path.join(tree["console_path"], "index.php")]
    assert filled.checksums() == before


# -- failures: clear message, live database unchanged, no partial archive ------------------
@pytest.fixture
def backed_up(filled, tree, tmp_path):
    res = run_backup(settings_for(filled), dest=str(tmp_path / "b"), **tree)
    bu.scribble(filled, marker=5)
    return filled, res["archive"], filled.checksums()


def _assert_refused(db, live_before, src, match, exc=PreconditionFailed, **opts):
    with pytest.raises(exc, match=match):
        run_restore(settings_for(db), src=src, **opts)
    assert db.checksums() == live_before
    assert leftovers(db) == []


def test_truncated_archive_is_refused(backed_up, tmp_path):
    db, archive, live = backed_up
    bad = str(tmp_path / "truncated.tar.gz")
    with open(archive, "rb") as handle:
        data = handle.read()
    for cut in (len(data) // 2, len(data) - 100, 300):
        with open(bad, "wb") as handle:
            handle.write(data[:cut])
        _assert_refused(db, live, bad, r"truncated|damaged|no manifest")


def test_tampered_members_are_refused(backed_up, tree, tmp_path):
    db, archive, live = backed_up
    bad = bu.rewrite_archive(archive, str(tmp_path / "tampered.tar.gz"),
                             lambda data: data.replace(b"servername second", b"servername SECOND", 1))
    _assert_refused(db, live, bad, r"does not match its manifest: .*second.conf has sha256", restore_files=True,
                    **tree)
    bad = bu.rewrite_archive(archive, str(tmp_path / "tampered_dump.tar.gz"),
                             lambda data: data.replace(b"'Module went critical #1'", b"'Module went critical #7'", 1))
    _assert_refused(db, live, bad, r"pandorafms_backup_.*\.sql has sha256")
    # check mode verifies too
    with pytest.raises(PreconditionFailed, match="does not match its manifest"):
        run_restore(settings_for(db), check_mode=True, src=bad)


def test_archive_without_dump_or_manifest_is_refused(backed_up, tmp_path):
    db, archive, live = backed_up
    no_dump = bu.rebuild_archive(archive, str(tmp_path / "nodump.tar.gz"), keep=lambda i: not i.name.endswith(".sql"))
    _assert_refused(db, live, no_dump, r"pandorafms_backup_.*\.sql is missing")
    hidden = bu.rebuild_archive(archive, str(tmp_path / "hidden.tar.gz"), keep=lambda i: not i.name.endswith(".sql"),
                                manifest_edit=lambda m: [m["members"].pop(k) for k in list(m["members"])
                                                         if k.endswith(".sql")])
    _assert_refused(db, live, hidden, r"names the dump .* but the archive has none")
    no_manifest = bu.rebuild_archive(archive, str(tmp_path / "nomanifest.tar.gz"),
                                     keep=lambda i: i.name != "manifest.json")
    _assert_refused(db, live, no_manifest, r"has no manifest\.json")
    not_gzip = str(tmp_path / "garbage.tar.gz")
    with open(not_gzip, "wb") as handle:
        handle.write(b"this is not an archive\n" * 50)
    _assert_refused(db, live, not_gzip, r"damaged|not a tar|no manifest|not in gzip")


def test_wrong_password_and_unreachable_server(backed_up, tmp_path):
    db, archive, live = backed_up
    dest = str(tmp_path / "failed")
    wrong = "definitely-Wrong-pw"
    for exc_settings, match in ((settings_for(db, password=wrong), r"\(1045\).*Access denied"),
                                (settings_for(db, port=free_port(), connect_timeout=3), r"\(2003\).*running")):
        with pytest.raises(ConnectionFailed, match=match) as info:
            run_backup(exc_settings, dest=dest, include_files=False)
        assert wrong not in str(info.value)
        assert dest_entries(dest) == []
        with pytest.raises(ConnectionFailed, match=match):
            run_restore(exc_settings, src=archive)
        assert db.checksums() == live


def _fake_dump(folder, script):
    os.makedirs(folder, exist_ok=True)
    for name in ("mariadb-dump", "mysqldump"):
        path = os.path.join(folder, name)
        with open(path, "w") as handle:
            handle.write("#!/bin/sh\n" + script)
        os.chmod(path, 0o755)
    return folder


@pytest.mark.parametrize("script, match", [
    ("echo '-- partial dump'; echo 'CREATE TABLE `t` (' ; echo 'mariadb-dump: Got error: 2013: Lost connection' >&2;"
     " exit 2\n", r"mariadb-dump of database .* failed \(exit 2\): .*Lost connection"),
    ("echo 'INSERT INTO `t` VALUES'; echo '(1);'\n", r"without its '-- Dump completed' line"),
])
def test_failed_dump_leaves_no_archive(filled, tmp_path, monkeypatch, script, match):
    fake = _fake_dump(str(tmp_path / "bin"), script)
    monkeypatch.setenv("PATH", fake + os.pathsep + os.environ["PATH"])
    dest = str(tmp_path / "b")
    with pytest.raises(OperationFailed, match=match):
        run_backup(settings_for(filled), dest=dest, include_files=False)
    assert dest_entries(dest) == []


def test_disk_full_leaves_no_archive(filled, tmp_path):
    dest = str(tmp_path / "small")
    os.makedirs(dest)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", dest], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, check=False)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here: %s" % mounted.stderr.decode().strip())
    try:
        with pytest.raises(OperationFailed, match=r"No space left|filesystem full|compressor"):
            run_backup(settings_for(filled), dest=dest, include_files=False)
        assert dest_entries(dest) == []
    finally:
        subprocess.run(["umount", dest], check=True)


def test_relative_or_missing_paths_are_refused(filled, tmp_path):
    with pytest.raises(ConfigError, match="absolute"):
        run_backup(settings_for(filled), dest="relative/dir")
    with pytest.raises(ConfigError, match="dest is required"):
        run_backup(settings_for(filled))
    with pytest.raises(ConfigError, match="absolute"):
        run_restore(settings_for(filled), src="relative.tar.gz")
    with pytest.raises(ConfigError, match="does not exist"):
        run_restore(settings_for(filled), src=str(tmp_path / "missing.tar.gz"))


def test_check_mode_changes_nothing(filled, tree, tmp_path):
    dest = str(tmp_path / "not-yet")
    plan = run_backup(settings_for(filled), check_mode=True, dest=dest, **tree)
    assert not os.path.exists(dest)
    assert plan["changed"] is True and plan["estimated_size"] > 0
    assert plan["plan"]["files"] > 10 and "tagente_datos" in plan["plan"]["tables"]
    assert os.path.basename(plan["archive"]).startswith("pandorafms_backup_")

    res = run_backup(settings_for(filled), dest=dest, **tree)
    bu.scribble(filled)
    bu.write(os.path.join(tree["config_dir"], "pandora_server.conf"), "changed\n")
    live, files = filled.checksums(), bu.snapshot(*tree.values())
    out = run_restore(settings_for(filled), check_mode=True, src=res["archive"], restore_files=True, **tree)
    assert out["plan"]["verified"] is True
    assert out["plan"]["files_to_write"] == [os.path.join(tree["config_dir"], "pandora_server.conf")]
    assert out["plan"]["database"]["live_exists"] is True
    assert out["plan"]["database"]["staging_database"].startswith(filled.name + "_restore_")
    assert filled.checksums() == live and bu.snapshot(*tree.values()) == files
    assert leftovers(filled) == []


def test_keep_rotates_old_archives_and_removes_partials(tmp_path, tree):
    dest = str(tmp_path / "rot")
    os.makedirs(dest)
    stale = os.path.join(dest, ".pandorafms_backup_2020-01-01-00-00-00.tar.gz.part")
    bu.write(stale, "killed run")
    old = os.path.join(dest, "pandorafms_backup_2020-01-01-00-00-00.tar.gz")
    bu.write(old, "old")
    unrelated = os.path.join(dest, "notes.txt")
    bu.write(unrelated, "keep me")
    made = [run_backup(None, dest=dest, include_db=False, keep=2, **tree)["archive"] for dummy in range(2)]
    assert not os.path.exists(stale) and not os.path.exists(old)
    third = run_backup(None, dest=dest, include_db=False, keep=2, **tree)
    assert third["rotated"] == [made[0]]
    assert dest_entries(dest) == sorted([os.path.basename(made[1]), os.path.basename(third["archive"]), "notes.txt"])


def test_restore_refuses_while_maintenance_runs(backed_up):
    db, archive, live = backed_up
    conn = db.server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT GET_LOCK(%s, 0)", ("%s_pandora_db" % db.name,))
        from ansible_collections.pandorafms.server.plugins.module_utils._errors import LockBusy
        with pytest.raises(LockBusy):
            run_restore(settings_for(db), src=archive)
    finally:
        conn.close()
    assert db.checksums() == live
    assert leftovers(db) == []


def test_archive_reads_with_python_tarfile(backed_up):
    dummy_db, archive, dummy_live = backed_up
    with tarfile.open(archive, "r:gz") as tar:
        dump = [m for m in tar if m.name.endswith(".sql")][0]
        data = tar.extractfile(dump).read()
    assert data.rstrip().splitlines()[-1].startswith(b"-- Dump completed")


def test_restore_recreates_a_dropped_database(filled, tmp_path):
    res = run_backup(settings_for(filled), dest=str(tmp_path / "b"), include_files=False)
    before = filled.checksums()
    filled.server.execute("DROP DATABASE `%s`" % filled.name)
    out = run_restore(settings_for(filled), src=res["archive"])
    assert out["pre_restore_database"] is None
    assert filled.checksums() == before
    assert filled.server.execute("SELECT default_character_set_name FROM information_schema.schemata "
                                 "WHERE schema_name = %s", None, (filled.name,))[0][0] == "utf8mb4"


def test_file_restore_keeps_a_linked_root_and_replaces_what_differs(tmp_path):
    real = tmp_path / "real_etc"
    real.mkdir()
    bu.write(str(real / "pandora_server.conf"), "dbname pandora\n")
    bu.write(str(real / "keep.conf"), "same\n")
    link = str(tmp_path / "etc_pandora")
    os.symlink(str(real), link)
    opts = dict(config_dir=link, spool_dir=str(tmp_path / "no_spool"), console_path=str(tmp_path / "no_console"))
    res = run_backup(None, dest=str(tmp_path / "b"), include_db=False, **opts)
    bu.write(str(real / "pandora_server.conf"), "dbname other\n")
    plan = run_restore(None, check_mode=True, src=res["archive"], restore_db=False, restore_files=True, **opts)
    assert plan["plan"]["files_to_write"] == [os.path.join(link, "pandora_server.conf")]
    out = run_restore(None, src=res["archive"], restore_db=False, restore_files=True, **opts)
    assert os.path.islink(link)
    assert out["restored_files"] == [os.path.join(link, "pandora_server.conf")]
    with open(str(real / "pandora_server.conf")) as handle:
        assert handle.read() == "dbname pandora\n"
    assert any("no spool_dir" in w or "spool_dir" in w for w in out["warnings"])
