"""Benchmark of step ``history_move``: old ``tagente_datos`` rows moved to a second server, next to pt-archiver.

What it does:

1. starts two private MariaDB servers (tests/harness/mariadb.py), a main and a
   history one, loads the schema fixture on both and generates ``5,000,000 *
   scale`` distinct ``tagente_datos`` rows older than ``history_db_days`` into
   a source table once;
2. for each block size (1000 and 10000, delay 0), fills the main table from the
   source, empties the history one, and moves everything:
   * ``ours``: the maintenance engine with ``steps=[history_move]`` in a child
     process (its peak RSS is read from the child), once per walk (``--walks``):
     ``pipelined`` (MariaDB's, the default), ``serial`` (what MySQL and runs
     with a delay use), ``partitions`` (the main table first put in
     pandora_partitions' daily layout: expired partitions move whole); the rows
     the main server deleted are counted (``Handler_delete``; on a partitioned
     table the partition handler and InnoDB each count a row, so twice);
   * ``pt-archiver --bulk-insert --bulk-delete --commit-each --limit N``
     (Debian's percona-toolkit, installed with apt-get when missing) between
     the same two servers, the same rows, credentials in 0600 option files;
   and checks that every row arrived (count and sums on both sides);
3. the writer impact: a writer doing what the data server does (many small
   multi-row INSERTs of current ``tagente_datos`` rows) alone for a few seconds,
   then while ``ours`` moves the rows at the default step (1000) and delay 0;
   median and p99 insert latency of both phases.

Prints ratios and the load average, writes benchmarks/results/bench_history_move-<time>.json.

    .venv/bin/python benchmarks/bench_history_move.py               # 5 M rows
    .venv/bin/python benchmarks/bench_history_move.py --scale 0.05  # a quick run
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

from harness import schema  # noqa: E402
from harness.collection import ensure_collection_link  # noqa: E402
from harness.mariadb import ROOT_PASSWORD, MariaDBServer  # noqa: E402

DAY = 86400
NOW = 1790000000
DAYS = 30
MODULES = 1000


def scalar(server, db, sql, args=None):
    rows = server.execute(sql, db, args)
    return rows[0][0] if rows else None


def fingerprint(server, db):
    return server.execute("SELECT COUNT(*), COALESCE(SUM(utimestamp), 0), COALESCE(SUM(id_agente_modulo), 0),"
                          " ROUND(COALESCE(SUM(datos), 0), 3) FROM tagente_datos WHERE utimestamp < %s",
                          db, (NOW - DAYS * DAY,))[0]


def generate(main, db, rows):
    """Distinct rows: MODULES modules, one row per module every 60 s, all older than the cutoff."""
    main.execute("CREATE TABLE src LIKE tagente_datos", db)
    start = NOW - DAYS * DAY - (rows // MODULES + 10) * 60
    main.execute("INSERT INTO src SELECT 1 + seq MOD %d, seq * 0.25, %d + (seq DIV %d) * 60 FROM seq_0_to_%d"
                 % (MODULES, start, MODULES, rows - 1), db)


def refill(main, mdb, history, hdb):
    main.execute("TRUNCATE TABLE tagente_datos", mdb)
    main.execute("INSERT INTO tagente_datos SELECT * FROM src", mdb)
    history.execute("TRUNCATE TABLE tagente_datos", hdb)
    for token in ("history_move_moved_tagente_datos",):
        main.execute("DELETE FROM tconfig WHERE token = %s", mdb, (token,))
    history.execute("DELETE FROM tconfig WHERE token LIKE 'history_move_%%'", hdb)


def child(spec_json):
    """In the child process: run the engine's move; print its result and peak RSS."""
    ensure_collection_link()
    from ansible_collections.pandorafms.server.plugins.module_utils._connection import ConnectionSettings
    from ansible_collections.pandorafms.server.plugins.module_utils._maintain import run_maintenance
    spec = json.loads(spec_json)
    from ansible_collections.pandorafms.server.plugins.module_utils import _history_move
    _history_move.PIPELINE = spec.get("walk", "pipelined") != "serial"
    settings = ConnectionSettings(host="127.0.0.1", port=spec["port"], user="root", password=ROOT_PASSWORD,
                                  database=spec["db"], connect_timeout=30)
    started = time.monotonic()
    res = run_maintenance(settings, None, steps=["history_move"], require_master=False, now=NOW,
                          extra_options={"history_db_step": spec["step"], "history_db_delay": 0})
    seconds = time.monotonic() - started
    data = [s for s in res["steps"] if s["table"] == "tagente_datos"][0]
    print(json.dumps({"rows": data["rows"], "blocks": data["details"]["blocks"], "seconds": seconds,
                      "step_seconds": data["seconds"], "lag": data["details"]["lag_seconds"],
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))


def run_ours(main, mdb, step, walk="pipelined"):
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child",
                           json.dumps({"port": main.port, "db": mdb, "step": step, "walk": walk})],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError("the mover failed: %s" % proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def handler_deletes(server):
    """Rows deleted on a server so far (Handler_delete: every session's, only the benchmark's run there)."""
    return int(server.execute("SHOW GLOBAL STATUS LIKE 'Handler_delete'")[0][1])


def partition_main(main, db):
    """The main tagente_datos in pandora_partitions' daily layout (a blocking ALTER: this is setup)."""
    ensure_collection_link()
    from ansible_collections.pandorafms.server.plugins.module_utils import _partitions as P
    oldest = scalar(main, db, "SELECT MIN(utimestamp) FROM tagente_datos")
    clause = P.partition_clause(P.initial_partitions(oldest, NOW, "day", 7))
    main.execute("ALTER TABLE tagente_datos COMMENT = '%s' %s" % (P.make_comment("day", 7), clause), db)


def ensure_pt_archiver():
    if shutil.which("pt-archiver"):
        return True
    if os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "percona-toolkit"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    return bool(shutil.which("pt-archiver"))


def option_file(server, path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("[client]\nuser=root\npassword=%s\nhost=127.0.0.1\nport=%d\nlocal-infile=1\n"
                     % (ROOT_PASSWORD, server.port))
    return path


def run_pt(main, mdb, history, hdb, step, workdir):
    src_cnf = option_file(main, os.path.join(workdir, "main.cnf"))
    dst_cnf = option_file(history, os.path.join(workdir, "history.cnf"))
    cmd = ["pt-archiver",
           "--source", "h=127.0.0.1,P=%d,D=%s,t=tagente_datos,F=%s,i=idx_utimestamp,L=1" % (main.port, mdb, src_cnf),
           "--dest", "h=127.0.0.1,P=%d,D=%s,t=tagente_datos,F=%s,L=1" % (history.port, hdb, dst_cnf),
           "--where", "utimestamp < %d" % (NOW - DAYS * DAY), "--limit", str(step),
           "--bulk-insert", "--bulk-delete", "--commit-each", "--no-check-charset", "--statistics"]
    started = time.monotonic()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError("pt-archiver failed: %s %s" % (proc.stdout[-2000:], proc.stderr[-2000:]))
    return {"seconds": seconds, "stats": proc.stdout[-600:]}


class Writer(threading.Thread):
    """Many small multi-row INSERTs of current rows, as the data server writes them; latencies in ms."""

    def __init__(self, server, db, rows_per_insert=20):
        threading.Thread.__init__(self, daemon=True)
        self.conn = server.connect(db)
        self.rows = rows_per_insert
        self.latencies = []
        self.stop = threading.Event()
        self.mark = threading.Event()
        self.marked = 0

    def run(self):
        module = 0
        with self.conn.cursor() as cur:
            while not self.stop.is_set():
                values = []
                for _i in range(self.rows):
                    module = (module % MODULES) + 1
                    values.append("(%d, %f, %d)" % (module, module * 0.5, NOW - 10))
                started = time.perf_counter()
                cur.execute("INSERT INTO tagente_datos (id_agente_modulo, datos, utimestamp) VALUES " + ",".join(values))
                self.latencies.append((time.perf_counter() - started) * 1000.0)
                time.sleep(0.005)

    def take(self):
        out, self.latencies = self.latencies, []
        return out


def percentiles(values):
    if not values:
        return {"n": 0}
    values = sorted(values)

    def at(p):
        return round(values[min(len(values) - 1, int(p * len(values)))], 3)
    return {"n": len(values), "median_ms": at(0.5), "p99_ms": at(0.99), "max_ms": round(values[-1], 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of 5 million rows")
    parser.add_argument("--steps", default="1000,10000")
    parser.add_argument("--no-pt", action="store_true", help="skip pt-archiver")
    parser.add_argument("--no-writer", action="store_true", help="skip the writer-impact phase")
    parser.add_argument("--writer-seconds", type=float, default=8.0)
    parser.add_argument("--walks", default="pipelined,serial,partitions",
                        help="which walks of ours to run: pipelined (the default one on MariaDB), serial (MySQL's),"
                             " partitions (a main table in pandora_partitions' layout)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    rows = int(5000000 * args.scale)
    out = {"rows": rows, "load_before": os.getloadavg(), "runs": [], "writer": None}
    extra = ["--local-infile=1"]
    with MariaDBServer(name="bench-main", buffer_pool="768M", extra_args=extra) as main, \
            MariaDBServer(name="bench-history", buffer_pool="768M", extra_args=extra) as history:
        mdb, hdb = "pandora", "pandora_history"
        schema.load_fixture(main, mdb)
        schema.load_fixture(history, hdb)
        for token, value in (("history_db_enabled", 1), ("history_db_host", "127.0.0.1"),
                             ("history_db_port", history.port), ("history_db_user", "root"),
                             ("history_db_pass", ROOT_PASSWORD), ("history_db_name", hdb),
                             ("history_db_days", DAYS)):
            main.execute("INSERT INTO tconfig (token, value) VALUES (%s, %s)", mdb, (token, str(value)))
        started = time.monotonic()
        generate(main, mdb, rows)
        print("generated %d rows in %.1f s" % (rows, time.monotonic() - started), flush=True)
        pt = not args.no_pt and ensure_pt_archiver()
        walks = [w for w in args.walks.split(",") if w]
        for step in [int(s) for s in args.steps.split(",")]:
            entry = {"step": step}
            for walk in walks:
                refill(main, mdb, history, hdb)
                if walk == "partitions":
                    partition_main(main, mdb)
                expected = fingerprint(main, mdb)
                deletes = handler_deletes(main)
                ours = run_ours(main, mdb, step, walk)
                ours["main_rows_deleted"] = handler_deletes(main) - deletes
                ours["ok"] = fingerprint(history, hdb) == expected and fingerprint(main, mdb)[0] == 0
                ours["rows_per_s"] = round(rows / ours["step_seconds"], 1)
                entry["ours_" + walk] = ours
                if walk == "partitions":
                    main.execute("ALTER TABLE tagente_datos REMOVE PARTITIONING", mdb)
                    main.execute("ALTER TABLE tagente_datos COMMENT = ''", mdb)
                values = (walk, step, ours["rows_per_s"], ours["step_seconds"], ours["blocks"], ours["rss_mb"],
                          ours["main_rows_deleted"], ours["ok"], os.getloadavg())
                print("ours %-10s step %5d: %8.1f rows/s (%.1f s, %d blocks, RSS %.0f MB, %d rows deleted on main,"
                      " ok=%s) load %s" % values, flush=True)
            if pt:
                refill(main, mdb, history, hdb)
                expected = fingerprint(main, mdb)
                entry["pt"] = run_pt(main, mdb, history, hdb, step, main.basedir)
                entry["pt"]["ok"] = fingerprint(history, hdb) == expected and fingerprint(main, mdb)[0] == 0
                entry["pt"]["rows_per_s"] = round(rows / entry["pt"]["seconds"], 1)
                ratios = dict((walk, round(entry["ours_" + walk]["rows_per_s"] / entry["pt"]["rows_per_s"], 2))
                              for walk in walks)
                entry["ratio"] = ratios
                print("pt             step %5d: %8.1f rows/s (%.1f s, ok=%s); ours / pt-archiver: %s  load %s" % (
                    step, entry["pt"]["rows_per_s"], entry["pt"]["seconds"], entry["pt"]["ok"],
                    ", ".join("%s %.2f" % item for item in sorted(ratios.items())), os.getloadavg()), flush=True)
            out["runs"].append(entry)
        if not pt:
            out["pt_archiver"] = "not run (--no-pt, or pt-archiver missing and not installable)"
        if not args.no_writer:
            out["writer"] = {}
            for walk in walks:
                refill(main, mdb, history, hdb)
                if walk == "partitions":
                    partition_main(main, mdb)
                writer = Writer(main, mdb)
                writer.start()
                time.sleep(args.writer_seconds)
                alone = percentiles(writer.take())
                moving = run_ours(main, mdb, 1000, walk)
                during = percentiles(writer.take())
                writer.stop.set()
                writer.join(10)
                out["writer"][walk] = {
                    "alone": alone, "during_move": during, "move": moving,
                    "p99_ratio": round(during["p99_ms"] / alone["p99_ms"], 2) if alone.get("p99_ms") else None,
                    "median_ratio": (round(during["median_ms"] / alone["median_ms"], 2)
                                     if alone.get("median_ms") else None)}
                print("writer, %s walk: alone %s; during the move (step 1000, delay 0) %s; p99 ratio %s" % (
                    walk, alone, during, out["writer"][walk]["p99_ratio"]), flush=True)
                if walk == "partitions":
                    main.execute("ALTER TABLE tagente_datos REMOVE PARTITIONING", mdb)
                    main.execute("ALTER TABLE tagente_datos COMMENT = ''", mdb)
    out["load_after"] = os.getloadavg()
    results = os.path.join(HERE, "results")
    os.makedirs(results, exist_ok=True)
    path = os.path.join(results, "bench_history_move-%d.json" % time.time())
    with open(path, "w") as handle:
        json.dump(out, handle, indent=2)
    print("load average before %s after %s; results in %s" % (out["load_before"], out["load_after"], path))


if __name__ == "__main__":
    sys.exit(main())
