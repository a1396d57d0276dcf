"""pandorafms.server.pandora_backup through real ansible-playbook: check mode, backup, restore, failure."""

import os
import stat

from harness import backup_util as bu

SECRET = "Pb-Secret_pw#9;'x"


def test_module_backup_check_restore(pandora_db, playbook, tmp_path):
    db = bu.Checked(pandora_db)
    bu.fill(db)
    server = db.server
    for host in ("127.0.0.1", "localhost"):
        server.execute("CREATE USER IF NOT EXISTS 'pandora_pb'@%s IDENTIFIED BY %s", None, (host, SECRET))
        server.execute("GRANT ALL PRIVILEGES ON *.* TO 'pandora_pb'@%s WITH GRANT OPTION", None, (host,))
    try:
        _scenario(db, playbook, tmp_path)
    finally:
        for host in ("127.0.0.1", "localhost"):
            server.execute("DROP USER IF EXISTS 'pandora_pb'@%s", None, (host,))


def _scenario(db, playbook, tmp_path):
    tree = bu.make_tree(str(tmp_path / "root"), db.server.port, db.name, "pandora_pb", SECRET)
    dest = str(tmp_path / "backups")
    log = str(tmp_path / "ansible.log")
    env = {"ANSIBLE_LOG_PATH": log}
    outputs = []

    def run(args, **kw):
        res = playbook.run([{"pandorafms.server.pandora_backup": args}], env=env, **kw)
        outputs.append(res.stdout + res.stderr)
        return res

    # Check mode: a plan and an estimate, nothing written.
    res = run(dict(dest=dest, **tree), check=True, expect_rc=0)
    assert res.last["changed"] is True
    assert res.last["estimated_size"] > 0
    assert res.last["plan"]["files"] > 10
    assert not os.path.exists(dest)

    # Backup with the console's config.php credentials (no login options).
    res = run(dict(dest=dest, keep=3, **tree), expect_rc=0)
    out = res.last
    archive = out["archive"]
    assert out["changed"] is True
    assert os.path.isfile(archive) and stat.S_IMODE(os.stat(archive).st_mode) == 0o600
    assert out["tables"]["tagente"] == 2
    assert out["manifest"]["database"]["schema"]["MR"] == "64"
    assert "members" not in out["manifest"]
    before = db.checksums()
    files_before = bu.snapshot(*tree.values())

    bu.scribble(db)
    bu.write(os.path.join(tree["config_dir"], "pandora_server.conf"), "broken after backup\n")
    changed = db.checksums()

    # Check-mode restore: verifies and plans, changes nothing.
    res = run(dict(state="restored", src=archive, restore_files=True, **tree), check=True, expect_rc=0)
    plan = res.last["plan"]
    assert plan["verified"] is True
    assert plan["files_to_write"] == [os.path.join(tree["config_dir"], "pandora_server.conf")]
    assert plan["database"]["name"] == db.name
    assert db.checksums() == changed

    # A tampered archive fails cleanly.
    bad = bu.rewrite_archive(archive, str(tmp_path / "bad.tar.gz"),
                             lambda data: data.replace(b"agent_name agent1", b"agent_name AGENT1", 1))
    res = run(dict(state="restored", src=bad, **tree), expect_rc=2)
    assert res.last["failed"] is True
    assert "does not match its manifest" in res.last["msg"]
    assert db.checksums() == changed

    # The restore.
    res = run(dict(state="restored", src=archive, restore_files=True, **tree), expect_rc=0)
    out = res.last
    assert out["changed"] is True
    assert out["database"] == db.name
    assert db.checksums() == before
    assert bu.snapshot(*tree.values()) == files_before
    assert out["saved_files_dir"] and os.path.isdir(out["saved_files_dir"])

    # The password shows up nowhere: output or log.
    with open(log) as handle:
        outputs.append(handle.read())
    assert "pandora_backup" in outputs[-1]  # the log was written
    for text in outputs:
        assert "Pb-Secret" not in text
