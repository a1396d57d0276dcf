"""The module glue end to end: pandora_db_info through real ansible-playbook."""


def test_info_module_reports_schema(pandora_db, playbook):
    pandora_db.query("INSERT INTO tconfig (token, value) VALUES ('MR', '64'), ('days_purge', '45'),"
                     " ('days_purge', '30')")
    res = playbook.run([{"pandorafms.server.pandora_db_info": pandora_db.login()}], expect_rc=0)
    out = res.last
    assert out["server"]["engine"] == "mariadb"
    assert out["schema"]["MR"] == "64"
    assert out["tconfig_duplicates"] == {"days_purge": ["45", "30"]}
    assert out["maintenance_lock_free"] is True
    assert out["changed"] is False
