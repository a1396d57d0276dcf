"""Benchmark: pandora_backup's engine against the plain tools, on one private server, in one run.

    flock /tmp/pandora-bench.lock .venv/bin/python benchmarks/bench_backup.py            # >= 9M rows
    .venv/bin/python benchmarks/bench_backup.py --scale 0.05                              # quick look

Starts its own mariadbd (127.0.0.1, temporary datadir), generates Pandora data with
tests/harness/datagen.py (agents=120 at scale 1: 9.97M rows, ~230 MB of dump), then times:

backup   mariadb-dump --single-transaction | gzip      (baseline, the target is <= 1.0x)
         mariadb-dump --single-transaction | pigz
         run_backup(include_files=False)               (ours: dump -> sha256/row counts -> pigz -> archive)
         mydumper (Debian's, 2 threads, compressed)    (further reference)
restore  gunzip | mariadb into an empty database        (baseline, the target is <= 1.3x)
         run_restore                                    (ours: verify, staging load, count check, swap, drop)
         myloader (2 threads)                           (further reference)

and the archive sizes (the target is within 5% of the gzip baseline).  Results go to
benchmarks/results/backup-<timestamp>.json and .md (gitignored) and to stdout.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

from harness.collection import ensure_collection_link  # noqa: E402
from harness.mariadb import ROOT_PASSWORD, MariaDBServer  # noqa: E402
from harness import datagen, schema  # noqa: E402

ensure_collection_link()

from ansible_collections.pandorafms.server.plugins.module_utils._backup import run_backup, run_restore  # noqa: E402
from ansible_collections.pandorafms.server.plugins.module_utils._connection import ConnectionSettings  # noqa: E402


def sh(cmd):
    """Run a shell pipeline with pipefail; return seconds."""
    started = time.time()
    subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True)
    return time.time() - started


def checksum_all(server, db):
    conn = server.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW FULL TABLES WHERE Table_type <> 'VIEW'")
            tables = [r[0] for r in cur.fetchall()]
            cur.execute("CHECKSUM TABLE " + ", ".join("`%s`" % t for t in tables))
            return dict((r[0].split(".", 1)[1], r[1]) for r in cur.fetchall())
    finally:
        conn.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full dataset (agents=120)")
    parser.add_argument("--workdir", help="where the server and the archives go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--skip-mydumper", action="store_true")
    args = parser.parse_args()

    agents = max(1, int(round(120 * args.scale)))
    work = args.workdir or tempfile.mkdtemp(prefix="pandora-bench-backup-")
    os.makedirs(work, exist_ok=True)
    server = MariaDBServer(basedir=os.path.join(work, "server"), name="bench-backup", buffer_pool="1G")
    results = {"scale": args.scale, "agents": agents, "cpus": os.cpu_count(), "times": {}, "sizes": {}}
    try:
        server.start()
        cnf = os.path.join(work, "client.cnf")
        with open(os.open(cnf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            handle.write("[client]\nuser=root\npassword=%s\nhost=127.0.0.1\nport=%d\n"
                         "[mydumper]\nuser=root\npassword=%s\nhost=127.0.0.1\nport=%d\n"
                         "[myloader]\nuser=root\npassword=%s\nhost=127.0.0.1\nport=%d\n"
                         % ((ROOT_PASSWORD, server.port) * 3))
        db = "pandora"
        schema.load_fixture(server, db)
        started = time.time()
        conn = server.connect(db)
        summary = datagen.generate(conn, agents=agents)
        conn.close()
        rows = server.execute("SELECT SUM(table_rows) FROM information_schema.tables WHERE table_schema = %s",
                              None, (db,))[0][0]
        results["rows_estimated"] = int(rows)
        results["rows"] = dict((k, v) for k, v in summary.items() if k != "now")
        results["generate_seconds"] = round(time.time() - started, 1)
        print("generated %s rows in %.0fs" % (sum(results["rows"].values()), results["generate_seconds"]),
              flush=True)
        dump = "mariadb-dump --defaults-extra-file=%s --single-transaction %s" % (cnf, db)
        out = os.path.join(work, "out")
        os.makedirs(out)
        settings = ConnectionSettings(host="127.0.0.1", port=server.port, user="root", password=ROOT_PASSWORD,
                                      database=db)
        original = checksum_all(server, db)

        t = results["times"]
        s = results["sizes"]
        gz = os.path.join(out, "dump.sql.gz")
        t["backup_mysqldump_gzip"] = sh("%s | gzip > %s" % (dump, gz))
        s["mysqldump_gzip"] = os.path.getsize(gz)
        pz = os.path.join(out, "dump_pigz.sql.gz")
        t["backup_mysqldump_pigz"] = sh("%s | pigz > %s" % (dump, pz))
        s["mysqldump_pigz"] = os.path.getsize(pz)
        started = time.time()
        res = run_backup(settings, dest=os.path.join(out, "ours"), include_files=False)
        t["backup_ours"] = time.time() - started
        s["ours"] = res["size"]
        results["ours_compression"] = res["compression"]
        if not args.skip_mydumper and shutil.which("mydumper"):
            md = os.path.join(out, "mydumper")
            t["backup_mydumper"] = sh("mydumper --defaults-file=%s -B %s -o %s -t 2 -c --trx-consistency-only "
                                      "-v 1" % (cnf, db, md))
            s["mydumper"] = sum(os.path.getsize(os.path.join(md, f)) for f in os.listdir(md))
        print("backup done: %s" % json.dumps(t), flush=True)

        server.execute("CREATE DATABASE restore_baseline")
        t["restore_gunzip_mysql"] = sh("gunzip -c %s | mariadb --defaults-extra-file=%s restore_baseline" % (gz, cnf))
        assert checksum_all(server, "restore_baseline") == original
        server.execute("DROP DATABASE restore_baseline")
        # Ours restores over the live database (which has data): verify, staging, count check, swap, drop old.
        started = time.time()
        restored = run_restore(settings, src=res["archive"])
        t["restore_ours"] = time.time() - started
        results["restore_ours_engine_seconds"] = restored["seconds"]
        assert checksum_all(server, db) == original
        if "backup_mydumper" in t:
            t["restore_myloader"] = sh("myloader --defaults-file=%s -d %s -B restore_myloader -t 2 -o -v 1"
                                       % (cnf, md))
            assert checksum_all(server, "restore_myloader") == original
            server.execute("DROP DATABASE restore_myloader")
        for key in t:
            t[key] = round(t[key], 2)
        results["ratios"] = {
            "backup_ours_vs_mysqldump_gzip": round(t["backup_ours"] / t["backup_mysqldump_gzip"], 3),
            "backup_ours_vs_mysqldump_pigz": round(t["backup_ours"] / t["backup_mysqldump_pigz"], 3),
            "restore_ours_vs_gunzip_mysql": round(t["restore_ours"] / t["restore_gunzip_mysql"], 3),
            "size_ours_vs_gzip": round(float(s["ours"]) / s["mysqldump_gzip"], 4),
        }
        results["targets_met"] = {
            "backup <= 1.0x mysqldump|gzip": results["ratios"]["backup_ours_vs_mysqldump_gzip"] <= 1.0,
            "restore <= 1.3x gunzip|mysql": results["ratios"]["restore_ours_vs_gunzip_mysql"] <= 1.3,
            "size within 5% of gzip": abs(results["ratios"]["size_ours_vs_gzip"] - 1) <= 0.05,
        }
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    report(results)


def report(results):
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = os.path.join(HERE, "results")
    os.makedirs(folder, exist_ok=True)
    t, s, r = results["times"], results["sizes"], results["ratios"]
    lines = ["# Backup/restore benchmark (%s)" % stamp, "",
             "scale %s, %d agents, %s rows (%s estimated), %s CPUs" % (
                 results["scale"], results["agents"], sum(results["rows"].values()), results["rows_estimated"],
                 results["cpus"]), "",
             "| what | seconds | archive bytes |", "| --- | ---: | ---: |"]
    names = [("backup_mysqldump_gzip", "mysqldump_gzip", "mariadb-dump \\| gzip"),
             ("backup_mysqldump_pigz", "mysqldump_pigz", "mariadb-dump \\| pigz"),
             ("backup_ours", "ours", "pandora_backup (%s)" % results.get("ours_compression")),
             ("backup_mydumper", "mydumper", "mydumper -t 2 -c"),
             ("restore_gunzip_mysql", None, "gunzip \\| mariadb"),
             ("restore_ours", None, "pandora_backup restore (verify + staging + swap)"),
             ("restore_myloader", None, "myloader -t 2")]
    for key, size_key, label in names:
        if key in t:
            lines.append("| %s | %.2f | %s |" % (label, t[key], s.get(size_key, "") if size_key else ""))
    lines += ["", "| ratio | value | target |", "| --- | ---: | --- |",
              "| backup ours / mysqldump\\|gzip | %.3f | <= 1.0 |" % r["backup_ours_vs_mysqldump_gzip"],
              "| backup ours / mysqldump\\|pigz | %.3f | |" % r["backup_ours_vs_mysqldump_pigz"],
              "| restore ours / gunzip\\|mysql | %.3f | <= 1.3 |" % r["restore_ours_vs_gunzip_mysql"],
              "| archive ours / gzip | %.4f | 0.95 .. 1.05 |" % r["size_ours_vs_gzip"], ""]
    text = "\n".join(lines)
    with open(os.path.join(folder, "backup-%s.json" % stamp), "w") as handle:
        json.dump(results, handle, indent=1)
    with open(os.path.join(folder, "backup-%s.md" % stamp), "w") as handle:
        handle.write(text)
    print(text)
    print(json.dumps(results["targets_met"]))


if __name__ == "__main__":
    main()
