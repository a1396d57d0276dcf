"""Benchmark of the health report (pandora_db_info's ``health``) on the maintenance benchmark's dataset.

Dataset: the one of benchmarks/bench_maintain.py (issue 3): 896 modules of 5-minute data over 60 days
(9 million ``tagente_datos`` rows at ``--scale 1``), string data, events, traps, audit and sessions, in
time order, with days_purge=45 (a quarter of the module data is backlog), days_compact=30, and a
history database linked with history_db_days=30 (a lagging move: half the data is past it).

Side by side, in one run, on the same server:

* the whole report of one host (``_health.collect``: both databases, every count, sizes, lock,
  master), with its default bound of 0.5 s per count;
* the same counts done the plain way, unbounded (``COUNT(*)`` of each backlog, exactly), which is
  what a naive health check does and what the bounded report falls back from.

Target (issue 13): the whole report under 2 s at 9 M rows.

    flock /tmp/pandora-bench.lock .venv/bin/python benchmarks/bench_health.py              # 9 M rows
    flock /tmp/pandora-bench.lock .venv/bin/python benchmarks/bench_health.py --scale 0.1  # quick
"""

import argparse
import json
import os
import sys
import time
from statistics import median

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

from harness import datagen, schema  # noqa: E402
from harness.collection import COLLECTIONS_ROOT, ensure_collection_link  # noqa: E402
from harness.mariadb import ROOT_PASSWORD, MariaDBServer  # noqa: E402

NOW = 1790000000
DAY = 86400
TCONFIG = {"days_purge": "45", "string_purge": "7", "event_purge": "7", "audit_purge": "15", "trap_purge": "7",
           "days_compact": "30", "step_compact": "1", "db_maintance": str(NOW - 3600), "MR": "64"}


def log(text):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), text))
    sys.stderr.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--scale", type=float, default=1.0, help="dataset size factor (1.0 = 9 million rows)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; medians are reported")
    args = parser.parse_args()
    ensure_collection_link()
    sys.path.insert(0, COLLECTIONS_ROOT)
    from ansible_collections.pandorafms.server.plugins.module_utils._connection import ConnectionSettings
    from ansible_collections.pandorafms.server.plugins.module_utils._health import collect

    with MariaDBServer(name="bench-health") as server:
        agents = max(2, int(round(112 * args.scale)))
        log("building: %d agents x 8 modules, 60 days of 5-minute data" % agents)
        started = time.time()
        schema.load_fixture(server, "bench")
        schema.load_fixture(server, "bench_history")
        conn = server.connect("bench")
        summary = datagen.generate(conn, now=NOW, agents=agents, modules_per_agent=8, days=60, interval=300,
                                   events=max(2000, int(100000 * args.scale)), traps=5000, sessions=2000, audit=5000,
                                   tconfig=TCONFIG)
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE tagente_datos_sorted LIKE tagente_datos")
            cur.execute("INSERT INTO tagente_datos_sorted SELECT * FROM tagente_datos ORDER BY utimestamp,"
                        " id_agente_modulo")
            cur.execute("DROP TABLE tagente_datos")
            cur.execute("RENAME TABLE tagente_datos_sorted TO tagente_datos")
            for token, value in (("history_db_enabled", "1"), ("history_db_host", "127.0.0.1"),
                                 ("history_db_port", str(server.port)), ("history_db_user", "root"),
                                 ("history_db_pass", ROOT_PASSWORD), ("history_db_name", "bench_history"),
                                 ("history_db_days", "30")):
                cur.execute("INSERT INTO tconfig (token, value) VALUES (%s, %s)", (token, value))
            cur.execute("ANALYZE TABLE tagente_datos")
            cur.execute("INSERT INTO bench_history.tconfig (token, value) VALUES ('MR', '64'),"
                        " ('db_maintance', %s), ('days_purge', '180')", (str(NOW - 7200),))
        log("dataset %s in %.0f s" % (summary, time.time() - started))
        settings = ConnectionSettings(host="127.0.0.1", port=server.port, user="root", password=ROOT_PASSWORD,
                                      database="bench", connect_timeout=10)
        report_s, naive_s, reports = [], [], []
        for dummy in range(args.repeat):
            t0 = time.time()
            report = collect(settings, servername="pandora-main", now=NOW)
            report_s.append(time.time() - t0)
            reports.append(report)
            t0 = time.time()
            with conn.cursor() as cur:
                for sql, arg in (("SELECT COUNT(*) FROM tagente_datos WHERE utimestamp < %s", NOW - 45 * DAY),
                                 ("SELECT COUNT(*) FROM tagente_datos_string WHERE utimestamp < %s", NOW - 7 * DAY),
                                 ("SELECT COUNT(*) FROM tevento WHERE utimestamp < %s", NOW - 7 * DAY),
                                 ("SELECT COUNT(*) FROM tagente_datos WHERE utimestamp > 0 AND utimestamp < %s",
                                  NOW - 30 * DAY),
                                 ("SELECT COUNT(*) FROM tagente_datos WHERE utimestamp >= %s AND utimestamp < %s",
                                  None)):
                    cur.execute(sql, (arg,) if arg is not None else (NOW - 45 * DAY, NOW - 30 * DAY))
                    cur.fetchall()
            naive_s.append(time.time() - t0)
        conn.close()
    last = reports[-1]
    rows = summary.get("tagente_datos")
    out = {"scale": args.scale, "tagente_datos_rows": rows, "report_seconds": [round(s, 3) for s in report_s],
           "naive_exact_counts_seconds": [round(s, 3) for s in naive_s],
           "report_median": round(median(report_s), 3), "naive_median": round(median(naive_s), 3),
           "worst": last["worst"], "findings": [(f["severity"], f["check"]) for f in last["findings"]],
           "exact": dict((t, e.get("exact")) for t, e in last["main"]["backlog"].items()),
           "history_lag_exact": (last.get("history_lag") or {}).get("exact"),
           "load_average": os.getloadavg()}
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", "health-%s.json" % time.strftime("%Y%m%d-%H%M%S"))
    with open(path, "w") as handle:
        json.dump(out, handle, indent=1)
    print("tagente_datos rows: %s" % rows)
    print("whole report (bounded counts): median %.3f s  rounds %s" % (out["report_median"], out["report_seconds"]))
    print("the same counts, unbounded:    median %.3f s  rounds %s"
          % (out["naive_median"], out["naive_exact_counts_seconds"]))
    print("target: report < 2 s -> %s; counts exact: %s; lag exact: %s" % (
        "met" if out["report_median"] < 2 else "NOT met", out["exact"], out["history_lag_exact"]))
    print("findings: %s" % out["findings"])
    print("load average: %.2f %.2f %.2f; results in %s" % (out["load_average"] + (path,)))


if __name__ == "__main__":
    main()
