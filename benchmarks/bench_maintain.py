"""Benchmark of pandora_db_maintain against upstream's method, side by side on one private server.

Dataset (issue 3): >= 9 million tagente_datos rows (896 modules, 5-minute data over 60 days), string
data, 100,000 events (with comments), traps, audit and sessions; purge with days_purge=45 (about a
quarter of the module data goes).  tagente_datos is stored in time order, as a Pandora server writes it.

Variants, each on the same data (restored from a pristine copy in between, InnoDB purge drained):

* tagente_datos purge: this collection's step (default batch size, and any --batch-sizes), one
  unbatched ``DELETE ... WHERE utimestamp < X``, upstream's method (100 time slices x LIMIT 1000 with
  10 ms sleeps, benchmarks/_maint_upstream.py) and a plain ``DELETE ... LIMIT N`` loop; a diagnostic
  variant (not a shipped behaviour, ``--no-diagnostic`` skips it) runs our step while another session
  holds a read view, so InnoDB cannot purge until the step ends, as after one unbatched DELETE: it shows
  how much of our statement time is the purge threads competing for the CPUs;
* the whole default run (purge + checks + integrity): this collection's module engine vs upstream's
  whole run (pandora_db.pl -p, reproduced with its batch sizes and sleeps);
* peak RSS of the engine's process at about 1 million and at 10 million rows (os.wait4 of a child).

Rates are rows per second of statement time; "clean" rates also include waiting for InnoDB's purge
(the physical removal an unbatched DELETE leaves for later).  The server's CPU seconds (per thread, from
/proc) are recorded while the statements run and while the purge finishes.

    flock /tmp/pandora-bench.lock .venv/bin/python benchmarks/bench_maintain.py            # full size
    flock /tmp/pandora-bench.lock .venv/bin/python benchmarks/bench_maintain.py --scale 0.05  # quick

Results: printed, and written to benchmarks/results/maintain-<time>.{json,txt}.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from statistics import median

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, HERE)

from harness import datagen, schema  # noqa: E402
from harness.mariadb import MariaDBServer  # noqa: E402

from _maint_upstream import UpstreamRun  # noqa: E402

NOW = 1790000000
DAY = 86400
DB, PRISTINE, SMALL_DB = "bench", "bench_pristine", "bench_1m"
UPSTREAM = "upstream (100 slices x 1000)"
DIAGNOSTIC = "ours, purge held (diagnostic)"
CUTOFF = NOW - 45 * DAY
TCONFIG = {"days_purge": "45", "string_purge": "7", "event_purge": "7", "audit_purge": "15", "trap_purge": "7",
           "gis_purge": "7", "session_timeout": "90", "days_compact": "0", "days_autodisable_deletion": "30",
           "small_operation_step_datos_purge": "1000", "big_operation_step_datos_purge": "100"}


def _median_of(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return median(values) if values else None


def log(text):
    sys.stdout.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), text))
    sys.stdout.flush()


class Bench(object):
    def __init__(self, args):
        self.args = args
        self.server = None  # created by run(): --report needs none
        self.conn = None
        self.results = {"scale": args.scale, "buffer_pool": args.buffer_pool, "now": NOW}

    # -- helpers ----------------------------------------------------------------------------------------
    def q(self, sql, args=None, db=DB):
        with self.conn.cursor() as cur:
            cur.execute("USE `%s`" % db)
            cur.execute(sql, args)
            return cur.fetchall()

    def scalar(self, sql, args=None, db=DB):
        return self.q(sql, args, db)[0][0]

    def drain_purge(self):
        """Wait until InnoDB has physically removed every deleted row; returns the seconds waited."""
        started = time.time()
        with self.conn.cursor() as cur:
            cur.execute("SET GLOBAL innodb_max_purge_lag_wait = 0")
        return time.time() - started

    def server_cpu(self):
        """CPU seconds used so far by each thread of the private mariadbd (from /proc), by thread id."""
        out = {}
        base = "/proc/%d/task" % self.server.proc.pid
        for tid in os.listdir(base):
            try:
                with open(os.path.join(base, tid, "stat")) as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[tid] = (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))
        return out

    @staticmethod
    def cpu_between(before, after):
        """``(total, busiest)`` server CPU seconds between two snapshots: all threads, and the busiest one
        (the connection thread running the statements, when it is the only busy client)."""
        deltas = [after[t] - before.get(t, 0.0) for t in after]
        return round(sum(deltas), 1), round(max(deltas or [0.0]), 1)

    def tables(self, db):
        return [row[0] for row in self.q("SHOW TABLES", db=db)]

    def restore(self, datos_only=False):
        """Put back what a run deleted: the old part of tagente_datos, and (unless datos_only) every other table.

        tagente_datos keeps its recent 75% in place; its rows older than the cutoff are re-inserted in time order
        (so every variant deletes the same rows from the same layout: the prepare step does this once first).
        """
        started = time.time()
        tables = [t for t in self.tables(PRISTINE) if t != "tagente_datos"] if not datos_only else []
        with self.conn.cursor() as cur:
            cur.execute("SET SESSION foreign_key_checks = 0, SESSION unique_checks = 0, SESSION sql_mode = ''")
            cur.execute("DELETE FROM `%s`.tagente_datos WHERE utimestamp < %%s" % DB, (CUTOFF,))
            cur.execute("INSERT INTO `%s`.tagente_datos SELECT * FROM `%s`.tagente_datos WHERE utimestamp < %%s"
                        " ORDER BY utimestamp, id_agente_modulo" % (DB, PRISTINE), (CUTOFF,))
            for table in tables:
                cur.execute("TRUNCATE `%s`.`%s`" % (DB, table))
                cur.execute("INSERT INTO `%s`.`%s` SELECT * FROM `%s`.`%s`" % (DB, table, PRISTINE, table))
            cur.execute("SET SESSION foreign_key_checks = 1, SESSION unique_checks = 1")
        self.drain_purge()
        return time.time() - started

    def copy_all(self):
        with self.conn.cursor() as cur:
            cur.execute("SET SESSION foreign_key_checks = 0, SESSION unique_checks = 0, SESSION sql_mode = ''")
            for table in self.tables(PRISTINE):
                cur.execute("TRUNCATE `%s`.`%s`" % (DB, table))
                cur.execute("INSERT INTO `%s`.`%s` SELECT * FROM `%s`.`%s`" % (DB, table, PRISTINE, table))
            cur.execute("SET SESSION foreign_key_checks = 1, SESSION unique_checks = 1")

    # -- dataset ----------------------------------------------------------------------------------------
    def build(self):
        scale = self.args.scale
        agents = max(2, int(round(112 * scale)))
        events = max(2000, int(100000 * scale))
        log("building the dataset: %d agents x 8 modules, 60 days of 5-minute data, %d events" % (agents, events))
        started = time.time()
        schema.load_fixture(self.server, PRISTINE)
        pristine = self.server.connect(PRISTINE)
        summary = datagen.generate(pristine, now=NOW, agents=agents, modules_per_agent=8, days=60, interval=300,
                                   events=events, traps=max(500, events // 10), sessions=2000, audit=max(1000, events // 10),
                                   tconfig=TCONFIG)
        with pristine.cursor() as cur:  # module data in time order, as a Pandora server writes it
            cur.execute("CREATE TABLE tagente_datos_sorted LIKE tagente_datos")
            cur.execute("INSERT INTO tagente_datos_sorted SELECT * FROM tagente_datos ORDER BY utimestamp,"
                        " id_agente_modulo")
            cur.execute("DROP TABLE tagente_datos")
            cur.execute("RENAME TABLE tagente_datos_sorted TO tagente_datos")
        pristine.close()
        schema.load_fixture(self.server, DB)
        self.copy_all()
        self.restore()  # same layout for every variant: recent rows in place, the old part re-inserted
        self.results["dataset"] = summary
        self.results["build_seconds"] = round(time.time() - started, 1)
        log("dataset: %s (%.0f s)" % (summary, time.time() - started))
        small_agents = max(1, int(round(12 * scale)))
        schema.load_fixture(self.server, SMALL_DB)
        small = self.server.connect(SMALL_DB)
        self.results["dataset_small"] = datagen.generate(small, now=NOW, agents=small_agents, modules_per_agent=8,
                                                         days=60, interval=300, events=max(1000, events // 10),
                                                         tconfig=TCONFIG)
        small.close()

    # -- our engine, in a child process -----------------------------------------------------------------
    def child(self, mode, database=DB, batch_size=None):
        payload = json.dumps({"host": "127.0.0.1", "port": self.server.port, "database": database, "now": NOW,
                              "mode": mode, "batch_size": batch_size})
        with tempfile.TemporaryFile() as out:
            started = time.time()
            proc = subprocess.Popen([sys.executable, os.path.join(HERE, "_maint_child.py"), payload], stdout=out)
            _pid, status, usage = os.wait4(proc.pid, 0)
            wall = time.time() - started
            proc.returncode = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status
            out.seek(0)
            text = out.read().decode()
        if proc.returncode != 0:
            raise RuntimeError("engine child failed (%s): %s" % (proc.returncode, text[-2000:]))
        data = json.loads(text)
        data["wall"] = wall
        data["maxrss_mb"] = round(usage.ru_maxrss / 1024.0, 1)
        return data

    # -- tagente_datos, side by side --------------------------------------------------------------------
    def datos_variants(self, rep):
        cutoff = CUTOFF
        target = self.scalar("SELECT COUNT(*) FROM tagente_datos WHERE utimestamp < %s", (cutoff,))
        total = self.scalar("SELECT COUNT(*) FROM tagente_datos")
        info = self.results.setdefault("tagente_datos", {"rows": total, "to_delete": target, "runs": []})
        log("tagente_datos, round %d: %d rows, %d older than 45 days" % (rep, total, target))

        def record(name, seconds, max_rows, statements, extra=None, cpu_before=None):
            cpu_statements = self.server_cpu()
            purge_wait = self.drain_purge()
            cpu_drained = self.server_cpu()
            left = self.scalar("SELECT COUNT(*) FROM tagente_datos WHERE utimestamp < %s", (cutoff,))
            deleted = target - left
            entry = {"variant": name, "round": rep, "seconds": round(seconds, 2), "rows": deleted, "left": left,
                     "clean_seconds": round(seconds + purge_wait, 2), "max_statement_rows": max_rows,
                     "statements": statements, "load": open("/proc/loadavg").read().split()[0]}
            if cpu_before is not None:
                # Server CPU while the statements ran (all threads, and the busiest: the connection
                # thread) and while InnoDB purged what was left; shows where the work went.
                entry["server_cpu"], entry["busiest_thread_cpu"] = self.cpu_between(cpu_before, cpu_statements)
                entry["purge_wait_cpu"] = self.cpu_between(cpu_statements, cpu_drained)[0]
            entry.update(extra or {})
            info["runs"].append(entry)
            log("  %-30s %7.2f s %9.0f rows/s  (clean %7.2f s)  max/statement %s  left %s  load %s  server CPU %s"
                " (busiest thread %s) + %s while purging" % (
                    name, seconds, deleted / seconds, entry["clean_seconds"], max_rows, left, entry["load"],
                    entry.get("server_cpu"), entry.get("busiest_thread_cpu"), entry.get("purge_wait_cpu")))
            self.restore(datos_only=True)

        for batch in [None] + self.args.batch_sizes:
            cpu = self.server_cpu()
            out = self.child("module_data", batch_size=batch)
            step = out["steps"][0]
            details = step["details"]
            record("ours (batch %s)" % details["batch_size"], step["seconds"], details["max_statement_rows"],
                   details["statements"], {"child_wall": round(out["wall"], 2), "maxrss_mb": out["maxrss_mb"]},
                   cpu_before=cpu)

        if self.args.diagnostic:
            # Not a shipped behaviour: the same engine while another session holds a read view, so InnoDB
            # cannot purge until the step ends (as after one unbatched DELETE).  It measures the statements
            # alone, without the purge threads competing for the two CPUs.
            holder = self.server.connect(DB)
            with holder.cursor() as cur:
                cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                cur.execute("SELECT COUNT(*) FROM tconfig")
                cur.fetchall()
            cpu = self.server_cpu()
            try:
                out = self.child("module_data")
            finally:
                holder.rollback()
                holder.close()
            step = out["steps"][0]
            record(DIAGNOSTIC, step["seconds"], step["details"]["max_statement_rows"], step["details"]["statements"],
                   cpu_before=cpu)

        cpu = self.server_cpu()
        started = time.time()
        self.q("DELETE FROM tagente_datos WHERE utimestamp < %s", (cutoff,))
        record("unbatched DELETE", time.time() - started, target, 1, cpu_before=cpu)

        conn = self.server.connect(DB)
        upstream = UpstreamRun(conn, NOW)
        cpu = self.server_cpu()
        started = time.time()
        upstream.time_sliced("tagente_datos", cutoff)
        record(UPSTREAM, time.time() - started, upstream.max_rows, upstream.statements,
               {"sleep_seconds": round(upstream.statements * 0.01, 1)}, cpu_before=cpu)
        conn.close()

        n = self.args.limit_n
        cpu = self.server_cpu()
        started = time.time()
        statements = 0
        with self.conn.cursor() as cur:
            cur.execute("USE `%s`" % DB)
            while True:
                deleted = cur.execute("DELETE FROM tagente_datos WHERE utimestamp < %%s LIMIT %d" % n, (cutoff,))
                statements += 1
                if deleted < n:
                    break
        record("DELETE ... LIMIT %d loop" % n, time.time() - started, n, statements, cpu_before=cpu)

    # -- the whole default run --------------------------------------------------------------------------
    def whole_runs(self, rep):
        runs = self.results.setdefault("whole_run", {"ours": [], "upstream": []})
        out = self.child("run")
        clean = out["duration"] + self.drain_purge()
        max_rows = max([s["details"].get("max_statement_rows", 0) for s in out["steps"] if s.get("details")] or [0])
        ours = {"round": rep, "seconds": out["duration"], "clean_seconds": round(clean, 2),
                "maxrss_mb": out["maxrss_mb"], "max_statement_rows": max_rows, "rows": out["totals"]["rows"],
                "steps": dict((s["name"], [s["rows"], s["seconds"]]) for s in out["steps"] if s["rows"]),
                "load": open("/proc/loadavg").read().split()[0]}
        runs["ours"].append(ours)
        log("whole run, ours, round %d:     %.1f s (clean %.1f s), %d rows, max %d rows/statement, peak RSS %.1f MB"
            % (rep, ours["seconds"], clean, ours["rows"], max_rows, out["maxrss_mb"]))
        self.restore()
        conn = self.server.connect(DB)
        upstream = UpstreamRun(conn, NOW)
        started = time.time()
        upstream.whole_run()
        seconds = time.time() - started
        conn.close()
        clean = seconds + self.drain_purge()
        theirs = {"round": rep, "seconds": round(seconds, 2), "clean_seconds": round(clean, 2),
                  "rows": sum(upstream.rows.values()), "max_statement_rows": upstream.max_rows,
                  "rows_by_table": upstream.rows, "load": open("/proc/loadavg").read().split()[0]}
        runs["upstream"].append(theirs)
        log("whole run, upstream, round %d: %.1f s (clean %.1f s), %d rows, max %d rows/statement" % (
            rep, seconds, clean, theirs["rows"], upstream.max_rows))
        self.restore()

    def memory(self):
        small = self.child("run", database=SMALL_DB)
        rows = self.results["dataset_small"]["tagente_datos"]
        self.results["memory"] = {"small_rows": rows, "small_maxrss_mb": small["maxrss_mb"],
                                  "big_rows": self.results["dataset"]["tagente_datos"],
                                  "big_maxrss_mb": max(r["maxrss_mb"] for r in self.results["whole_run"]["ours"])}
        log("peak RSS of the engine: %.1f MB at %d rows, %.1f MB at %d rows" % (
            small["maxrss_mb"], rows, self.results["memory"]["big_maxrss_mb"], self.results["memory"]["big_rows"]))

    # -- report -----------------------------------------------------------------------------------------
    def summary(self):
        """Median (and best) seconds per variant over the rounds."""
        datos = self.results["tagente_datos"]
        out = []
        for name in [r["variant"] for r in datos["runs"] if r["round"] == 1]:
            runs = [r for r in datos["runs"] if r["variant"] == name]
            seconds = median([r["seconds"] for r in runs])
            clean = median([r["clean_seconds"] for r in runs])
            out.append({"variant": name, "seconds": seconds, "best": min(r["seconds"] for r in runs),
                        "all": [r["seconds"] for r in runs], "clean_seconds": clean,
                        "rows_per_s": round(datos["to_delete"] / seconds), "clean_rows_per_s":
                        round(datos["to_delete"] / clean), "max_statement_rows": max(r["max_statement_rows"]
                                                                                     for r in runs),
                        "left": max(r["left"] for r in runs),
                        "server_cpu": _median_of(runs, "server_cpu"),
                        "busiest_thread_cpu": _median_of(runs, "busiest_thread_cpu"),
                        "purge_wait_cpu": _median_of(runs, "purge_wait_cpu")})
        datos["summary"] = out
        whole = self.results["whole_run"]
        whole["summary"] = dict((who, {"seconds": median([r["seconds"] for r in whole[who]]),
                                       "clean_seconds": median([r["clean_seconds"] for r in whole[who]]),
                                       "all": [r["seconds"] for r in whole[who]],
                                       "rows": whole[who][0]["rows"],
                                       "max_statement_rows": max(r["max_statement_rows"] for r in whole[who])})
                                for who in ("ours", "upstream"))
        return out, whole["summary"]

    def report(self):
        variants, whole = self.summary()
        datos = self.results["tagente_datos"]
        by_name = dict((v["variant"], v) for v in variants)
        unbatched, upstream = by_name["unbatched DELETE"], by_name[UPSTREAM]
        lines = ["pandora_db_maintain benchmark (scale %s, %d rounds, medians; buffer pool %s; private MariaDB %s)" % (
            self.args.scale, self.args.repeat, self.args.buffer_pool, self.results.get("server_version", "")),
            "dataset: %(tagente_datos)d tagente_datos rows, %(tagente_modulo)d modules, %(tagente_datos_string)d"
            " string rows, %(tevento)d events" % self.results["dataset"], "",
            "tagente_datos purge, days_purge=45: %d of %d rows" % (datos["to_delete"], datos["rows"]),
            "  %-30s %8s %10s %8s %12s %10s %5s  %s" % ("variant", "seconds", "rows/s", "clean s", "clean rows/s",
                                                        "max/stmt", "left", "all rounds (s)")]
        for v in variants:
            lines.append("  %-30s %8.2f %10d %8.2f %12d %10s %5s  %s" % (
                v["variant"], v["seconds"], v["rows_per_s"], v["clean_seconds"], v["clean_rows_per_s"],
                v["max_statement_rows"], v["left"], " ".join("%.1f" % x for x in v["all"])))
        lines += ["", "  server CPU seconds (medians; 2 vCPUs): while the statements ran, all threads / the busiest"
                      " thread (the connection), then while InnoDB purged what was left"]
        for v in variants:
            if v.get("server_cpu") is not None:
                lines.append("  %-30s %6.1f / %6.1f   + %6.1f purging afterwards" % (
                    v["variant"], v["server_cpu"], v["busiest_thread_cpu"], v["purge_wait_cpu"] or 0.0))
        for v in variants:
            if v["variant"] == DIAGNOSTIC:
                lines.append("  %s (not shipped; InnoDB purge held back until the end, like after one unbatched"
                             " DELETE): %.2fx upstream's method, %.2fx the unbatched DELETE" % (
                                 v["variant"], float(v["rows_per_s"]) / upstream["rows_per_s"],
                                 float(v["rows_per_s"]) / unbatched["rows_per_s"]))
            elif v["variant"].startswith("ours"):
                lines.append("  %s: %.2fx upstream's method (target >= 3), %.2fx the unbatched DELETE (target >= 0.7);"
                             " counting InnoDB's purge: %.2fx / %.2fx; best rounds: %.2fx / %.2fx" % (
                                 v["variant"], float(v["rows_per_s"]) / upstream["rows_per_s"],
                                 float(v["rows_per_s"]) / unbatched["rows_per_s"],
                                 float(v["clean_rows_per_s"]) / upstream["clean_rows_per_s"],
                                 float(v["clean_rows_per_s"]) / unbatched["clean_rows_per_s"],
                                 upstream["best"] / v["best"], unbatched["best"] / v["best"]))
        lines += ["", "whole default run (purge + checks + integrity), %d rows changed:" % whole["ours"]["rows"]]
        for who in ("ours", "upstream"):
            w = whole[who]
            lines.append("  %-9s %7.1f s (counting InnoDB's purge %7.1f s), max %d rows/statement; rounds: %s" % (
                who, w["seconds"], w["clean_seconds"], w["max_statement_rows"], " ".join("%.1f" % x for x in w["all"])))
        lines.append("  speed-up %.2fx (target >= 3); counting InnoDB's purge %.2fx; best rounds %.2fx" % (
            whole["upstream"]["seconds"] / whole["ours"]["seconds"],
            whole["upstream"]["clean_seconds"] / whole["ours"]["clean_seconds"],
            min(whole["upstream"]["all"]) / min(whole["ours"]["all"])))
        mem = self.results["memory"]
        lines += ["", "peak RSS of the engine process (whole run): %.1f MB at %d rows, %.1f MB at %d rows"
                  " (target: flat, < 100 MB)" % (mem["small_maxrss_mb"], mem["small_rows"], mem["big_maxrss_mb"],
                                                 mem["big_rows"])]
        loads = [r["load"] for r in datos["runs"]]
        lines.append("1-minute load average during the runs (2 vCPUs, shared): %s .. %s" % (min(loads), max(loads)))
        return lines

    def run(self):
        self.server = MariaDBServer(name="bench-maintain", buffer_pool=self.args.buffer_pool)
        self.server.start()
        try:
            self.conn = self.server.connect()
            self.results["server_version"] = self.scalar("SELECT VERSION()", db="mysql")
            self.build()
            for rep in range(1, self.args.repeat + 1):
                self.datos_variants(rep)
                self.whole_runs(rep)
            self.memory()
        finally:
            if self.conn is not None:
                self.conn.close()
            self.server.cleanup()
        lines = self.report()
        out_dir = os.path.join(HERE, "results")
        os.makedirs(out_dir, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        with open(os.path.join(out_dir, "maintain-%s.json" % stamp), "w") as handle:
            json.dump(self.results, handle, indent=2, default=str)
        with open(os.path.join(out_dir, "maintain-%s.txt" % stamp), "w") as handle:
            handle.write("\n".join(lines) + "\n")
        print("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--scale", type=float, default=1.0, help="dataset size factor (1.0 = 9 million rows)")
    parser.add_argument("--buffer-pool", default="256M", help="InnoDB buffer pool of the private server")
    parser.add_argument("--batch-sizes", default="5000",
                        help="extra batch sizes for our tagente_datos variant, comma separated ('' for none)")
    parser.add_argument("--limit-n", type=int, default=1000, help="N of the plain DELETE ... LIMIT N loop")
    parser.add_argument("--no-diagnostic", dest="diagnostic", action="store_false",
                        help="skip the diagnostic variant (ours while InnoDB's purge is held back)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of every variant; medians are reported")
    parser.add_argument("--report", metavar="JSON", help="only print the report of a saved results file")
    args = parser.parse_args()
    args.batch_sizes = [int(x) for x in args.batch_sizes.split(",") if x.strip()]
    bench = Bench(args)
    if args.report:
        with open(args.report) as handle:
            bench.results = json.load(handle)
        args.scale, args.buffer_pool = bench.results["scale"], bench.results["buffer_pool"]
        args.repeat = max(r["round"] for r in bench.results["tagente_datos"]["runs"])
        print("\n".join(bench.report()))
        return
    bench.run()


if __name__ == "__main__":
    main()
