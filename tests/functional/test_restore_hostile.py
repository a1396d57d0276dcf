"""Hostile but self-consistent archives (manifest recomputed): a restore writes only inside its targets.

Every archive here passes the manifest check; what must stop it is the restore's own checks, and they
must stop it before the live database or any file changes, in check mode as in the real run.
"""

import hashlib
import io
import json
import os
import tarfile

import pytest

from ansible_collections.pandorafms.server.plugins.module_utils import _restore
from ansible_collections.pandorafms.server.plugins.module_utils._backup import run_backup, run_restore
from ansible_collections.pandorafms.server.plugins.module_utils._connection import ConnectionSettings
from ansible_collections.pandorafms.server.plugins.module_utils._errors import (
    OperationFailed, PreconditionFailed)
from harness import backup_util as bu
from harness.mariadb import ROOT_PASSWORD


def settings_for(db):
    return ConnectionSettings(host="127.0.0.1", port=db.server.port, user="root", password=ROOT_PASSWORD,
                              database=db.name)


def forge(src, dst, edit):
    """Copy ``src`` to ``dst`` through ``edit([(TarInfo, bytes)]) -> [(TarInfo, bytes)]``, manifest recomputed."""
    items = []
    manifest = None
    with tarfile.open(src, "r:gz") as tar:
        for info in tar:
            data = tar.extractfile(info).read() if info.isreg() else b""
            if info.name == "manifest.json":
                manifest = json.loads(data.decode())
                continue
            items.append((info, data))
    items = edit(items)
    members = {}
    for info, data in items:
        kind = ("file" if info.isreg() else "dir" if info.isdir() else "symlink" if info.issym() else "other")
        entry = {"type": kind, "size": len(data) if info.isreg() else 0}
        if info.isreg():
            entry["sha256"] = hashlib.sha256(data).hexdigest()
        if info.issym():
            entry["target"] = info.linkname
        members[info.name] = entry
    manifest["members"] = members
    if manifest.get("database"):
        dump = manifest["database"]["dump"]
        dump["sha256"] = members[dump["member"]]["sha256"]
        dump["bytes"] = members[dump["member"]]["size"]
    with tarfile.open(dst, "w:gz", format=tarfile.PAX_FORMAT) as out:
        for info, data in items:
            if info.isreg():
                info.size = len(data)
                out.addfile(info, io.BytesIO(data))
            else:
                out.addfile(info)
        blob = json.dumps(manifest).encode()
        minfo = tarfile.TarInfo("manifest.json")
        minfo.size = len(blob)
        out.addfile(minfo, io.BytesIO(blob))
    return dst


def member(name, kind=tarfile.REGTYPE, data=b"", link=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o644 if kind == tarfile.REGTYPE else 0o755
    info.linkname = link
    return info, data


def edit_dump(text_before_end):
    """Put ``text_before_end`` into the dump, just before its '-- Dump completed' line."""
    def edit(items):
        out = []
        for info, data in items:
            if info.name.endswith(".sql"):
                cut = data.rindex(b"-- Dump completed")
                data = data[:cut] + text_before_end + b"\n" + data[cut:]
            out.append((info, data))
        return out
    return edit


@pytest.fixture
def filled(pandora_db):
    bu.fill(pandora_db, agents=1, days=1)
    return bu.Checked(pandora_db)


@pytest.fixture
def other_db(filled):
    name = filled.name + "_other"
    filled.server.execute("CREATE DATABASE `%s`" % name)
    filled.server.execute("CREATE TABLE `%s`.t (id INT PRIMARY KEY)" % name)
    yield name
    filled.server.execute("DROP DATABASE IF EXISTS `%s`" % name)


def files_tree(tmp_path):
    tree = bu.make_tree(str(tmp_path / "root"))
    return tree


def assert_refused_both_ways(func, match, **kwargs):
    """The check run and the real run refuse the same way (the same validation code)."""
    for check in (True, False):
        with pytest.raises(PreconditionFailed, match=match) as info:
            func(check_mode=check, **kwargs)
        assert "before anything changed" in str(info.value)


def test_root_member_that_is_a_symlink_is_refused(tmp_path):
    tree = files_tree(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = run_backup(None, dest=str(tmp_path / "b"), include_db=False, **tree)
    root = tree["config_dir"].lstrip("/")

    def edit(items):
        return [member(root, tarfile.SYMTYPE, link=str(elsewhere)) if info.name == root else (info, data)
                for info, data in items if not info.name.startswith(root + "/")] + [
            member(root + "/pandora_server.conf", data=b"dbname evil\n")]
    hostile = forge(res["archive"], str(tmp_path / "hostile.tar.gz"), edit)
    before = bu.snapshot(*tree.values())
    for check in (True, False):
        with pytest.raises(PreconditionFailed) as info:
            run_restore(None, check_mode=check, src=hostile, restore_db=False, restore_files=True, **tree)
        assert root in str(info.value)
    assert os.path.isdir(tree["config_dir"]) and not os.path.islink(tree["config_dir"])
    assert bu.snapshot(*tree.values()) == before
    assert os.listdir(str(elsewhere)) == []


def test_root_member_that_is_a_symlink_alone_is_refused(tmp_path):
    """Only the root replaced by a link, nothing under it: the real directory must stay."""
    tree = files_tree(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = run_backup(None, dest=str(tmp_path / "b"), include_db=False, **tree)
    root = tree["config_dir"].lstrip("/")

    def edit(items):
        return [member(root, tarfile.SYMTYPE, link=str(elsewhere)) if info.name == root else (info, data)
                for info, data in items if not info.name.startswith(root + "/")]
    hostile = forge(res["archive"], str(tmp_path / "hostile.tar.gz"), edit)
    assert_refused_both_ways(run_restore, "the root of config_dir", settings=None, src=hostile, restore_db=False,
                             restore_files=True, **tree)
    assert os.path.isdir(tree["config_dir"]) and not os.path.islink(tree["config_dir"])


@pytest.mark.parametrize("case", ["dotdot", "absolute", "unnormalised", "hardlink", "device", "fifo",
                                  "under_archive_link", "disk_link"])
def test_unsafe_members_are_refused_before_any_file_changes(tmp_path, case):
    tree = files_tree(tmp_path)
    res = run_backup(None, dest=str(tmp_path / "b"), include_db=False, **tree)
    root = tree["config_dir"].lstrip("/")
    outside = tmp_path / "outside"
    outside.mkdir()
    extra = {
        "dotdot": [member(root + "/../../../outside/evil", data=b"x")],
        "absolute": [member(str(outside / "evil"), data=b"x")],
        "unnormalised": [member(root + "//conf.d/./second.conf", data=b"x")],
        "hardlink": [member(root + "/hard", tarfile.LNKTYPE, link=root + "/pandora_server.conf")],
        "device": [member(root + "/dev", tarfile.CHRTYPE)],
        "fifo": [member(root + "/fifo", tarfile.FIFOTYPE)],
        "under_archive_link": [member(root + "/jump", tarfile.SYMTYPE, link=str(outside)),
                               member(root + "/jump/evil", data=b"x")],
        "disk_link": [member(root + "/conf.d/evil.conf", data=b"x")],
    }[case]
    if case == "disk_link":
        # a link already on disk between the target and the member
        import shutil
        shutil.rmtree(os.path.join(tree["config_dir"], "conf.d"))
        os.symlink(str(outside), os.path.join(tree["config_dir"], "conf.d"))
    hostile = forge(res["archive"], str(tmp_path / "hostile.tar.gz"), lambda items: items + extra)
    before = bu.snapshot(*tree.values())
    for check in (True, False):
        with pytest.raises(PreconditionFailed) as info:
            run_restore(None, check_mode=check, src=hostile, restore_db=False, restore_files=True, **tree)
        assert "before anything changed" in str(info.value)
        named = "conf.d" if case == "disk_link" else extra[-1][0].name
        assert named in str(info.value) or repr(named) in str(info.value), info.value
    assert bu.snapshot(*tree.values()) == before
    assert os.listdir(str(outside)) == []


def test_two_roots_restored_into_one_directory_must_not_collide(tmp_path):
    tree = files_tree(tmp_path)
    res = run_backup(None, dest=str(tmp_path / "b"), include_db=False, **tree)
    spool = tree["spool_dir"].lstrip("/")
    hostile = forge(res["archive"], str(tmp_path / "hostile.tar.gz"),
                    lambda items: items + [member(spool + "/pandora_server.conf", data=b"dbname evil\n")])
    target = dict(settings=None, src=hostile, restore_db=False, restore_files=True)
    target.update(tree)
    target["spool_dir"] = tree["config_dir"]
    before = bu.snapshot(*tree.values())
    assert_refused_both_ways(run_restore, "would both be written to %s/pandora_server.conf" % tree["config_dir"],
                             **target)
    assert bu.snapshot(*tree.values()) == before


def test_unsafe_member_after_a_valid_dump_is_refused_before_the_swap(filled, tmp_path):
    """The issue's case: a valid dump then one '../' member; the live database must keep its content."""
    tree = files_tree(tmp_path)
    res = run_backup(settings_for(filled), dest=str(tmp_path / "b"), **tree)
    root = tree["spool_dir"].lstrip("/")
    hostile = forge(res["archive"], str(tmp_path / "hostile.tar.gz"),
                    lambda items: items + [member(root + "/../evil", data=b"x")])
    bu.scribble(filled)
    before = filled.checksums()
    assert_refused_both_ways(run_restore, "unsafe member name", settings=settings_for(filled), src=hostile,
                             restore_files=True, **tree)
    assert filled.checksums() == before
    assert bu.databases(filled.server, filled.name + "\\_%restore\\_%") == []


STATEMENTS = [
    (b"USE `%(other)s`;\nINSERT INTO `t` VALUES (1);", "USE"),
    (b"INSERT INTO `%(other)s`.`t` VALUES (2);", "INSERT"),
    (b"CREATE TABLE `%(other)s`.`t2` (id INT);", "another database"),
    (b"DROP DATABASE `%(other)s`;", "database statement"),
    (b"GRANT ALL PRIVILEGES ON *.* TO 'x'@'%%';", "privilege statement"),
    (b"/*!50003 CREATE USER 'x'@'%%' IDENTIFIED BY 'y' */;", "account statement"),
    (b"SET PASSWORD FOR 'root'@'localhost' = PASSWORD('x');", "account statement"),
    (b"INSTALL PLUGIN x SONAME 'x.so';", "plugin statement"),
    (b"SELECT 1 INTO OUTFILE '/tmp/x';", "file access"),
    (b"SELECT * FROM `%(other)s`.`t`;", "statement the dump tools never write"),
    (b"\\! touch /tmp/pandora-hostile-client-command", "client command"),
    (b"INSERT INTO `tgrupo` VALUES (1,'x'); USE `%(other)s`; INSERT INTO `t` VALUES ('", "USE"),
    (b"INSERT INTO `tgrupo` VALUES (5, (SELECT 1 FROM `%(other)s`.`t`));", "literals"),
    (b"DELIMITER //\nCREATE PROCEDURE p() BEGIN END //", "delimiter"),
    (b"SET GLOBAL event_scheduler = ON;", "server setting"),
    (b"DELIMITER ;;\nCREATE TRIGGER tr AFTER INSERT ON tgrupo FOR EACH ROW "
     b"INSERT INTO `mysql`.`user` (User) VALUES ('x') ;;\nDELIMITER ;", "mysql"),
    (b"DELIMITER ;;\nCREATE VIEW v AS SELECT * FROM `%(other)s`.`t` ;;\nDELIMITER ;", "%(other)s"),
]


def test_dumps_that_reach_outside_their_database_are_refused(filled, other_db, tmp_path):
    res = run_backup(settings_for(filled), dest=str(tmp_path / "b"), include_files=False)
    bu.scribble(filled)
    before = filled.checksums()
    for index, (statement, match) in enumerate(STATEMENTS):
        hostile = forge(res["archive"], str(tmp_path / ("hostile%d.tar.gz" % index)),
                        edit_dump(statement % {b"other": other_db.encode()}))
        for check in (True, False):
            with pytest.raises(PreconditionFailed) as info:
                run_restore(settings_for(filled), check_mode=check, src=hostile)
            assert match.replace("%(other)s", other_db).lower() in str(info.value).lower(), (statement, info.value)
            assert "line " in str(info.value)
    assert filled.checksums() == before
    assert filled.server.execute("SELECT COUNT(*) FROM `%s`.t" % other_db)[0][0] == 0
    assert filled.server.execute("SELECT COUNT(*) FROM mysql.user WHERE User = 'x'")[0][0] == 0
    assert not os.path.exists("/tmp/pandora-hostile-client-command")
    assert bu.databases(filled.server, filled.name + "\\_%restore\\_%") == []


def test_loading_account_reaches_the_staging_database_only(filled, other_db, tmp_path, monkeypatch):
    """With the dump guard switched off, the server itself refuses: the loader has no other privilege."""
    res = run_backup(settings_for(filled), dest=str(tmp_path / "b"), include_files=False)
    hostile = forge(res["archive"], str(tmp_path / "hostile.tar.gz"),
                    edit_dump(b"INSERT INTO `%s`.`t` VALUES (7);" % other_db.encode()))

    class Blind(object):
        def __init__(self, *args, **kwargs):
            self.rewrite = kwargs.get("rewrite")

        def feed(self, data):
            return data if self.rewrite else b""

        def close(self):
            return b""

        def check_qualifiers(self, names):
            pass
    monkeypatch.setattr(_restore, "DumpGuard", Blind)
    bu.scribble(filled)
    before = filled.checksums()
    with pytest.raises(OperationFailed, match="(?s)staging database .* failed.*INSERT command denied"):
        run_restore(settings_for(filled), src=hostile)
    assert filled.checksums() == before
    assert filled.server.execute("SELECT COUNT(*) FROM `%s`.t" % other_db)[0][0] == 0
    assert filled.server.execute("SELECT COUNT(*) FROM mysql.user WHERE User LIKE 'pfms\\_rst\\_%%'")[0][0] == 0
    assert bu.databases(filled.server, filled.name + "\\_%restore\\_%") == []
