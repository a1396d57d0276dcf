"""What pandora_db_maintain tells its user when the database is not as it should be, through ansible-playbook:
a missing core table is a warning, a login without the privileges is refused in check mode as in the real run, and
a database error in the middle of a run says what failed, what was changed and what to do."""

from harness.maint_seed import NOW, seed_month
from harness.mariadb import ROOT_PASSWORD

MODULE = "pandorafms.server.pandora_db_maintain"
ENV = {"PANDORAFMS_SERVER_TEST_NOW": str(NOW)}


def checksums(db):
    """CHECKSUM TABLE of every table in one statement (equal dicts mean equal content)."""
    tables = [row[0] for row in db.query("SHOW TABLES")]
    return dict(db.query("CHECKSUM TABLE " + ", ".join("`%s`" % table for table in tables)))


def _tasks(login, **options):
    """The same task in check mode, then for real."""
    args = dict(login, require_master=False, **options)
    return [{"name": "check", MODULE: args, "check_mode": True, "ignore_errors": True, "environment": ENV},
            {"name": "real", MODULE: args, "ignore_errors": True, "environment": ENV}]


def _token(db):
    return db.scalar("SELECT value FROM tconfig WHERE token = 'db_maintance'")


def test_missing_core_table_is_a_warning(pandora_db, playbook):
    seed_month(pandora_db, agents=1, days=35)
    pandora_db.query("DROP TABLE tevent_comment, tevent_extended, tevento")
    check, real = playbook.run(_tasks(pandora_db.login(), steps=["purge"]), expect_rc=0).results
    for result in (check, real):
        assert not result.get("failed"), result
        warnings = " ".join(result.get("warnings", []))
        assert "lacks core Pandora FMS table(s) tevento" in warnings, result.get("warnings")
        assert "events: table tevento does not exist in this schema, skipped" in result["notes"]


def test_login_without_privileges_is_refused_in_check_mode_too(pandora_db, playbook):
    seed_month(pandora_db, agents=1, days=35)
    user = "ro_%s" % pandora_db.name[-12:]
    pandora_db.query("CREATE USER '%s'@'%%' IDENTIFIED BY 'Ro-pw_1'" % user)
    try:
        pandora_db.query("GRANT SELECT ON `%s`.* TO '%s'@'%%'" % (pandora_db.name, user))
        before = checksums(pandora_db)
        login = dict(pandora_db.login(), login_user=user, login_password="Ro-pw_1")
        check, real = playbook.run(_tasks(login), expect_rc=0).results
        assert checksums(pandora_db) == before
    finally:
        pandora_db.query("DROP USER '%s'@'%%'" % user)
    for result in (check, real):
        assert result["failed"] is True and result["changed"] is False
        assert "lacks the INSERT, UPDATE, DELETE privilege(s) on database '%s'" % pandora_db.name in result["msg"]
        assert "Traceback" not in result["msg"] and "Ro-pw_1" not in result["msg"]
    assert "Check mode: nothing was changed" in check["msg"]
    assert "Nothing was changed" in real["msg"]


def test_database_error_mid_run_says_what_changed(pandora_db, playbook):
    seed_month(pandora_db, agents=1, days=35)
    pandora_db.query("CREATE TRIGGER refuse_event_delete BEFORE DELETE ON tevento FOR EACH ROW"
                     " SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'events are kept by a trigger'")
    old_data = pandora_db.scalar("SELECT COUNT(*) FROM tagente_datos WHERE utimestamp < %s", (NOW - 30 * 86400,))
    assert old_data > 0
    token = _token(pandora_db)
    res = playbook.run(_tasks(pandora_db.login(), steps=["purge"]), expect_rc=0)
    check, real = res.results
    assert check["changed"] is True and not check.get("failed")
    assert real["failed"] is True
    msg = real["msg"]
    assert "failed on table tevento: (1644) events are kept by a trigger" in msg
    assert "See the database server's error log" in msg
    assert "committed their batches (module_data" in msg and "db_maintance was not written" in msg
    assert "Traceback" not in msg and ROOT_PASSWORD not in res.stdout + res.stderr
    # What the message says is true: module data before the events step went, the token was not written.
    assert pandora_db.scalar("SELECT COUNT(*) FROM tagente_datos WHERE utimestamp < %s", (NOW - 30 * 86400,)) == 0
    assert _token(pandora_db) == token
    assert [s["name"] for s in real["steps"]][-1] != "events"
