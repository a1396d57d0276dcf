"""``make demo``: the maintenance job on a throwaway MariaDB with a month of demo data.

1. starts two private mariadbd servers (their own temporary directory, 127.0.0.1, free ports): the
   main database and the history database;
2. loads the project's Pandora schema fixture on both and generates 35 days of realistic monitoring
   data on the main one (tests/harness/datagen.py), plus a few things the maintenance cleans up: an
   agent disabled for 40 days, an autodisabled one, a module pending deletion, status rows of
   deleted modules, ...; the main tconfig points at the history database (history_db_days 20);
3. runs ``playbooks/maintain.yml`` with ``--check --diff`` (nothing changes), then for real, then
   once more (nothing left to do);
4. prints, step by step, what the check predicted and what the real run did, the rows per table
   counted in the database before and after the real run, the rows on both servers (what the move
   took to the history database), and what compaction did;
5. draws one module's series before and after compaction (a PNG);
6. stops both servers (by their pids) and removes the temporary directory, whatever happens.

What it leaves, in ``.build/demo/`` of the checkout: ``compaction.png``, ``pandora_db.log`` (the
run log in pandora_db.pl's format) and ``check.json`` / ``run.json`` (the module's results).

Options: ``--days-compact N`` compacts data older than N days (default 14; 0 turns compaction
off), ``--history-days N`` moves data older than N days to the history database (default 20; 0
leaves the history database out), ``--keep`` leaves the temporary directory (not the servers).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

from harness import datagen, schema  # noqa: E402
from harness.collection import COLLECTIONS_ROOT, ensure_collection_link  # noqa: E402
from harness.mariadb import ROOT_PASSWORD, MariaDBServer  # noqa: E402

sys.path.insert(0, os.path.join(REPO, "tools"))
import plot_compaction  # noqa: E402

OUTPUT = os.path.join(REPO, ".build", "demo")

DAY = 86400
DB = "pandora"
SERVERNAME = "pandora-main"  # the master row datagen writes to tserver
HISTORY_DB = "pandora_history"
# The purge runs before the move: events, traps and strings are kept long enough here to be moved.
TCONFIG = {"days_purge": "30", "string_purge": "30", "event_purge": "30", "audit_purge": "15", "trap_purge": "30",
           "gis_purge": "7", "session_timeout": "90", "delete_old_messages": "21", "delete_disabled_agents": "30",
           "days_autodisable_deletion": "30", "days_compact": "0", "step_compact": "1"}
# The history database's own tconfig (what pandorafms.server.pandora_history_db writes): it keeps half a
# year and compacts what is older than 25 days.
HISTORY_TCONFIG = {"days_purge": "180", "string_purge": "180", "event_purge": "180", "trap_history_purge": "180",
                   "days_compact": "25", "step_compact": "1", "history_db_enabled": "0", "MR": "64"}
MOVED_TABLES = ("tagente_datos", "tagente_datos_string", "tevento", "ttrap")


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


def run_playbook(workdir, flags, now):
    # Every run sees the same "now" (the test clock of the modules): the data is not generated anew each
    # minute, so the second run shows what is left to do at the same moment, and check mode is comparable.
    env = dict(os.environ, PANDORAFMS_SERVER_TEST_NOW=str(now), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_HOME=os.path.join(workdir, ".ansible"),
               ANSIBLE_LOCAL_TEMP=os.path.join(workdir, ".ansible", "tmp"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i",
           os.path.join(workdir, "inventory.ini"), os.path.join(REPO, "playbooks", "maintain.yml"),
           "-e", "@" + os.path.join(workdir, "vars.json")] + flags
    say(" ".join(["ansible-playbook", "playbooks/maintain.yml"] + flags))
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


def shown(path):
    """A path as a reader would type it: relative when inside the checkout."""
    path = os.path.abspath(path)
    return os.path.relpath(path, REPO) if path.startswith(REPO + os.sep) else path


def wrapped(label, items):
    """A long list as an indented paragraph, one label line first."""
    say(label)
    for line in textwrap.wrap(", ".join(items), width=100):
        say("    " + line)


def table(check, real, counted):
    """The steps that did something, check mode's prediction beside the real run's rows.

    ``counted`` is the real change per table, counted in the database: rows a step deleted through
    foreign keys (an event's child rows, say) show up there, and on their own line below the steps.
    """
    predicted = dict(((s["database"], s["name"], s["table"]), s) for s in check["steps"])
    rows, idle = [], []
    by_table = {}
    for step in real["steps"]:
        guess = predicted.get((step["database"], step["name"], step["table"]), {})
        if step["skipped_reason"]:
            continue
        if not step["rows"] and not guess.get("rows"):
            idle.append(step["name"])
            continue
        name = step["name"] if step["database"] == "main" else "%s (%s)" % (step["name"], step["database"])
        rows.append((name, step["table"] or "-", guess.get("rows", "-"), step["rows"], step["seconds"]))
        if step["table"] and step["database"] == "main":
            by_table[step["table"]] = by_table.get(step["table"], 0) + step["rows"]
    say("%-36s %-24s %11s %10s %8s" % ("step", "table", "check mode", "real run", "seconds"))
    say("-" * 93)
    for name, tbl, guess, done, seconds in rows:
        say("%-36s %-24s %11s %10s %8.3f" % (name, tbl, guess, done, seconds))
    for tbl in sorted(counted):
        gone = -counted[tbl]
        steps_said = by_table.get(tbl, 0)
        if tbl != "tagente_datos" and gone > steps_said:
            say("%-36s %-24s %11s %10s %8s" % ("(with their parent rows)", tbl, "", gone - steps_said, ""))
    say("-" * 93)
    totals = real["totals"]
    say("Module totals: %d rows deleted, %d inserted, %d updated in %.1f s." % (
        totals["deleted"], totals["inserted"], totals["updated"], real["duration"]))
    say("Counted in the database: %d fewer rows in all." % -sum(counted.values()))
    wrapped("Nothing to do for %d steps:" % len(idle), idle)
    reasons = {}
    for step in real["steps"]:
        if step["skipped_reason"]:
            reasons.setdefault(step["skipped_reason"], []).append(step["name"])
    say("Skipped %d steps:" % sum(len(v) for v in reasons.values()))
    for reason, names in sorted(reasons.items(), key=lambda item: item[1][0]):
        for line in textwrap.wrap("%s: %s" % (", ".join(names), reason), width=96,
                                  subsequent_indent="      "):
            say("  - " + line if not line.startswith(" ") else "  " + line)


def row_counts(server, db=DB):
    """Rows per table, counted (the demo's tables are small enough for COUNT(*))."""
    conn = server.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
                        " AND table_type = 'BASE TABLE'", (db,))
            names = sorted(r[0] for r in cur.fetchall())
            out = {}
            for name in names:
                cur.execute("SELECT COUNT(*) FROM `%s`" % name)
                out[name] = int(cur.fetchone()[0])
            return out
    finally:
        conn.close()


def busiest_module(server):
    conn = server.connect(DB)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT MIN(id_agente_modulo) FROM tagente_datos")
            module_id = cur.fetchone()[0]
            cur.execute("SELECT CONCAT(a.alias, ' / ', m.nombre) FROM tagente_modulo m JOIN tagente a"
                        " ON a.id_agente = m.id_agente WHERE m.id_agente_modulo = %s", (module_id,))
            row = cur.fetchone()
            return module_id, row[0] if row else "module %s" % module_id
    finally:
        conn.close()


def series(server, module_id, since, db=DB):
    conn = server.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT utimestamp, datos FROM tagente_datos WHERE id_agente_modulo = %s"
                        " AND utimestamp >= %s ORDER BY utimestamp", (module_id, since))
            return [(int(ts), None if v is None else float(v)) for ts, v in cur.fetchall()]
    finally:
        conn.close()


def draw(path, module, before, after, compact, days_compact, now):
    """One module's series before and after compaction, around the days_compact boundary."""
    boundary = int(compact["details"].get("boundary") or compact["threshold"])
    step = int(float(compact["details"].get("step_compact") or 1) * 3600)
    t0, t1 = boundary - 3 * DAY, min(now, boundary + 2 * DAY)
    t0 -= t0 % 3600
    before = [p for p in before if t0 <= p[0] <= t1]
    after = [p for p in after if t0 <= p[0] <= t1]
    counts = {}
    for ts, dummy in before:
        counts[ts - ts % step] = counts.get(ts - ts % step, 0) + 1
    means = set(ts for ts, dummy in after if ts < boundary and counts.get(ts, 0) > 1)
    old_before = len([p for p in before if p[0] < boundary])
    old_after = len([p for p in after if p[0] < boundary])
    panel = {"title": "%s: %d rows in the 3 days before the boundary -> %d" % (module[1], old_before, old_after),
             "before": before, "after": after, "means": means}
    subtitle = "make demo, real run: days_compact=%d, %d raw rows of %s modules became %d means." % (
        days_compact, compact["rows"], compact["details"].get("modules", "all"), compact["details"]["windows"])
    plot_compaction.render([panel], t0, t1, boundary, step, "Compaction: old data averaged, same graph",
                           subtitle, path)


def main():
    parser = argparse.ArgumentParser(description="pandora_db_maintain on a throwaway MariaDB")
    parser.add_argument("--days-compact", type=int, default=14)
    parser.add_argument("--history-days", type=int, default=20)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--days", type=int, default=35, help="days of demo data (default 35)")
    parser.add_argument("--agents", type=int, default=30, help="agents, 8 modules each (default 30)")
    parser.add_argument("--output", default=OUTPUT, help="where the results are kept (default .build/demo)")
    args = parser.parse_args()
    output = args.output
    ensure_collection_link()
    shutil.rmtree(output, ignore_errors=True)
    os.makedirs(output)
    workdir = tempfile.mkdtemp(prefix="pandora-demo-")
    server = MariaDBServer(basedir=os.path.join(workdir, "mariadb"), name="demo")
    history = MariaDBServer(basedir=os.path.join(workdir, "mariadb-history"), name="demo-history") \
        if args.history_days else None
    try:
        say("Starting two throwaway MariaDB servers (main and history) in %s ..." % workdir if history
            else "Starting a throwaway MariaDB in %s ..." % workdir)
        server.start()
        schema.load_fixture(server, DB)
        now = int(time.time())
        values = dict(TCONFIG, days_compact=str(args.days_compact))
        if history:
            history.start()
            schema.load_fixture(history, HISTORY_DB)
            hconn = history.connect(HISTORY_DB)
            datagen.seed_tconfig(hconn, HISTORY_TCONFIG)
            hconn.close()
            values.update(history_db_enabled="1", history_db_host="127.0.0.1", history_db_port=str(history.port),
                          history_db_user="root", history_db_name=HISTORY_DB, history_db_days=str(args.history_days),
                          history_db_step="1000", history_db_delay="0", history_event_enabled="1",
                          history_event_days=str(args.history_days), history_trap_enabled="1",
                          history_trap_days=str(args.history_days))
        conn = server.connect(DB)
        say("Generating %d days of monitoring data (%d agents, %d modules, 5-minute samples) ..." % (
            args.days, args.agents, args.agents * 8))
        scale = args.agents / 30.0
        summary = datagen.generate(conn, now=now, agents=args.agents, modules_per_agent=8, days=args.days,
                                   interval=300, events=int(20000 * scale), traps=int(3000 * scale),
                                   sessions=int(500 * scale), audit=int(3000 * scale), tconfig=values)
        extras(conn, now)
        conn.close()
        wrapped("  generated:", ["%s %s" % (k, v) for k, v in summary.items() if k != "now"])
        wrapped("  tconfig:", ["%s=%s" % item for item in sorted(values.items())])
        with open(os.path.join(workdir, "inventory.ini"), "w") as handle:
            handle.write("[pandora_servers]\npandora-demo ansible_connection=local\n")
        log_file = os.path.join(output, "pandora_db.log")
        extra = {"pandora_server_conf": "", "pandora_maintain_login_host": "127.0.0.1",
                 "pandora_maintain_login_port": server.port, "pandora_maintain_login_user": "root",
                 "pandora_maintain_login_password": ROOT_PASSWORD, "pandora_maintain_login_db": DB,
                 "pandora_maintain_config_file": "", "pandora_maintain_servername": SERVERNAME,
                 "pandora_maintain_poll": 1, "pandora_maintain_log_file": log_file}
        if history:   # the password stays out of tconfig: the playbook passes it
            extra["pandora_maintain_history_login_password"] = ROOT_PASSWORD
        fd = os.open(os.path.join(workdir, "vars.json"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(extra, handle)
        module = busiest_module(server) if args.days_compact else None
        say()
        say("Each run is, against the throwaway server (your own inventory goes after -i):")
        check = run_playbook(workdir, ["--check", "--diff"], now)
        before_counts = row_counts(server)
        before_history = row_counts(history, HISTORY_DB) if history else None
        before_series = series(server, module[0], now - (args.days + 1) * DAY) if module else None
        real = run_playbook(workdir, [], now)
        after_counts = row_counts(server)
        after_history = row_counts(history, HISTORY_DB) if history else None
        after_series = series(server, module[0], now - (args.days + 1) * DAY) if module else None
        if module and history:   # the console shows main and history together: so does the picture
            after_series = sorted(series(history, module[0], now - (args.days + 1) * DAY, HISTORY_DB) + after_series)
        again = run_playbook(workdir, [], now)
        for name, result in (("check.json", check), ("run.json", real)):
            with open(os.path.join(output, name), "w") as handle:
                json.dump(result, handle, indent=1, sort_keys=True)
        say()
        counted = dict((t, after_counts[t] - before_counts[t]) for t in before_counts
                       if after_counts.get(t) != before_counts[t])
        table(check, real, counted)
        say()
        predicted = check["diff"]["after"]["main"]
        compared = [t for t in counted if t in predicted]
        say("Rows per table, counted in the database before and after the real run\n(check mode's diff predicted"
            " the same for the %d tables it covers: %s):" % (
                len(compared), "yes" if all(predicted[t] == after_counts[t] for t in compared) else "NO"))
        for tbl in sorted(counted):
            say("  %-26s %10d -> %10d  (%+d)" % (tbl, before_counts[tbl], after_counts[tbl], counted[tbl]))
        if history:
            say()
            say("Rows on both servers, before -> after\n(the move took what is older than history_db_days = %d"
                " to the history database):" % args.history_days)
            say("  %-22s %21s %25s %10s" % ("table", "main", "history", "together"))
            for tbl in MOVED_TABLES:
                say("  %-22s %9d -> %9d %11d -> %9d %+10d" % (
                    tbl, before_counts[tbl], after_counts[tbl], before_history[tbl], after_history[tbl],
                    after_counts[tbl] + after_history[tbl] - before_counts[tbl] - before_history[tbl]))
            moved = dict((s["table"], s["rows"]) for s in real["steps"] if s["name"] == "history_move")
            say("  The move's own count: %s." % ", ".join("%s %d" % item for item in sorted(moved.items())))
        say("Second real run: changed=%s, %d rows." % (again["changed"], again["totals"]["rows"]))
        compact = [s for s in real["steps"] if s["name"] == "compact" and not s["skipped_reason"]]
        if compact and compact[0]["rows"]:
            step = compact[0]
            say()
            say("Compaction (days_compact=%d): %d raw tagente_datos rows older than %s were averaged\ninto %d"
                " means, one per module and step_compact window, in %.1f s." % (
                    args.days_compact, step["rows"], time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(step["threshold"])),
                    step["details"]["windows"], step["seconds"]))
            picture = os.path.join(output, "compaction.png")
            draw(picture, module, before_series, after_series, step, args.days_compact, now)
            say("  The picture of one module's series before and after: %s" % shown(picture))
        elif args.days_compact:
            say("Compaction had nothing to do.")
        say()
        say("The run log, in pandora_db.pl's format (first and last lines; all of it in %s):"
            % shown(log_file))
        log = real["log"]
        for line in [ln if len(ln) <= 110 else ln[:107] + "..." for ln in log[:9] + ["  ..."] + log[-4:]]:
            say("  " + line)
    finally:
        server.stop()
        if history:
            history.stop()
        if args.keep:
            say("kept %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    say("Done: the servers are stopped and their directory removed; the results are in %s." % shown(output))


if __name__ == "__main__":
    main()
