"""module_utils/_job.py: the options file, masking, the overlap lock, the log lines, the exit statuses."""

import fcntl
import inspect
import json
import os
import re

import pytest

from ansible_collections.pandorafms.server.plugins.module_utils import _job
from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConnectionFailed, LockBusy
from ansible_collections.pandorafms.server.plugins.module_utils._maintain import (
    MaintenanceRun, options_from_params)

SECRET = 'Job pw#1 "q" $x'


def options_file(tmp_path, data, mode=0o600):
    path = str(tmp_path / "job.json")
    with open(path, "w") as handle:
        handle.write(data if isinstance(data, str) else json.dumps(data))
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize("content, mode, status, text", [
    ("{not json", 0o600, 2, "not valid JSON"),
    ({"log_file": "/x"}, 0o600, 2, 'no "params" object'),
    ({"params": {}}, 0o644, 2, "is mode 0644; it may hold a password, make it 0600"),
])
def test_bad_options_files_are_refused_with_status_2(tmp_path, content, mode, status, text):
    path = options_file(tmp_path, content, mode)
    with pytest.raises(_job.JobFailure) as info:
        _job.read_options(path)
    assert info.value.status == status and text in str(info.value)


def test_missing_options_file(tmp_path):
    with pytest.raises(_job.JobFailure) as info:
        _job.read_options(str(tmp_path / "absent.json"))
    assert info.value.status == 2 and "cannot read the options file" in str(info.value)


class FakeJob(_job.MaintenanceJob):
    """The maintenance job's logging and status handling around a scripted engine outcome."""

    def __init__(self, outcome):
        _job.MaintenanceJob.__init__(self)
        self.outcome = outcome

    def run(self, params, check_mode):
        self.servername = params.get("servername")
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def run(tmp_path, outcome, check_mode=False, **extra):
    log = str(tmp_path / "log" / "pandora_db.log")
    data = {"log_file": log, "lock_file": str(tmp_path / "run" / "job.lock"),
            "params": dict({"servername": "node-b", "login_password": SECRET}, **extra)}
    path = options_file(tmp_path, data)
    try:
        result = _job.run_job(FakeJob(outcome), path, check_mode)
        status = 0
    except _job.JobFailure as exc:
        result, status = str(exc), exc.status
    text = open(log).read() if os.path.exists(log) else ""
    return result, status, text, data


DATED = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d - node-b pandora_db: "


def test_a_skip_on_a_non_master_is_logged_and_succeeds(tmp_path):
    skipped = {"skipped_reason": "not master", "server": {"servername": "node-b", "master": "node-a"}}
    result, status, log, dummy = run(tmp_path, skipped)
    assert status == 0 and result is skipped
    assert re.search(DATED + r"pandora_db maintenance tasks skipped: not master \(master: node-a\)$", log, re.M), log
    assert oct(os.stat(str(tmp_path / "log" / "pandora_db.log")).st_mode & 0o777) == "0o640"


def test_a_done_run_logs_its_totals(tmp_path):
    done = {"skipped_reason": None, "duration": 2.25, "server": {"servername": "node-b"},
            "totals": {"rows": 12, "deleted": 10, "inserted": 1, "updated": 1}}
    dummy, status, log, dummy2 = run(tmp_path, done, check_mode=True)
    assert status == 0
    assert re.search(DATED + r"check mode, nothing changed: pandora_db maintenance tasks done: 12 rows "
                     r"\(10 deleted, 1 inserted, 1 updated\) in 2\.2 s$", log, re.M), log


@pytest.mark.parametrize("error, status", [
    (ConnectionFailed("cannot connect with password %s" % SECRET), 1),
    (LockBusy("another maintenance holds the lock"), 75),
    (ValueError("bug near %s" % SECRET), 1),
])
def test_failures_are_masked_logged_and_mapped_to_statuses(tmp_path, error, status):
    msg, got, log, dummy = run(tmp_path, error)
    assert got == status
    assert SECRET not in msg and SECRET not in log
    assert "********" in msg or status == 75
    assert re.search(DATED + "FAILED: ", log, re.M), log
    if isinstance(error, ValueError):
        assert msg.startswith("unexpected ValueError: ")


def test_a_second_run_while_one_holds_the_lock_exits_75(tmp_path):
    lock = tmp_path / "run" / "job.lock"
    lock.parent.mkdir()
    with open(str(lock), "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        msg, status, dummy, dummy2 = run(tmp_path, {"skipped_reason": "not master"})
    assert status == 75 and "another pandora-db-maintain run holds" in msg


def test_main_prints_the_failure_on_stderr_and_returns_the_status(tmp_path, capsys):
    path = options_file(tmp_path, {"params": {}}, 0o640)
    assert _job.main("db_maintenance", ["--config", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pandora-db-maintain: the options file ") and "0600" in err


def test_options_from_params_gives_the_module_defaults_for_missing_options():
    options = options_from_params({})
    # Every keyword MaintenanceRun takes besides the ones the caller gives itself.
    accepted = set(inspect.signature(MaintenanceRun.__init__).parameters) - {"self", "settings", "server_values"}
    assert set(options) == accepted - {"check_mode", "diff", "statement_hook"}
    assert options["require_master"] is True  # a missing option must never skip the master check
    assert (options["batch_sleep"], options["lock_timeout"], options["steps"]) == (0.0, 0, None)
    given = options_from_params({"require_master": False, "days_purge": 30, "step_compact": 2,
                                 "history_login_password": SECRET})
    assert given["require_master"] is False
    assert given["thresholds"]["days_purge"] == 30 and given["extra_options"]["step_compact"] == 2
    assert given["history"]["password"] == SECRET
