"""Benchmark of the partitioned layout, side by side in one run on one private server.

Dataset: bench_maintain.py's builder (>= 9 million tagente_datos rows over 60 days at --scale 1), days_purge=45.

* the tagente_datos purge on the plain table: this collection's batched step, one unbatched DELETE, upstream's
  method (100 time slices x LIMIT 1000 with 10 ms sleeps, benchmarks/_maint_upstream.py); the old rows are put
  back in between (bench_maintain's restore);
* the online conversion of that table (pandora_partitions' engine) while a writer inserts a row every 5 ms:
  wall time, rows/s, the longest time an insert waited; and, for comparison, a plain blocking
  ``ALTER TABLE ... PARTITION BY`` of a copy with the same writer;
* the purge on the partitioned layout: default mode (drop partitions) and exact mode (drop, then the batched
  delete of the threshold partition's older rows), the old partitions and rows put back in between;
* the default-mode purge on partitioned tables of 1, 5 and 10 million rows (times --scale): flat in table size?

    flock /tmp/pandora-bench.lock .venv/bin/python benchmarks/bench_partitions.py --scale 0.1   # quick
    flock /tmp/pandora-bench.lock .venv/bin/python benchmarks/bench_partitions.py               # full size

Results: printed, and written to benchmarks/results/partitions-<time>.{json,txt}.
"""

import argparse
import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_maintain as bm  # noqa: E402  (its dataset builder and restore; sets up sys.path for the harness)
from bench_maintain import CUTOFF, DB, NOW, PRISTINE, Bench, log  # noqa: E402
from harness.mariadb import MariaDBServer  # noqa: E402
from harness.collection import ensure_collection_link  # noqa: E402

from _maint_upstream import UpstreamRun  # noqa: E402

ensure_collection_link()

from ansible_collections.pandorafms.server.plugins.module_utils import _partitions as P  # noqa: E402
from ansible_collections.pandorafms.server.plugins.module_utils._connection import existing_tables  # noqa: E402
from ansible_collections.pandorafms.server.plugins.module_utils._maintain import MaintenanceContext  # noqa: E402
from ansible_collections.pandorafms.server.plugins.module_utils._purge import (  # noqa: E402
    purge_steps, resolve_batch_size, resolve_thresholds)
from ansible_collections.pandorafms.server.plugins.module_utils._tconfig import TConfig  # noqa: E402

SWEEP_DB = "bench_sweep"
DAY = 86400


def load():
    return open("/proc/loadavg").read().split()[0]


class Writer(threading.Thread):
    """Inserts one row every ``pause`` seconds into ``table``; records the longest wait and failures."""

    def __init__(self, server, db, table="tagente_datos", pause=0.005):
        threading.Thread.__init__(self, daemon=True)
        self.conn = server.connect(db)
        self.table = table
        self.pause = pause
        self.stop_flag = threading.Event()
        self.longest = 0.0
        self.count = 0
        self.errors = 0

    def run(self):
        k = 0
        with self.conn.cursor() as cur:
            while not self.stop_flag.is_set():
                k += 1
                started = time.time()
                try:
                    cur.execute("INSERT INTO `%s` VALUES (%%s, %%s, %%s)" % self.table, (99000 + k % 100, k, NOW + k % 600))
                    self.count += 1
                except Exception:
                    self.errors += 1
                self.longest = max(self.longest, time.time() - started)
                time.sleep(self.pause)

    def finish(self):
        self.stop_flag.set()
        self.join(60)
        with self.conn.cursor() as cur:
            cur.execute("DELETE FROM `%s` WHERE id_agente_modulo >= 99000" % self.table)
        self.conn.close()
        return {"writer_inserts": self.count, "writer_errors": self.errors, "longest_insert_wait": round(self.longest, 3)}


class PartitionBench(Bench):
    def step_run(self, database, exact=False, name="module_data"):
        """Our purge step in this process (the partitioned purge needs the exact option)."""
        conn = self.server.connect(database)
        try:
            tconfig = TConfig.load(conn)
            ctx = MaintenanceContext(conn, tconfig, now=NOW, batch_size=resolve_batch_size(tconfig, None),
                                     options={P.EXACT_OPTION: exact},
                                     thresholds=resolve_thresholds(tconfig, {}, ["purge"]), tables=existing_tables(conn))
            step = [s for s in purge_steps() if s.name == name][0]
            started = time.time()
            res = step.run(ctx)[0]
            return time.time() - started, res
        finally:
            conn.close()

    def record(self, name, seconds, rows, extra=None):
        entry = {"variant": name, "seconds": round(seconds, 3), "rows": rows, "load": load()}
        entry.update(extra or {})
        self.results.setdefault("purge", []).append(entry)
        log("  %-34s %8.3f s  %9d rows  load %s  %s" % (name, seconds, rows, entry["load"], extra or ""))

    def plain_variants(self):
        target = self.scalar("SELECT COUNT(*) FROM tagente_datos WHERE utimestamp < %s", (CUTOFF,))
        self.results["to_delete"] = target
        self.results["rows"] = self.scalar("SELECT COUNT(*) FROM tagente_datos")
        log("plain tagente_datos: %d rows, %d older than 45 days" % (self.results["rows"], target))
        seconds, res = self.step_run(DB)
        self.record("ours, batched, plain table", seconds, res.rows)
        self.restore(datos_only=True)
        started = time.time()
        n = self.q("DELETE FROM tagente_datos WHERE utimestamp < %s", (CUTOFF,))
        self.record("one unbatched DELETE, plain table", time.time() - started, target)
        self.restore(datos_only=True)
        conn = self.server.connect(DB)
        upstream = UpstreamRun(conn, NOW)
        started = time.time()
        upstream.time_sliced("tagente_datos", CUTOFF)
        self.record("upstream (100 slices x 1000), plain", time.time() - started, upstream.rows.get("tagente_datos", 0))
        conn.close()
        self.restore(datos_only=True)
        return n

    def convert(self):
        conn = self.server.connect(DB)
        writer = Writer(self.server, DB)
        writer.start()
        started = time.time()
        conv = P.Conversion(conn, "tagente_datos", "partitioned", now=NOW, ahead=7)
        conv.run()
        wall = time.time() - started
        out = writer.finish()
        conn.close()
        out.update(conv.stats, wall_seconds=round(wall, 2), rows_per_s=round(conv.stats["rows_copied"] / wall),
                   load=load())
        self.results["conversion"] = out
        log("online conversion: %s" % out)
        self.drain_purge()

    def restore_partitioned(self):
        """Put back the dropped partitions and the old rows, as on the plain table."""
        conn = self.server.connect(DB)
        layout = P.read_layout(conn, "tagente_datos")
        first = layout.dated[0]
        oldest = self.scalar("SELECT MIN(utimestamp) FROM `%s`.tagente_datos WHERE utimestamp >= 1" % PRISTINE)
        wanted = P.initial_partitions(oldest, NOW, "day", 0)
        missing = [(n, u) for n, u in wanted if u < first.upper]
        if missing:
            items = ", ".join("PARTITION `%s` VALUES LESS THAN (%d)" % item for item in missing)
            P.ddl(conn, "ALTER TABLE tagente_datos REORGANIZE PARTITION `%s` INTO (%s, PARTITION `%s` VALUES LESS"
                  " THAN (%d))" % (first.name, items, first.name, first.upper))
        conn.close()
        self.restore(datos_only=True)

    def partitioned_variants(self):
        for exact in (False, True):
            name = "partitioned, %s mode" % ("exact" if exact else "default")
            seconds, res = self.step_run(DB, exact=exact)
            d = res.details
            self.record(name, seconds, res.rows, {"partitions_dropped": len(d["partitions_dropped"]),
                                                  "rows_dropped": d["rows_dropped"], "rows_deleted": d["rows_deleted"]})
            self.restore_partitioned()

    def sweep(self):
        """Default-mode purge on partitioned tables of growing size; and a blocking ALTER for comparison."""
        sizes = [int(m * 1000000 * self.args.scale) for m in (1, 5, 10)]
        out = []
        for size in sizes:
            bm.schema.load_fixture(self.server, SWEEP_DB)
            span = 60 * DAY
            fill = ("INSERT INTO `{t}` SELECT MOD(seq, 900), seq, %d + seq * %d DIV %d FROM seq_0_to_%d"
                    % (NOW - span, span, size, size - 1))
            clause = P.partition_clause(P.initial_partitions(NOW - span, NOW, "day", 7))
            with self.conn.cursor() as cur:
                cur.execute("USE `%s`" % SWEEP_DB)
                cur.execute("INSERT INTO tconfig (token, value) VALUES ('days_purge', '45')")
                if size == sizes[-1]:
                    # For comparison: a plain ALTER TABLE ... PARTITION BY copies the table and blocks writers.
                    cur.execute("CREATE TABLE alter_copy LIKE tagente_datos")
                    cur.execute(fill.replace("{t}", "alter_copy"))
                    writer = Writer(self.server, SWEEP_DB, table="alter_copy")
                    writer.start()
                    started = time.time()
                    cur.execute("ALTER TABLE alter_copy %s" % clause)
                    blocking = dict(writer.finish(), rows=size, wall_seconds=round(time.time() - started, 2),
                                    load=load())
                    self.results["blocking_alter"] = blocking
                    log("blocking ALTER TABLE ... PARTITION BY of %d rows: %s" % (size, blocking))
                    cur.execute("DROP TABLE alter_copy")
                cur.execute("ALTER TABLE tagente_datos COMMENT = '%s' %s" % (P.make_comment("day", 7), clause))
                cur.execute(fill.replace("{t}", "tagente_datos"))
            seconds, res = self.step_run(SWEEP_DB)
            entry = {"rows": size, "seconds": round(seconds, 3), "purged": res.rows,
                     "partitions_dropped": len(res.details["partitions_dropped"]), "load": load()}
            out.append(entry)
            log("sweep: %s" % entry)
            self.server.execute("DROP DATABASE `%s`" % SWEEP_DB)
        self.results["sweep"] = out

    def report(self):
        r = self.results
        by = dict((e["variant"], e) for e in r["purge"])
        up = by["upstream (100 slices x 1000), plain"]["seconds"]
        unb = by["one unbatched DELETE, plain table"]["seconds"]
        lines = ["pandora_partitions benchmark (scale %s; private MariaDB %s; buffer pool %s)" % (
            self.args.scale, r.get("server_version"), self.args.buffer_pool),
            "tagente_datos: %d rows, %d older than days_purge=45" % (r["rows"], r["to_delete"]), "",
            "  %-36s %9s %10s %12s %14s" % ("purge variant", "seconds", "rows", "x upstream", "x unbatched")]
        for e in r["purge"]:
            ratios = (up / e["seconds"], unb / e["seconds"])
            lines.append("  %-36s %9.3f %10d %12.1f %14.2f" % ((e["variant"], e["seconds"], e["rows"]) + ratios))
        d, x = by["partitioned, default mode"], by["partitioned, exact mode"]
        lines += ["", "  targets: default >= 100x upstream (%.0fx), >= 10x unbatched (%.1fx); exact >= 10x upstream"
                  " (%.1fx), >= 2x unbatched (%.2fx)" % (up / d["seconds"], unb / d["seconds"], up / x["seconds"],
                                                         unb / x["seconds"])]
        c = r["conversion"]
        lines += ["", "online conversion: %.1f s wall, %d rows/s, %d chunks, longest chunk %.3f s, swap %.3f s,"
                  " longest insert wait %.3f s (target <= 5 s), %d writer inserts, %d errors" % (
                      c["wall_seconds"], c["rows_per_s"], c["chunks"], c["longest_chunk_seconds"], c["swap_seconds"],
                      c["longest_insert_wait"], c["writer_inserts"], c["writer_errors"])]
        if r.get("blocking_alter"):
            b = r["blocking_alter"]
            lines.append("blocking ALTER TABLE ... PARTITION BY (%d rows): %.1f s wall, longest insert wait %.3f s" % (
                b["rows"], b["wall_seconds"], b["longest_insert_wait"]))
        lines += ["", "default-mode purge by table size (days_purge=45 of 60 days):"]
        for e in r.get("sweep", []):
            lines.append("  %10d rows: %.3f s (%d partitions, %d rows)" % (e["rows"], e["seconds"],
                                                                           e["partitions_dropped"], e["purged"]))
        loads = [float(e["load"]) for e in r["purge"] + r.get("sweep", [])] + [float(c["load"])]
        lines.append("1-minute load average during the runs (2 vCPUs, shared): %s .. %s" % (min(loads), max(loads)))
        return lines

    def run(self):
        self.server = MariaDBServer(name="bench-partitions", buffer_pool=self.args.buffer_pool)
        self.server.start()
        try:
            self.conn = self.server.connect()
            self.results["server_version"] = self.scalar("SELECT VERSION()", db="mysql")
            self.build()
            self.plain_variants()
            self.convert()
            self.partitioned_variants()
            if not self.args.no_sweep:
                self.sweep()
        finally:
            if self.conn is not None:
                self.conn.close()
            self.server.cleanup()
        lines = self.report()
        out_dir = os.path.join(HERE, "results")
        os.makedirs(out_dir, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        with open(os.path.join(out_dir, "partitions-%s.json" % stamp), "w") as handle:
            json.dump(self.results, handle, indent=2, default=str)
        with open(os.path.join(out_dir, "partitions-%s.txt" % stamp), "w") as handle:
            handle.write("\n".join(lines) + "\n")
        print("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--scale", type=float, default=1.0, help="dataset size factor (1.0 = 9 million rows)")
    parser.add_argument("--buffer-pool", default="256M", help="InnoDB buffer pool of the private server")
    parser.add_argument("--no-sweep", action="store_true", help="skip the 1/5/10 million row sweep")
    args = parser.parse_args()
    PartitionBench(args).run()


if __name__ == "__main__":
    main()
