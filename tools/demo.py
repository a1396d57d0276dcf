"""``make demo``: the maintenance job on a throwaway MariaDB with a month of demo data.

1. starts a private mariadbd (its own temporary directory, 127.0.0.1, a free port);
2. loads the project's Pandora schema fixture and generates about 35 days of realistic monitoring
   data (tests/harness/datagen.py), plus a few things the maintenance cleans up: an agent disabled
   for 40 days, an autodisabled one, a module pending deletion, status rows of deleted modules, ...;
3. runs ``playbooks/maintain.yml`` with ``--check --diff`` (nothing changes), then for real, then
   once more (nothing left to do);
4. prints, step by step, what the check predicted and what the real run did;
5. stops the server (by its pid) and removes the temporary directory, whatever happens.

Options: ``--days-compact N`` also compacts data older than N days (0 = off, the default),
``--keep`` leaves the temporary directory (not the server) for inspection.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

from harness import datagen, schema  # noqa: E402
from harness.collection import COLLECTIONS_ROOT, ensure_collection_link  # noqa: E402
from harness.mariadb import ROOT_PASSWORD, MariaDBServer  # noqa: E402

DAY = 86400
DB = "pandora"
SERVERNAME = "pandora-main"  # the master row datagen writes to tserver
TCONFIG = {"days_purge": "30", "string_purge": "7", "event_purge": "15", "audit_purge": "15", "trap_purge": "7",
           "gis_purge": "7", "session_timeout": "90", "delete_old_messages": "21", "delete_disabled_agents": "30",
           "days_autodisable_deletion": "30", "days_compact": "0", "step_compact": "1"}


def say(text=""):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def extras(conn, now):
    """Rows that give the agent, module and consistency steps something to do."""
    old = now - 40 * DAY
    with conn.cursor() as cur:
        cur.execute("INSERT INTO tagente (id_agente, nombre, alias, id_grupo, ultimo_contacto, disabled, modo) VALUES"
                    " (9001, 'retired-web-01', 'retired-web-01', 10, FROM_UNIXTIME(%s), 1, 1),"
                    " (9002, 'laptop-sales-7', 'laptop-sales-7', 10, FROM_UNIXTIME(%s), 1, 2),"
                    " (9003, 'db-replica-2', '', 10, FROM_UNIXTIME(%s), 0, 1)", (old, now - 35 * DAY, now))
        for module_id, agent_id, pending in ((90011, 9001, 0), (90012, 9001, 0), (90021, 9002, 0),
                                             (90031, 9003, 0), (90032, 9003, 1)):
            cur.execute("INSERT INTO tagente_modulo (id_agente_modulo, id_agente, id_tipo_modulo, nombre,"
                        " delete_pending) VALUES (%s, %s, 1, 'cpu_load', %s)", (module_id, agent_id, pending))
            cur.execute("INSERT INTO tagente_estado (id_agente_modulo, id_agente, estado, utimestamp) VALUES"
                        " (%s, %s, 0, %s)", (module_id, agent_id, now))
            cur.execute("INSERT INTO tevento (id_agente, id_agentmodule, utimestamp, `timestamp`, evento) VALUES"
                        " (%s, %s, %s, FROM_UNIXTIME(%s), 'Module went critical')",
                        (agent_id, module_id, now - 3600, now - 3600))
        cur.execute("INSERT INTO tagente_modulo (id_agente_modulo, id_agente, id_tipo_modulo, nombre) VALUES"
                    " (90033, 9003, 1, 'memory_free')")  # no status row yet
        cur.execute("INSERT INTO tagente_estado (id_agente_modulo, id_agente, estado) VALUES (99999, 9003, 0)")
        cur.execute("INSERT INTO tgroup_stat (id_group, modules, agents) VALUES (10, 250, 31)")
        cur.execute("INSERT INTO tnotification_source (id, description) VALUES (1, 'System status')")
        for age in (30, 25, 2):
            cur.execute("INSERT INTO tmensajes (mensaje, `timestamp`, id_source) VALUES ('Update available', %s, 1)",
                        (now - age * DAY,))
        cur.execute("INSERT INTO tserver (name, status, server_type) VALUES ('old-discovery', -1, 3),"
                    " ('pandora-discovery', 1, 3)")
        cur.execute("INSERT INTO trecon_task (name, id_recon_server) VALUES ('office LAN', 12345)")


def run_playbook(workdir, flags):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_HOME=os.path.join(workdir, ".ansible"),
               ANSIBLE_LOCAL_TEMP=os.path.join(workdir, ".ansible", "tmp"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i",
           os.path.join(workdir, "inventory.ini"), os.path.join(REPO, "playbooks", "maintain.yml"),
           "-e", "@" + os.path.join(workdir, "vars.json")] + flags
    say("$ ansible-playbook -i inventory.ini playbooks/maintain.yml -e @vars.json %s" % " ".join(flags))
    started = time.time()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env,
                          cwd=workdir, check=False)
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        raise SystemExit("ansible-playbook failed (rc %s):\n%s\n%s"
                         % (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    result = data["plays"][0]["tasks"][0]["hosts"]["pandora-demo"]
    if proc.returncode != 0 or result.get("failed"):
        raise SystemExit("the maintenance failed: %s" % result.get("msg", proc.stderr[-3000:]))
    what = "check" if "--check" in flags else "run"
    say("  -> %s in %.1f s (changed: %s)" % (what, time.time() - started, result["changed"]))
    return result


def table(check, real):
    predicted = dict(((s["database"], s["name"], s["table"]), s) for s in check["steps"])
    rows, idle = [], []
    for step in real["steps"]:
        guess = predicted.get((step["database"], step["name"], step["table"]), {})
        if step["skipped_reason"]:
            continue
        if not step["rows"] and not guess.get("rows"):
            idle.append(step["name"])
            continue
        rows.append((step["name"], step["table"] or "-", guess.get("rows", "-"), step["rows"], step["seconds"]))
    say("%-44s %-30s %11s %10s %8s" % ("step", "table", "check mode", "real run", "seconds"))
    say("-" * 107)
    for name, tbl, guess, done, seconds in rows:
        say("%-44s %-30s %11s %10s %8.3f" % (name, tbl, guess, done, seconds))
    say("-" * 107)
    totals = real["totals"]
    say("%d rows deleted, %d inserted, %d updated in %.1f s." % (
        totals["deleted"], totals["inserted"], totals["updated"], real["duration"]))
    say("Nothing to do for: %s." % ", ".join(idle))
    skipped = ["%s (%s)" % (s["name"], s["skipped_reason"]) for s in real["steps"] if s["skipped_reason"]]
    say("Skipped: %s." % "; ".join(skipped))


def main():
    parser = argparse.ArgumentParser(description="pandora_db_maintain on a throwaway MariaDB")
    parser.add_argument("--days-compact", type=int, default=0)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    ensure_collection_link()
    workdir = tempfile.mkdtemp(prefix="pandora-demo-")
    server = MariaDBServer(basedir=os.path.join(workdir, "mariadb"), name="demo")
    try:
        say("Starting a throwaway MariaDB in %s ..." % workdir)
        server.start()
        schema.load_fixture(server, DB)
        now = int(time.time())
        values = dict(TCONFIG, days_compact=str(args.days_compact))
        conn = server.connect(DB)
        say("Generating 35 days of monitoring data (30 agents, 240 modules, 5-minute samples) ...")
        summary = datagen.generate(conn, now=now, agents=30, modules_per_agent=8, days=35, interval=300, events=20000,
                                   traps=3000, sessions=500, audit=3000, tconfig=values)
        extras(conn, now)
        conn.close()
        say("  %s" % ", ".join("%s %s" % (k, v) for k, v in summary.items() if k != "now"))
        say("  tconfig: %s" % ", ".join("%s=%s" % item for item in sorted(values.items())))
        with open(os.path.join(workdir, "inventory.ini"), "w") as handle:
            handle.write("[pandora_servers]\npandora-demo ansible_connection=local\n")
        extra = {"pandora_server_conf": "", "pandora_maintain_login_host": "127.0.0.1",
                 "pandora_maintain_login_port": server.port, "pandora_maintain_login_user": "root",
                 "pandora_maintain_login_password": ROOT_PASSWORD, "pandora_maintain_login_db": DB,
                 "pandora_maintain_config_file": "", "pandora_maintain_servername": SERVERNAME,
                 "pandora_maintain_poll": 1, "pandora_maintain_log_file": os.path.join(workdir, "pandora_db.log")}
        fd = os.open(os.path.join(workdir, "vars.json"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(extra, handle)
        say()
        check = run_playbook(workdir, ["--check", "--diff"])
        real = run_playbook(workdir, [])
        again = run_playbook(workdir, [])
        say()
        table(check, real)
        say()
        say("Rows per table before -> after (check mode's prediction of the diff):")
        before, after = check["diff"]["before"]["main"], check["diff"]["after"]["main"]
        say("  " + ", ".join("%s %d -> %d" % (t, before[t], after[t]) for t in sorted(before) if before[t] != after[t]))
        say("Second real run: changed=%s, %d rows." % (again["changed"], again["totals"]["rows"]))
        say()
        say("The run log, in pandora_db.pl's format (first and last lines):")
        log = real["log"]
        for line in log[:9] + ["  ..."] + log[-4:]:
            say("  " + line)
    finally:
        server.stop()
        if args.keep:
            say("kept %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    say("Done: the server is stopped and its directory removed.")


if __name__ == "__main__":
    main()
