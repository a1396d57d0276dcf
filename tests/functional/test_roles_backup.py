"""The backup role and its pandora-backup job on localhost, against the real test MariaDB.

Every path the role writes points into the test's temporary directory, so this runs without a
container (the molecule scenario molecule/backup covers the same role in one). It checks that
the role is idempotent (a second run and --check --diff report no change), that the job runs
the collection's engine from the installed copy, and how the job fails.
"""

import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
import time

import pytest

SECRET = "Role-job pw#7 \"q\" $x"


@pytest.fixture
def job_user(pandora_db):
    """A database account with a password full of shell and option-file specials."""
    server = pandora_db.server
    server.execute("CREATE USER IF NOT EXISTS 'pb_role'@'127.0.0.1' IDENTIFIED BY %s", None, (SECRET,))
    server.execute("GRANT ALL PRIVILEGES ON `%s`.* TO 'pb_role'@'127.0.0.1'" % pandora_db.name)
    server.execute("GRANT RELOAD, PROCESS ON *.* TO 'pb_role'@'127.0.0.1'")
    pandora_db.query("INSERT INTO tconfig (token, value) VALUES ('MR', '64'), ('db_scheme_version', '7.0NG.776')")
    pandora_db.query("INSERT INTO tagente (nombre, alias) VALUES ('a1', 'one'), ('a2', 'two')")
    yield "pb_role"
    server.execute("DROP USER IF EXISTS 'pb_role'@'127.0.0.1'")


def role_vars(tmp_path, db, **extra):
    root = tmp_path / "host"
    for sub in ("etc/pandora", "spool/data_in/conf", "console/include"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "etc/pandora/pandora_server.conf").write_text("servername test\n")
    (root / "spool/data_in/conf/agent.conf").write_text("agent\n")
    (root / "console/.htaccess").write_text("Options -Indexes\n")
    values = {
        "backup_dest": str(root / "backups"),
        "backup_keep": 2,
        "backup_console_path": str(root / "console"),
        "backup_config_dir": str(root / "etc/pandora"),
        "backup_spool_dir": str(root / "spool/data_in"),
        "backup_login_host": "127.0.0.1",
        "backup_login_port": db.server.port,
        "backup_login_user": "pb_role",
        "backup_login_password": SECRET,
        "backup_login_db": db.name,
        "backup_config_file": "/nonexistent/.my.cnf",
        "backup_install_packages": False,
        "backup_python": sys.executable,
        "backup_cli_path": str(root / "sbin/pandora-backup"),
        "backup_lib_dir": str(root / "lib/pandorafms-server"),
        "backup_options_dir": str(root / "etc/pandorafms-server"),
        "backup_log_file": str(root / "log/pandora_backup.log"),
        "backup_lock_file": str(root / "run/pandorafms-backup.lock"),
        "backup_cron_file": str(root / "cron.d/pandorafms-backup"),
        "backup_systemd_dir": str(root / "systemd"),
    }
    os.makedirs(str(root / "sbin"), exist_ok=True)
    os.makedirs(str(root / "cron.d"), exist_ok=True)
    os.makedirs(str(root / "systemd"), exist_ok=True)
    values.update(extra)
    return values


def apply_role(playbook, values, **kwargs):
    return playbook.run([{"ansible.builtin.include_role": {"name": "pandorafms.server.backup"}, "vars": values}],
                        **kwargs)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def changed_tasks(result):
    return [r for r in result.results if r.get("changed")]


def run_job(values, *args, config=None):
    config = config or os.path.join(values["backup_options_dir"], "backup.json")
    return subprocess.run([values["backup_python"], values["backup_cli_path"], "--config", config] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120,
                          check=False)


def archives(values):
    dest = values["backup_dest"]
    return sorted(n for n in os.listdir(dest) if n.startswith("pandorafms_backup_"))


def test_role_idempotent_run_now_and_scheduler_switch(pandora_db, job_user, playbook, tmp_path):
    values = role_vars(tmp_path, pandora_db)
    first = apply_role(playbook, values, expect_rc=0)
    assert changed_tasks(first), "the first run must install something"

    second = apply_role(playbook, values, expect_rc=0)
    assert changed_tasks(second) == []
    check = apply_role(playbook, values, check=True, diff=True, expect_rc=0)
    assert changed_tasks(check) == []

    options_file = os.path.join(values["backup_options_dir"], "backup.json")
    assert mode(values["backup_dest"]) == 0o700
    assert mode(values["backup_options_dir"]) == 0o700
    assert mode(options_file) == 0o600
    assert mode(values["backup_cli_path"]) == 0o755
    engine = os.path.join(values["backup_lib_dir"], "ansible_collections/pandorafms/server/plugins/module_utils")
    assert {"_backup.py", "_archive.py", "_connection.py"} <= set(os.listdir(engine))
    assert not any("__init__.py" in walked[2] for walked in os.walk(values["backup_lib_dir"]))

    options = json.load(open(options_file))
    assert options["params"]["login_password"] == SECRET
    assert options["params"]["keep"] == 2 and options["params"]["include_db"] is True
    assert "login_unix_socket" not in options["params"]  # unset variables are left out

    cron = open(values["backup_cron_file"]).read()
    lines = [line for line in cron.splitlines() if line and not line.startswith("#") and "=" not in line.split()[0]]
    assert lines == ["30 2 * * * root %s %s --config %s" % (sys.executable, values["backup_cli_path"], options_file)]
    assert "\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n" in cron
    assert SECRET not in cron
    # The password task runs with no_log: not in ansible-playbook's output either.
    assert SECRET not in first.stdout + second.stdout + check.stdout

    # Opt-in run-now: one backup with the module.
    res = apply_role(playbook, dict(values, backup_run_now=True), expect_rc=0)
    backup = [r for r in res.results if "archive" in r]
    assert len(backup) == 1 and backup[0]["changed"] is True
    assert os.path.basename(backup[0]["archive"]) in archives(values)
    assert SECRET not in res.stdout

    # scheduler none: the cron entry goes away; the job stays installed
    res = apply_role(playbook, dict(values, backup_scheduler="none"), expect_rc=0)
    assert changed_tasks(res)
    cron_file = values["backup_cron_file"]
    assert not os.path.exists(cron_file) or "pandora-backup" not in open(cron_file).read()
    assert os.path.exists(values["backup_cli_path"])

    # scheduler systemd (units only: no systemd runs here)
    res = apply_role(playbook, dict(values, backup_scheduler="systemd", backup_systemd_enable=False,
                                    backup_systemd_on_calendar="*-*-* 04:10:00"), expect_rc=0)
    service = os.path.join(values["backup_systemd_dir"], "pandorafms-backup.service")
    timer = os.path.join(values["backup_systemd_dir"], "pandorafms-backup.timer")
    service_text, timer_text = open(service).read(), open(timer).read()
    assert "\nExecStart=%s %s --config %s\n" % (sys.executable, values["backup_cli_path"], options_file) in service_text
    assert "\nType=oneshot\n" in service_text and SECRET not in service_text
    assert "\nOnCalendar=*-*-* 04:10:00\n" in timer_text and "\nPersistent=true\n" in timer_text
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(["systemd-analyze", "verify", service, timer], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, universal_newlines=True, check=False)
        assert verify.returncode == 0 and "pandorafms-backup" not in verify.stdout, verify.stdout


def test_job_backs_up_rotates_logs_and_fails_cleanly(pandora_db, job_user, playbook, tmp_path):
    values = role_vars(tmp_path, pandora_db)
    apply_role(playbook, values, expect_rc=0)
    made = []
    for dummy in range(3):
        res = run_job(values, "--verbose")
        assert res.returncode == 0, res.stderr
        result = json.loads(res.stdout)
        made.append(os.path.basename(result["archive"]))
        assert result["tables"]["tagente"] == 2
        time.sleep(1.05)  # archive names have a resolution of one second
    kept = archives(values)
    assert kept == sorted(made)[-2:]
    for name in kept:
        assert mode(os.path.join(values["backup_dest"], name)) == 0o600
    log = open(values["backup_log_file"]).read()
    assert log.count(" OK archive=") == 3
    assert SECRET not in log

    check = run_job(values, "--check", "--verbose")
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["estimated_size"] > 0
    assert archives(values) == kept

    options = json.load(open(os.path.join(values["backup_options_dir"], "backup.json")))

    # Wrong password: exit 1, a clear message, no password anywhere, no archive.
    wrong = dict(options, params=dict(options["params"], login_password=SECRET + "-wrong"))
    bad_file = str(tmp_path / "wrong.json")
    fd = os.open(bad_file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, json.dumps(wrong).encode())
    os.close(fd)
    res = run_job(values, config=bad_file)
    assert res.returncode == 1
    assert "Access denied" in res.stderr
    assert SECRET not in res.stderr
    assert archives(values) == kept
    assert [n for n in os.listdir(values["backup_dest"]) if n.endswith(".part")] == []
    log = open(values["backup_log_file"]).read()
    assert "FAILED: " in log and SECRET not in log

    # An options file others can read is refused (it holds the password).
    os.chmod(bad_file, 0o644)
    res = run_job(values, config=bad_file)
    assert res.returncode == 2 and "0600" in res.stderr

    # A second run while one holds the lock: exit 75, nothing done.
    with open(values["backup_lock_file"], "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        res = run_job(values)
    assert res.returncode == 75 and "another pandora-backup run" in res.stderr
    assert archives(values) == kept


def test_role_refuses_relative_destination(playbook, tmp_path, pandora_db):
    values = role_vars(tmp_path, pandora_db, backup_dest="relative/backups")
    res = apply_role(playbook, values)
    assert res.rc != 0
    assert "must be absolute" in json.dumps(res.results)
    assert not os.path.exists(os.path.join(str(tmp_path), "relative"))
