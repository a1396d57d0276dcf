"""Every value pandora_db_maintain, pandora_db_info and the connection options refuse is refused by name, in check
mode exactly as in the real run, before anything changes, and never as a traceback or a raw SQL error.

All cases run as tasks of one playbook, each once with ``check_mode: true`` and once without (one ansible-playbook
run for the whole file); each case is then its own test.
"""

import pytest

from harness.maint_seed import NOW, seed_month
from harness.mariadb import ROOT_PASSWORD

MAINTAIN = "pandorafms.server.pandora_db_maintain"
INFO = "pandorafms.server.pandora_db_info"
NOW_VARIABLE = "PANDORAFMS_SERVER_TEST_NOW"

# One case per class of refusal (ports and timeouts of the connection, of the history connection, ... are one class:
# the unit tests in tests/unit/test_option_validation.py go through every option and its edges):
# (case id, module, options on top of the login, text the message must hold).
CASES = [
    ("compaction_option_out_of_range", MAINTAIN, {"compact_chunk_rows": 0}, "option compact_chunk_rows is 0"),
    ("batch_size_beyond_the_maximum", MAINTAIN, {"batch_size": 10 ** 12},
     "option batch_size is 1000000000000; it must be at most 100000"),
    ("steps_empty", MAINTAIN, {"steps": []}, "steps is an empty list"),
    ("login_port_out_of_range", MAINTAIN, {"login_port": 70000}, "login_port is 70000; a TCP port is"),
    ("config_file_garbage", MAINTAIN, {"config_file": "{bad_timeout_cnf}"},
     "connect_timeout in config_file {bad_timeout_cnf} is 'abc'"),
    ("tls_file_missing", MAINTAIN, {"ca_cert": "/nonexistent/ca.pem"}, "ca_cert /nonexistent/ca.pem does not"),
    ("run_limit_out_of_range", MAINTAIN, {"lock_timeout": -1}, "option lock_timeout is -1"),
    ("threshold_out_of_range", MAINTAIN, {"session_timeout": -2}, "option session_timeout is -2"),
    ("relative_path", MAINTAIN, {"incomingdir": "spool/in"}, "option incomingdir is 'spool/in'"),
    # In tconfig: compaction on with step_compact 0, and data the purge would delete first (before this was
    # checked up front, the real run purged and then failed in the compaction step).
    ("tconfig_value_out_of_range", MAINTAIN, {}, "tconfig token step_compact is 0"),
    ("info_config_file_garbage", INFO, {"config_file": "{bad_timeout_cnf}"},
     "connect_timeout in config_file {bad_timeout_cnf} is 'abc'"),
]


def checksums(db):
    """CHECKSUM TABLE of every table in one statement (equal dicts mean equal content)."""
    tables = [row[0] for row in db.query("SHOW TABLES")]
    return dict(db.query("CHECKSUM TABLE " + ", ".join("`%s`" % table for table in tables)))


@pytest.fixture(scope="module")
def refusals(main_server, tmp_path_factory):
    """The playbook run over every case in both modes, the database's checksums around it."""
    from conftest import Database, PlaybookRunner, _new_db

    work = tmp_path_factory.mktemp("refusals")
    files = {"bad_timeout_cnf": str(work / "timeout.cnf")}
    with open(files["bad_timeout_cnf"], "w") as handle:
        handle.write("[client]\nuser=root\nconnect_timeout=abc\n")
    db = _new_db(main_server, "refuse")
    try:
        seed_month(db, agents=2, days=35, tconfig_values={"days_compact": "5", "step_compact": "0"})
        tasks = []
        for case_id, module, options, dummy in CASES:
            args = dict(db.login(), **dict((k, v.format(**files) if isinstance(v, str) else v)
                                           for k, v in options.items()))
            if module == MAINTAIN:
                args.update(require_master=False)
            for mode in ("check", "real"):
                tasks.append({"name": "%s %s" % (case_id, mode), module: args, "check_mode": mode == "check",
                              "ignore_errors": True, "environment": {NOW_VARIABLE: str(NOW)}})
        before = checksums(db)
        res = PlaybookRunner(str(work)).run(tasks)
        assert len(res.results) == 2 * len(CASES), res.stdout[-3000:]
        out = {"check": {}, "real": {}, "output": res.stdout + res.stderr}
        for index, case in enumerate(CASES):
            out["check"][case[0]], out["real"][case[0]] = res.results[2 * index:2 * index + 2]
        out["unchanged"] = checksums(db) == before
        out["files"] = files
        yield out
    finally:
        Database.drop(db)


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_refused_by_name_in_check_mode_as_in_the_real_run(refusals, case):
    case_id, module, options, expected = case
    expected = expected.format(**refusals["files"])
    check, real = refusals["check"][case_id], refusals["real"][case_id]
    for result in (check, real):
        assert result.get("failed") is True, result
        assert result.get("changed") is False, result
        msg = result["msg"]
        assert expected in msg, msg
        for bad in ("Traceback", "Module failed", "unexpected error", ROOT_PASSWORD):
            assert bad not in msg, msg
    assert check["msg"].split(". Check mode: nothing")[0] == real["msg"].split(". Nothing was changed")[0]
    if case_id.startswith("tconfig"):
        assert "Nothing was changed" in real["msg"] and "Check mode: nothing was changed" in check["msg"]
    assert refusals["unchanged"] is True
    assert ROOT_PASSWORD not in refusals["output"]
