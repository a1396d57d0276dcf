"""Benchmark of step ``compact``: a 60-day, 10-million-row backlog compacted in one run.

What it does:

1. starts its own MariaDB (tests/harness/mariadb.py: private datadir, 127.0.0.1),
   loads the schema fixture and generates the dataset with tests/harness/datagen.py
   (default: 125 agents x 8 modules = 1000 modules, 60 days of 5-minute data,
   about 10.2 million ``tagente_datos`` rows);
2. runs CompactStep with ``days_compact=30``, ``step_compact=1`` in a child
   process (tests/harness/compact_child.py) and reads the child's peak RSS;
3. checks the result (rows before/after add up, no window older than the
   boundary holds more than one row, a rerun compacts nothing) and compares
   with what upstream 7.0NG.774+ would cover at its hourly cadence.

Results are printed and written to benchmarks/results/bench_compact-<time>.json.
Run it alone (other benchmarks share the machine):

    flock /tmp/pandora-bench.lock .venv/bin/python benchmarks/bench_compact.py
    .venv/bin/python benchmarks/bench_compact.py --scale 0.05      # a quick run
"""

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

from harness import datagen, schema  # noqa: E402
from harness.compact_checks import CHILD, PROC_AND_STRING_TYPES  # noqa: E402
from harness.mariadb import MariaDBServer  # noqa: E402

DAY = 86400
HOUR = 3600
UPSTREAM_FACTOR = 288            # 776: int(modules / 288) modules per run
UPSTREAM_DAYS_PER_VISIT = 7      # 776: at most one week per module per visit


def scalar(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()[0]


def run_child(server, db, now, options):
    """Run the step in a child process; return (results, wall seconds, peak RSS of that child in MB)."""
    spec = {"port": server.port, "db": db, "now": now, "options": options}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, CHILD, json.dumps(spec)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)
    chunks = {"out": [], "err": []}
    readers = [threading.Thread(target=lambda: chunks["out"].append(proc.stdout.read())),
               threading.Thread(target=lambda: chunks["err"].append(proc.stderr.read()))]
    for reader in readers:
        reader.start()
    # wait4 gives this child's own resource usage (ru_maxrss in KiB on Linux).
    unused_pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join()
    wall = time.monotonic() - started
    out, err = "".join(chunks["out"]), "".join(chunks["err"])
    if proc.returncode != 0:
        raise RuntimeError("the compaction child failed (%s):\n%s" % (proc.returncode, err[-3000:]))
    results = json.loads(out.strip().splitlines()[-1])
    return results[0], wall, usage.ru_maxrss / 1024.0


def main(argv=None):
    parser = argparse.ArgumentParser(description="Benchmark of the compact step (see the module docstring).")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of the full dataset (1.0 = 125 agents, 1000 modules, ~10.2M rows)")
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--days-compact", type=int, default=30)
    parser.add_argument("--step", type=int, default=1, help="step_compact in hours")
    parser.add_argument("--buffer-pool", default="1G", help="innodb_buffer_pool_size of the private server")
    parser.add_argument("--chunk-rows", type=int, default=None, help="compact_chunk_rows (default: the engine's)")
    parser.add_argument("--now", type=int, default=1764000000)
    args = parser.parse_args(argv)

    agents = max(1, int(round(125 * args.scale)))
    now = args.now
    report = {"benchmark": "compact", "scale": args.scale, "agents": agents, "modules_per_agent": 8,
              "days": args.days, "days_compact": args.days_compact, "step_compact": args.step,
              "buffer_pool": args.buffer_pool, "now": now}
    server = MariaDBServer(name="bench-compact", buffer_pool=args.buffer_pool)
    server.start()
    try:
        db = "pandora_bench_compact"
        schema.load_fixture(server, db)
        conn = server.connect(db)
        started = time.monotonic()
        datagen.generate(conn, now=now, agents=agents, days=args.days, events=1000, traps=100, sessions=10,
                         audit=100, tconfig={"days_compact": str(args.days_compact), "step_compact": str(args.step),
                                             "days_purge": str(max(45, args.days_compact + 1))})
        with conn.cursor() as cur:
            cur.execute("ANALYZE TABLE tagente_datos, tagente_modulo")
            cur.fetchall()
        report["generate_seconds"] = round(time.monotonic() - started, 1)
        step = args.step * HOUR
        boundary = now - args.days_compact * DAY
        boundary -= boundary % step
        excluded = ", ".join(str(t) for t in PROC_AND_STRING_TYPES)
        report["modules"] = scalar(conn, "SELECT COUNT(*) FROM tagente_modulo")
        report["modules_compactable"] = scalar(
            conn, "SELECT COUNT(*) FROM tagente_modulo WHERE id_tipo_modulo NOT IN (%s)" % excluded)
        report["rows_before"] = scalar(conn, "SELECT COUNT(*) FROM tagente_datos")
        report["rows_older_than_boundary_compactable"] = scalar(
            conn, "SELECT COUNT(*) FROM tagente_datos d JOIN tagente_modulo m USING (id_agente_modulo)"
                  " WHERE m.id_tipo_modulo NOT IN (%s) AND d.utimestamp < %%s" % excluded, (boundary,))
        options = {} if args.chunk_rows is None else {"compact_chunk_rows": args.chunk_rows}

        report["load_average_before"] = round(os.getloadavg()[0], 2)
        result, wall, rss = run_child(server, db, now, options)
        report["load_average_after"] = round(os.getloadavg()[0], 2)
        report["peak_rss_mb"] = round(rss, 1)
        details = result["details"]
        report.update({
            "seconds": result["seconds"], "process_seconds": round(wall, 2),
            "rows_compacted": result["rows"], "means_inserted": details["windows"],
            "transactions": details["transactions"], "modules_compacted": details["modules_compacted"],
            "rows_per_second": round(result["rows"] / result["seconds"], 0) if result["seconds"] else None,
            "stopped_early": details["stopped_early"],
        })
        report["rows_after"] = scalar(conn, "SELECT COUNT(*) FROM tagente_datos")
        report["rows_add_up"] = report["rows_after"] == report["rows_before"] - result["rows"] + details["windows"]
        report["windows_left_with_several_rows"] = scalar(
            conn, "SELECT COUNT(*) FROM (SELECT 1 FROM tagente_datos d JOIN tagente_modulo m USING (id_agente_modulo)"
                  " WHERE m.id_tipo_modulo NOT IN (%s) AND d.utimestamp >= 0 AND d.utimestamp < %%s"
                  " GROUP BY d.id_agente_modulo, d.utimestamp DIV %%s HAVING COUNT(*) > 1) w" % excluded,
            (boundary, step))
        rerun, rerun_wall, rerun_rss = run_child(server, db, now, options)
        report["rerun_rows"] = rerun["rows"]
        report["rerun_seconds"] = rerun["seconds"]
        report["rerun_peak_rss_mb"] = round(rerun_rss, 1)

        # Upstream 7.0NG.774+ at its hourly cadence (reference section 9.1): int(modules/288)
        # modules per run, at most 7 days per module per visit.
        per_run = report["modules"] // UPSTREAM_FACTOR
        report["upstream_modules_per_hourly_run"] = per_run
        backlog_days = args.days - args.days_compact
        if per_run:
            cycle_runs = int(math.ceil(report["modules"] / float(per_run)))
            visits = int(math.ceil(backlog_days / float(UPSTREAM_DAYS_PER_VISIT)))
            report["upstream_hourly_runs_for_this_backlog"] = cycle_runs * visits
            report["upstream_days_for_this_backlog"] = round(cycle_runs * visits / 24.0, 1)
            report["upstream_max_raw_rows_per_hourly_run"] = per_run * UPSTREAM_DAYS_PER_VISIT * 288
        else:
            report["upstream_hourly_runs_for_this_backlog"] = None
            report["upstream_note"] = "fewer than 288 modules: upstream compacts nothing at all (B1)"
        conn.close()
    finally:
        server.cleanup()

    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", "bench_compact-%s.json" % time.strftime("%Y%m%d-%H%M%S"))
    with open(path, "w") as handle:
        json.dump(report, handle, indent=2, sort_keys=True)
    lines = [
        "compact benchmark (scale %s: %d modules, %d days of 5-minute data, days_compact=%d, step_compact=%d h,"
        " buffer pool %s)" % (args.scale, report["modules"], args.days, args.days_compact, args.step,
                              args.buffer_pool),
        "  dataset generated in %.1f s" % report["generate_seconds"],
        "  tagente_datos rows before      %12d" % report["rows_before"],
        "  raw rows compacted             %12d  (into %d means, %d transactions, %d modules)" % (
            report["rows_compacted"], report["means_inserted"], report["transactions"], report["modules_compacted"]),
        "  tagente_datos rows after       %12d  (rows add up: %s)" % (report["rows_after"], report["rows_add_up"]),
        "  step time                      %12.1f s  (process %.1f s)" % (report["seconds"], report["process_seconds"]),
        "  rate                           %12.0f raw rows/s  (machine load average %.1f before, %.1f after;"
        " %d CPUs)" % (report["rows_per_second"] or 0, report["load_average_before"], report["load_average_after"],
                       os.cpu_count() or 0),
        "  peak RSS of the step process   %12.1f MB" % report["peak_rss_mb"],
        "  windows left with >1 row       %12d" % report["windows_left_with_several_rows"],
        "  rerun                          %12d rows in %.1f s" % (report["rerun_rows"], report["rerun_seconds"]),
    ]
    if report.get("upstream_hourly_runs_for_this_backlog"):
        lines.append("  upstream 7.0NG.774+: %d modules per hourly run, <= 7 days each (<= %d raw rows per run);"
                     " this %d-day backlog needs about %d hourly runs (%.1f days)" % (
                         per_run, report["upstream_max_raw_rows_per_hourly_run"], backlog_days,
                         report["upstream_hourly_runs_for_this_backlog"], report["upstream_days_for_this_backlog"]))
    else:
        lines.append("  upstream 7.0NG.774+: %s" % report.get("upstream_note"))
    lines.append("  results: %s" % os.path.relpath(path, REPO))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0 if report["rows_add_up"] and report["windows_left_with_several_rows"] == 0 and \
        report["rerun_rows"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
