"""The db_maintenance role on localhost: the cron file, the refusals, and the collection's job.

Every path the role writes points into the test's temporary directory. The stock tool and the
server daemon are small stand-ins that print the real banners (the molecule scenario
molecule/db_maintenance runs the real ones in containers); the collection's job runs the real
engine against the private test MariaDB.
"""

import json
import os
import stat
import subprocess
import sys
import time

from harness.mariadb import ROOT_PASSWORD

DEBIAN_CRON = "#!/bin/bash\nperl /usr/share/pandora_server/util/pandora_db.pl /etc/pandora/pandora_server.conf\n"
SECRET = 'Maint pw#9 "q" $x'


def banner_script(path, text, status):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write("#!/bin/sh\nprintf '%%s\\n\\n' %s\necho 'Usage: ...'\nexit %d\n" % (json.dumps(text), status))
    os.chmod(path, 0o755)
    return path


def host(tmp_path):
    root = tmp_path / "host"
    for sub in ("cron.hourly", "etc/pandora", "log", "sbin", "systemd"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def stock_vars(root, **extra):
    values = {
        "db_maintenance_cron_dir": str(root / "cron.hourly"),
        "db_maintenance_server_conf": str(root / "etc/pandora/pandora_server.conf"),
        "db_maintenance_tool_paths": [str(root / "usr/share/pandora_server/util/pandora_db.pl"),
                                      str(root / "usr/share/pandora/util/pandora_db.pl")],
        "db_maintenance_server_bin": str(root / "usr/bin/pandora_server"),
        "db_maintenance_options_dir": str(root / "etc/pandorafms-server"),
        "db_maintenance_cli_path": str(root / "sbin/pandora-db-maintain"),
        "db_maintenance_lib_dir": str(root / "lib/pandorafms-server"),
        "db_maintenance_log_file": str(root / "log/pandora_db.log"),
        "db_maintenance_lock_file": str(root / "run/pandorafms-db-maintenance.lock"),
        "db_maintenance_systemd_dir": str(root / "systemd"),
        "db_maintenance_python": sys.executable,
        "db_maintenance_install_packages": False,
    }
    values.update(extra)
    return values


def apply_role(playbook, values, **kwargs):
    return playbook.run([{"ansible.builtin.include_role": {"name": "pandorafms.server.db_maintenance"},
                          "vars": values}], **kwargs)


def changed_tasks(result):
    return [r for r in result.results if r.get("changed")]


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def failure(result):
    return " ".join(r.get("msg", "") for r in result.results if r.get("failed"))


def command_lines(path):
    return [line for line in open(path).read().splitlines() if line and not line.startswith("#")]


def test_stock_cron_file_found_in_old_location_forced_to_0755_idempotent(playbook, tmp_path):
    root = host(tmp_path)
    old_tool = banner_script(str(root / "usr/share/pandora/util/pandora_db.pl"),
                             "Pandora FMS DB Tool v7.0NG.776 Build 240328", 255)
    banner_script(str(root / "usr/bin/pandora_server"), "Pandora FMS Server v7.0NG.776 Build 240328", 0)
    cron = root / "cron.hourly/pandora_db"
    cron.write_text(DEBIAN_CRON)  # what Debian's package leaves: mode 0750
    os.chmod(str(cron), 0o750)
    values = stock_vars(root)

    first = apply_role(playbook, values, expect_rc=0)
    assert changed_tasks(first)
    assert mode(str(cron)) == 0o755
    st = os.stat(str(cron))
    assert (st.st_uid, st.st_gid) == (0, 0)
    text = cron.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert command_lines(str(cron)) == ['"%s" "%s" >/dev/null 2>&1' % (old_tool, values["db_maintenance_server_conf"])]
    # run-parts would run it (its name is valid and it is executable).
    listed = subprocess.run(["run-parts", "--list", str(root / "cron.hourly")], stdout=subprocess.PIPE,
                            universal_newlines=True, check=True).stdout.split()
    assert listed == [str(cron)]

    assert changed_tasks(apply_role(playbook, values, expect_rc=0)) == []
    assert changed_tasks(apply_role(playbook, values, check=True, diff=True, expect_rc=0)) == []

    # Enterprise's binary when asked for.
    enterprise = banner_script(str(root / "usr/bin/pandora_db"), "Pandora FMS DB Tool v7.0NG.776 Build 240328", 0)
    apply_role(playbook, dict(values, db_maintenance_enterprise=True, db_maintenance_enterprise_tool=enterprise),
               expect_rc=0)
    assert command_lines(str(cron)) == ['"%s" "%s" >/dev/null 2>&1' % (enterprise, values["db_maintenance_server_conf"])]


def test_name_run_parts_would_skip_is_refused_before_anything_changes(playbook, tmp_path):
    root = host(tmp_path)
    values = stock_vars(root, db_maintenance_cron_name="pandora_db.sh", db_maintenance_method="collection")
    for check in (True, False):
        res = apply_role(playbook, values, check=check)
        assert res.rc != 0
        msg = failure(res)
        assert "db_maintenance_cron_name" in msg and "pandora_db.sh" in msg and "run-parts" in msg, msg
        assert os.listdir(str(root / "cron.hourly")) == []
        assert not os.path.exists(values["db_maintenance_options_dir"])
        assert not os.path.exists(values["db_maintenance_lib_dir"])


def test_tool_version_mismatch_and_missing_tool_fail_naming_the_versions(playbook, tmp_path):
    root = host(tmp_path)
    tool = banner_script(str(root / "usr/share/pandora_server/util/pandora_db.pl"),
                         "Pandora FMS DB Tool v7.0NG.775 Build 231212", 255)
    banner_script(str(root / "usr/bin/pandora_server"), "Pandora FMS Server v7.0NG.776 Build 240328", 0)
    cron = root / "cron.hourly/pandora_db"
    cron.write_text(DEBIAN_CRON)
    os.chmod(str(cron), 0o750)
    values = stock_vars(root)
    for check in (True, False):
        res = apply_role(playbook, values, check=check)
        assert res.rc != 0
        msg = failure(res)
        assert "Version mismatch" in msg and tool in msg, msg
        assert "7.0NG.775" in msg and "7.0NG.776" in msg, msg
        assert cron.read_text() == DEBIAN_CRON and mode(str(cron)) == 0o750  # untouched

    os.remove(tool)
    res = apply_role(playbook, values, check=True)
    msg = failure(res)
    assert res.rc != 0 and "not installed" in msg, msg
    for path in values["db_maintenance_tool_paths"]:
        assert path in msg


def write_server_conf(path, db, servername):
    path.write_text("servername %s\ndbhost 127.0.0.1\ndbport %d\ndbname %s\ndbuser root\ndbpass %s\n"
                    "incomingdir /nonexistent/data_in\n" % (servername, db.server.port, db.name, ROOT_PASSWORD))
    os.chmod(str(path), 0o600)


def token(db):
    value = db.scalar("SELECT value FROM tconfig WHERE token = 'db_maintance'")
    return int(value) if value is not None else None


def run_cron(path):
    return subprocess.run([path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=300, check=False, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


def test_collection_method_runs_the_engine_logs_and_skips_on_a_non_master(playbook, tmp_path, pandora_db):
    root = host(tmp_path)
    conf = root / "etc/pandora/pandora_server.conf"
    write_server_conf(conf, pandora_db, "node-a")
    pandora_db.query("INSERT INTO tserver (name, server_type, master, status, keepalive) VALUES "
                     "('node-a', 0, 1, 1, NOW()), ('node-b', 0, 0, 1, NOW())")
    values = stock_vars(root, db_maintenance_method="collection", db_maintenance_scheduler="cron")
    cron = str(root / "cron.hourly/pandora_db")

    first = apply_role(playbook, values, expect_rc=0)
    assert changed_tasks(first)
    assert changed_tasks(apply_role(playbook, values, expect_rc=0)) == []
    assert mode(cron) == 0o755 and mode(values["db_maintenance_cli_path"]) == 0o755
    options_file = os.path.join(values["db_maintenance_options_dir"], "db_maintenance.json")
    assert mode(options_file) == 0o600 and mode(values["db_maintenance_options_dir"]) == 0o700
    job_line = '"%s" "%s" --config "%s"' % (sys.executable, values["db_maintenance_cli_path"], options_file)
    assert command_lines(cron) == [job_line]
    options = json.load(open(options_file))
    assert options["params"] == {"pandora_server_conf": str(conf), "log_file": values["db_maintenance_log_file"],
                                 "require_master": True}

    # The master's run: the engine maintains the database, silently, and logs in upstream's format.
    before = int(time.time())
    res = run_cron(cron)
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    assert token(pandora_db) >= before
    log = open(values["db_maintenance_log_file"]).read()
    assert "\nStarting at " in log and "\nEnding at " in log
    assert " [PURGE] " in log
    assert " - node-a pandora_db: pandora_db maintenance tasks done: " in log
    assert ROOT_PASSWORD not in log

    # node-b is not the master: a logged skip, exit 0, nothing done.
    pandora_db.query("UPDATE tconfig SET value = '1000' WHERE token = 'db_maintance'")
    write_server_conf(conf, pandora_db, "node-b")
    res = run_cron(cron)
    assert (res.returncode, res.stderr) == (0, "")
    assert token(pandora_db) == 1000
    log = open(values["db_maintenance_log_file"]).read()
    assert "Not a master server (master: node-a, this server: node-b)" in log
    assert " - node-b pandora_db: pandora_db maintenance tasks skipped: not master (master: node-a)" in log

    # A failing run (wrong password) exits 1 with the reason on stderr and in the log, without the password.
    conf.write_text(conf.read_text().replace("dbpass %s" % ROOT_PASSWORD, "dbpass %s" % SECRET))
    res = run_cron(cron)
    assert res.returncode == 1 and "Access denied" in res.stderr, res.stderr
    log = open(values["db_maintenance_log_file"]).read()
    assert "pandora_db: FAILED: " in log
    assert SECRET not in log + res.stderr

    # The systemd timer instead of the cron file (units only: systemd does not run here).
    apply_role(playbook, dict(values, db_maintenance_scheduler="systemd", db_maintenance_systemd_enable=False),
               expect_rc=0)
    assert not os.path.exists(cron)
    service = open(os.path.join(values["db_maintenance_systemd_dir"], "pandorafms-db-maintenance.service")).read()
    timer = open(os.path.join(values["db_maintenance_systemd_dir"], "pandorafms-db-maintenance.timer")).read()
    assert '\nExecStart="%s" "%s" --config "%s"\n' % (sys.executable, values["db_maintenance_cli_path"],
                                                      options_file) in service
    assert "\nOnCalendar=hourly\n" in timer

    # state absent: the units, the command, its options and the cron file go.
    apply_role(playbook, dict(values, db_maintenance_state="absent"), expect_rc=0)
    for gone in (cron, values["db_maintenance_cli_path"], options_file,
                 os.path.join(values["db_maintenance_systemd_dir"], "pandorafms-db-maintenance.timer"),
                 os.path.join(values["db_maintenance_systemd_dir"], "pandorafms-db-maintenance.service")):
        assert not os.path.exists(gone), gone
