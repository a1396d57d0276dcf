"""pandora_db_maintain through real ansible-playbook: check/diff, idempotency, async, max_runtime, master check,
failures, pandora_server_conf alone, and playbooks/maintain.yml."""

import json
import os
import subprocess
import sys

from harness.collection import COLLECTIONS_ROOT, REPO
from harness.maint_seed import NOW, seed_everything, seed_month, tconfig
from harness.mariadb import ROOT_PASSWORD

MODULE = "pandorafms.server.pandora_db_maintain"


NOW_VARIABLE = "PANDORAFMS_SERVER_TEST_NOW"


def _task(db, **options):
    """A task on ``db``; ``now`` is the clock the module reads from the test-only environment variable."""
    now = options.pop("now", NOW)
    args = dict(db.login(), servername="pandora-main")
    args.update(options)
    return {MODULE: args, "register": "out", "environment": {NOW_VARIABLE: str(now)}}


def _rows(result):
    return dict((s["name"], s["rows"]) for s in result["steps"] if not s["skipped_reason"])


def test_check_diff_then_real_then_nothing_left(pandora_db, playbook):
    seed_everything(pandora_db)
    before = pandora_db.checksums()
    check = playbook.run([_task(pandora_db)], check=True, diff=True, expect_rc=0).last
    assert pandora_db.checksums() == before
    assert check["changed"] is True and check["check_mode"] is True
    assert check["diff"]["before"]["main"]["tagente_datos"] > check["diff"]["after"]["main"]["tagente_datos"]
    real = playbook.run([_task(pandora_db)], expect_rc=0).last
    assert real["changed"] is True
    assert _rows(real) == _rows(check)
    assert real["maintenance_tokens"]["main"]["db_maintance"] == NOW
    again = playbook.run([_task(pandora_db, now=NOW + 300)], expect_rc=0).last
    assert again["changed"] is False
    assert ROOT_PASSWORD not in json.dumps(real) + json.dumps(check)


def test_async_poll_and_max_runtime(pandora_db, playbook):
    seed_month(pandora_db)
    slow = dict(_task(pandora_db, batch_size=20, batch_sleep=0.05, max_runtime=1), **{"async": 120, "poll": 1})
    full = dict(_task(pandora_db), **{"async": 120, "poll": 1})
    full["register"] = "full"
    res = playbook.run([slow, full], expect_rc=0)
    first, second = res.results
    assert first["stopped_early"] is True and first["interrupted_step"] == "module_data"
    assert first["rows_left"] > 0 and first["changed"] is True
    assert second["stopped_early"] is False
    modules = [s for s in second["steps"] if s["name"] == "module_data"][0]
    assert modules["rows"] == first["rows_left"]


def test_non_master_node_is_skipped(pandora_db, playbook):
    seed_month(pandora_db)
    before = pandora_db.checksums()
    out = playbook.run([_task(pandora_db, servername="pandora-node2")], expect_rc=0).last
    assert out["changed"] is False and out["skipped_reason"] == "not master"
    assert pandora_db.checksums() == before


def test_failures_are_clear_and_never_show_the_password(pandora_db, playbook):
    tconfig(pandora_db, event_purge="lots")
    bad_password = dict(pandora_db.login(), login_password="S3cret-wrong-pw", require_master=False)
    tasks = [
        dict(_task(pandora_db, require_master=False), ignore_errors=True),
        dict(_task(pandora_db, days_purge=-3, require_master=False), ignore_errors=True),
        {MODULE: bad_password, "ignore_errors": True},
    ]
    res = playbook.run(tasks, expect_rc=0)
    garbage, negative, login = res.results
    assert garbage["failed"] and "tconfig token event_purge is 'lots'" in garbage["msg"]
    assert negative["failed"] and "option days_purge is -3" in negative["msg"]
    assert login["failed"] and "Access denied" in login["msg"]
    assert "S3cret-wrong-pw" not in res.stdout + res.stderr


def test_lock_busy_fails_fast_through_the_module(pandora_db, playbook):
    holder = pandora_db.connect()
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT GET_LOCK(%s, 0)", ("%s_pandora_db" % pandora_db.name,))
        out = playbook.run([dict(_task(pandora_db, require_master=False), ignore_errors=True)], expect_rc=0).last
    finally:
        holder.close()
    assert out["failed"] and "another maintenance run holds the lock" in out["msg"]


def test_pandora_server_conf_alone_is_enough(pandora_db, playbook, tmp_path):
    seed_month(pandora_db)
    conf = tmp_path / "pandora_server.conf"
    conf.write_text("# Pandora FMS server configuration\nservername pandora-main\ndbengine mysql\n"
                    "dbname %s\ndbuser root\ndbpass %s\ndbhost 127.0.0.1\ndbport %d\nincomingdir %s\n"
                    "log_file /var/log/pandora/pandora_server.log"
                    % (pandora_db.name, ROOT_PASSWORD, pandora_db.server.port, tmp_path))
    task = {MODULE: {"pandora_server_conf": str(conf)}, "environment": {NOW_VARIABLE: str(NOW)}}
    out = playbook.run([task], expect_rc=0).last
    assert out["skipped_reason"] is None
    assert out["server"]["servername"] == "pandora-main" == out["server"]["master"]
    assert out["database"] == pandora_db.name
    assert out["changed"] is True


def test_maintain_playbook_across_an_inventory(pandora_db, tmp_path):
    seed_month(pandora_db)
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[pandora_servers]\nnode1 ansible_connection=local\nnode2 ansible_connection=local\n")
    extra = tmp_path / "vars.json"
    common = {"pandora_server_conf": "", "pandora_maintain_login_host": "127.0.0.1",
              "pandora_maintain_login_port": pandora_db.server.port, "pandora_maintain_login_user": "root",
              "pandora_maintain_login_password": ROOT_PASSWORD, "pandora_maintain_login_db": pandora_db.name,
              "pandora_maintain_config_file": "", "pandora_maintain_poll": 1, "pandora_maintain_days_purge": 20}
    extra.write_text(json.dumps(common))
    os.chmod(str(extra), 0o600)
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "node1.yml").write_text("pandora_maintain_servername: pandora-main\n")
    (tmp_path / "host_vars" / "node2.yml").write_text("pandora_maintain_servername: pandora-node2\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_HOME=str(tmp_path / ".ansible"),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / ".ansible" / "tmp"), ANSIBLE_NOCOLOR="1")
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inventory),
           os.path.join(REPO, "playbooks", "maintain.yml"), "-e", "@%s" % extra]
    runs = []
    for flags in (["--check"], []):
        proc = subprocess.run(cmd + flags, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                              env=env, cwd=str(tmp_path), check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        runs.append(json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"])
    check, real = runs
    assert check["node2"]["skipped_reason"] == real["node2"]["skipped_reason"] == "not master"
    assert check["node1"]["changed"] is True and check["node1"]["check_mode"] is True
    assert _rows(check["node1"]) == _rows(real["node1"])
    assert [s for s in real["node1"]["steps"] if s["name"] == "module_data"][0]["threshold"]["value"] == 20
    assert ROOT_PASSWORD not in json.dumps(runs)
