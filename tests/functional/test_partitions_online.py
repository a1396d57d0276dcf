"""Online conversion with a concurrent writer: SIGKILLs and server crashes at random moments, both directions.

The conversion runs in a child process (this file run as a script), so it can be
killed at any statement.  After every interruption the table is either in the old
layout or the new one (never missing); at the end its rows are exactly the rows
before, plus every insert the writer got an OK for, minus every delete it got an
OK for.
"""

import collections
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

NOW = 1790000000
DAY = 86400
TABLE = "tagente_datos"


# -- the child ---------------------------------------------------------------------------------------------
def child_main(spec):
    from harness.collection import ensure_collection_link
    from harness.mariadb import ROOT_PASSWORD
    ensure_collection_link()
    import pymysql
    import pymysql.cursors
    from ansible_collections.pandorafms.server.plugins.module_utils import _partitions as P
    if spec.get("kill_after"):
        counter = {"n": 0}
        original = pymysql.cursors.Cursor.execute

        def execute(self, query, args=None):
            result = original(self, query, args)
            counter["n"] += 1
            if counter["n"] == spec["kill_after"]:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        pymysql.cursors.Cursor.execute = execute
    conn = pymysql.connect(host="127.0.0.1", port=spec["port"], user="root", password=ROOT_PASSWORD,
                           database=spec["db"], autocommit=True)
    out = P.manage_tables(conn, [TABLE], state=spec["state"], chunk_rows=spec["chunk_rows"], days_ahead=2, now=NOW)
    sys.stdout.write(json.dumps(out[0].get("conversion") or {}, default=str))


# -- the writer --------------------------------------------------------------------------------------------
class Writer(threading.Thread):
    """Inserts (and, unless ``insert_only``, deletes) rows the whole time; records what it got an OK for."""

    def __init__(self, server, db, seed, insert_only=False):
        threading.Thread.__init__(self, daemon=True)
        self.server, self.db = server, db
        self.rng = random.Random(seed)
        self.insert_only = insert_only
        self.inserted = collections.Counter()
        self.deleted = collections.Counter()
        self.uncertain = collections.Counter()
        self.errors = []
        self.longest = 0.0
        self.ops = 0
        self.stop_flag = threading.Event()
        self.acked = []

    def stamp(self):
        pick = self.rng.random()
        if pick < 0.03:
            return None
        if pick < 0.05:
            return 0
        if pick < 0.10:
            return NOW + self.rng.randint(1, 400) * DAY  # future: the catch-all
        if pick < 0.60:
            return NOW - self.rng.randint(0, 8 * DAY)  # inside the copied range
        return NOW + self.rng.randint(0, 600)

    def connect(self):
        while not self.stop_flag.is_set():
            try:
                return self.server.connect(self.db)
            except Exception:  # the server is restarting
                time.sleep(0.1)
        return None

    def run(self):
        conn = self.connect()
        k = 0
        while not self.stop_flag.is_set() and conn is not None:
            k += 1
            delete = not self.insert_only and self.acked and k % 7 == 0
            row = self.acked[self.rng.randrange(len(self.acked))] if delete else (
                7000 + k % 40, float(k) + 0.25, self.stamp())
            started = time.time()
            try:
                with conn.cursor() as cur:
                    if delete:
                        n = cur.execute("DELETE FROM tagente_datos WHERE id_agente_modulo = %s AND datos = %s AND"
                                        " utimestamp <=> %s LIMIT 1", row)
                    else:
                        n = cur.execute("INSERT INTO tagente_datos VALUES (%s, %s, %s)", row)
            except Exception as exc:
                self.errors.append("%s: %s" % ("delete" if delete else "insert", exc))
                if not delete:
                    self.uncertain[row] += 1
                try:
                    conn.close()
                except Exception:
                    pass
                conn = self.connect()
                continue
            self.longest = max(self.longest, time.time() - started)
            self.ops += 1
            if delete:
                if n == 1:
                    self.deleted[row] += 1
                    self.acked.remove(row)
            else:
                self.inserted[row] += 1
                self.acked.append(row)
            time.sleep(0.002)

    def stop(self):
        self.stop_flag.set()
        self.join(30)


# -- helpers -----------------------------------------------------------------------------------------------
def seed(db, rows=8000):
    db.query("INSERT INTO tagente_datos SELECT seq %% 16, seq, %s + (seq DIV 16) * 900 FROM seq_0_to_%d"
             % (NOW - 5 * DAY, rows - 1))
    db.query("INSERT INTO tagente_datos VALUES (1, 1.5, NULL), (1, 2.5, 0), (2, 3.5, NULL), (3, 4.5, %s)"
             % (NOW + 30 * DAY))


def multiset(db):
    return collections.Counter(tuple(r) for r in db.query("SELECT id_agente_modulo, datos, utimestamp FROM"
                                                          " tagente_datos"))


def copied_so_far(db):
    """Rows the conversion in progress has copied (-1 when none is in progress)."""
    try:
        found = db.query("SELECT rows_copied FROM pfms_partition_progress WHERE table_name = 'tagente_datos'")
    except Exception:  # no progress table (yet)
        return -1
    return found[0][0] if found else -1


def conversion_state(db, state):
    from ansible_collections.pandorafms.server.plugins.module_utils._partitions import Conversion
    conn = db.connect()
    try:
        return Conversion(conn, TABLE, "partitioned" if state == "present" else "plain").state()[0]
    finally:
        conn.close()


def layout_kind(db):
    from ansible_collections.pandorafms.server.plugins.module_utils._partitions import read_layout
    conn = db.connect()
    try:
        return read_layout(conn, TABLE).kind()
    finally:
        conn.close()


def run_child(db, state, kill_after=None, chunk_rows=300):
    spec = {"port": db.server.port, "db": db.name, "state": state, "kill_after": kill_after,
            "chunk_rows": chunk_rows}
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "child", json.dumps(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


# -- the tests ---------------------------------------------------------------------------------------------
def test_conversion_survives_sigkills_with_a_concurrent_writer(pandora_db):
    db = pandora_db
    seed(db)
    before = multiset(db)
    writer = Writer(db.server, db.name, seed=12)
    writer.start()
    rng = random.Random(2026)
    kills = completed = 0
    states = set()
    state = "present"
    try:
        for _attempt in range(30):
            if kills >= 10 and completed >= 2:
                break
            proc = run_child(db, state, kill_after=rng.randint(1, 90))
            out, err = proc.communicate(timeout=120)
            if proc.returncode == -signal.SIGKILL:
                kills += 1
                states.add(conversion_state(db, state))
            else:
                assert proc.returncode == 0, err.decode()[-2000:]
                completed += 1
                assert layout_kind(db) == ("partitioned" if state == "present" else "plain")
                state = "absent" if state == "present" else "present"
            # Whenever it was killed: the old layout or the new one, never a missing table.
            assert layout_kind(db) in ("plain", "partitioned")
        proc = run_child(db, "present")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
    finally:
        writer.stop()
    assert kills >= 10 and completed >= 2
    assert "copying" in states and len(states) >= 2, states  # killed in the middle of copies, and elsewhere
    assert layout_kind(db) == "partitioned"
    assert writer.errors == []  # no write of the Pandora server failed
    assert writer.ops > 100 and sum(writer.deleted.values()) > 5
    expected = before + writer.inserted
    expected.subtract(writer.deleted)
    assert multiset(db) == +expected
    assert writer.longest < 5.0
    assert not db.query("SHOW TABLES LIKE '%%pfms%%'")
    assert not db.query("SHOW TRIGGERS")


def test_conversion_survives_server_crashes(tmp_path):
    from conftest import Database
    from harness import schema
    from harness.mariadb import MariaDBServer
    server = MariaDBServer(basedir=str(tmp_path / "crash"), name="partitions-crash", buffer_pool="64M")
    server.start()
    try:
        schema.load_fixture(server, "crashdb")
        db = Database(server, "crashdb")
        seed(db, rows=90000)   # enough for three crashes mid-copy, even on a quiet machine
        before = multiset(db)
        writer = Writer(server, db.name, seed=7, insert_only=True)
        writer.start()
        rng = random.Random(11)
        crashes = 0
        try:
            for _round in range(3):
                copied = copied_so_far(db)
                proc = run_child(db, "present", chunk_rows=100)
                deadline = time.time() + 30
                while copied_so_far(db) <= copied and time.time() < deadline:  # this run is copying now
                    time.sleep(0.05)
                time.sleep(rng.uniform(0.0, 0.1))
                os.kill(server.proc.pid, signal.SIGKILL)  # a crash of mariadbd in the middle of the conversion
                server.proc.wait(30)
                server.proc = None
                proc.communicate(timeout=60)
                server.start()
                crashes += 1
                assert layout_kind(db) in ("plain", "partitioned")
                # Mid-conversion: the shadow table is there and the copy had made progress in this round.
                assert db.query("SHOW TABLES LIKE 'tagente_datos__pfms_new'") and copied_so_far(db) > copied
            proc = run_child(db, "present", chunk_rows=2000)
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err.decode()[-2000:]
            time.sleep(0.3)
        finally:
            writer.stop()
        assert crashes == 3
        assert layout_kind(db) == "partitioned"
        after = multiset(db)
        acknowledged = before + writer.inserted
        # Every row that was there or acknowledged is there exactly as often; an insert that failed because the
        # server died may or may not have committed, but is never duplicated.
        assert not (acknowledged - after)
        extra = after - acknowledged
        assert not (extra - writer.uncertain)
        assert writer.ops > 100
    finally:
        server.cleanup()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        child_main(json.loads(sys.argv[2]))
