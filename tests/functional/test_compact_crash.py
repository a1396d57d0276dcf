"""Crash safety: SIGKILL the process running the compaction, then rerun to completion.

The compaction runs in a child process (tests/harness/compact_child.py) on a
seeded database.  After every kill the window invariants must hold against
the snapshot taken before anything ran (each window raw or exactly its mean,
never both or neither) and the high-water marks must agree with the data;
after the rerun every window must be compacted, and one more run must change
nothing.
"""

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from harness import datagen
from harness.compact_checks import (CHILD, check_marks, check_windows, data_checksums, eligible_modules,
                                    module_marks, snapshot)

DAY = 86400
HOUR = 3600
NOW = 1764003333
BOUNDARY = NOW - 2 * DAY - (NOW - 2 * DAY) % HOUR
SEED = int(os.environ.get("COMPACT_CRASH_SEED", "20251124"))


def seed(db, token_marks=False):
    conn = db.connect()
    datagen.generate(conn, now=NOW, agents=2, days=5, events=1, traps=1, sessions=1, audit=1,
                     tconfig={"days_compact": "2", "step_compact": "1"})
    with conn.cursor() as cur:
        # NULLs inside windows, so means of mixed windows are exercised too.
        cur.execute("UPDATE tagente_datos SET datos = NULL WHERE id_agente_modulo IN (1, 9) AND utimestamp % 3900 = 0")
        if token_marks:
            cur.execute("ALTER TABLE tagente_modulo DROP COLUMN last_compact")
    return conn


def spawn(db, kill=None, options=None, batch_sleep=0.01, marks_every=None):
    # Small transactions (one window of the page's modules each) and a pause
    # between them: the run lasts about a second, so a kill lands inside it.
    spec = {"port": db.server.port, "db": db.name, "now": NOW, "batch_sleep": batch_sleep,
            "options": options or {"compact_chunk_rows": 10}, "marks_every": marks_every}
    if kill:
        spec["kill"] = kill
    errors = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([sys.executable, CHILD, json.dumps(spec)], stdout=subprocess.PIPE,
                            stderr=errors, universal_newlines=True)
    proc.errors = errors
    line = proc.stdout.readline()
    if line.strip() != "START":
        proc.wait(30)
        errors.seek(0)
        raise AssertionError("child did not start: %s %s" % (line, errors.read()))
    return proc


def finish(proc, timeout=120):
    # Read through the same buffered reader that read START (communicate() would
    # read the pipe underneath it and miss what the buffer already holds).
    out = proc.stdout.read()
    proc.wait(timeout)
    proc.stdout.close()
    proc.errors.seek(0)
    err = proc.errors.read()
    proc.errors.close()
    return proc.returncode, out, err


def run_to_completion(db):
    proc = spawn(db, batch_sleep=0.0, options={})
    rc, out, err = finish(proc)
    assert rc == 0, err
    results = json.loads(out.strip().splitlines()[-1])
    assert results[0]["details"]["stop_reason"] is None
    return results[0]


def assert_consistent(conn, before, eligible, complete):
    after = snapshot(conn, HOUR)
    problems = check_windows(before, after, HOUR, BOUNDARY, eligible, complete)
    problems += check_marks(before, after, module_marks(conn), HOUR, BOUNDARY, eligible)
    assert problems == [], problems[:5]


def test_sigkill_at_random_moments_then_rerun(main_server, new_db):
    rng = random.Random(SEED)
    kills = 0
    partial_states = 0
    for trial in range(10):
        db = new_db(main_server, "compact_crash")
        conn = seed(db, token_marks=(trial % 3 == 2))
        before, eligible = snapshot(conn, HOUR), eligible_modules(conn)
        for dummy in range(rng.randint(1, 3)):
            proc = spawn(db, marks_every=rng.choice([None, 0.0, 0.05]))
            time.sleep(rng.uniform(0.05, 0.9))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            rc, unused_out, err = finish(proc)
            assert rc in (0, -signal.SIGKILL), err
            after = snapshot(conn, HOUR)
            if after != before:
                partial_states += 1
            assert_consistent(conn, before, eligible, complete=False)
        result = run_to_completion(db)
        assert_consistent(conn, before, eligible, complete=True)
        checksums = data_checksums(conn)
        again = run_to_completion(db)
        assert again["rows"] == 0 and again["details"]["windows"] == 0, (trial, result, again)
        assert data_checksums(conn) == checksums
        conn.close()
        db.drop()
    assert kills >= 10, "only %d kills landed; make the child slower (seed %d)" % (kills, SEED)
    assert partial_states >= 5, "kills did not land in the middle of the work (seed %d)" % SEED


@pytest.mark.parametrize("token_marks,marks_every,kill", [
    (False, None, {"match": "DELETE FROM tagente_datos", "nth": 3}),  # raw rows deleted, means not inserted
    (False, None, {"match": "INSERT INTO tagente_datos", "nth": 2}),  # means inserted, not committed
    (False, None, {"match": "UPDATE tagente_modulo", "nth": 1}),      # last transaction of the page
    (False, 0.0, {"match": "UPDATE tagente_modulo", "nth": 5}),       # marks moved with the data
    (False, None, {"commit": 4}),                                     # everything done but COMMIT
    (True, None, {"match": "DELETE FROM tagente_datos", "nth": 2}),
    (True, None, {"match": "INSERT INTO tconfig", "nth": 1}),         # first resume token, not committed
    (True, None, {"match": "UPDATE tconfig", "nth": 3}),
])
def test_sigkill_inside_a_transaction(main_server, new_db, token_marks, marks_every, kill):
    db = new_db(main_server, "compact_kill")
    conn = seed(db, token_marks=token_marks)
    before, eligible = snapshot(conn, HOUR), eligible_modules(conn)
    committed_marks = module_marks(conn)
    proc = spawn(db, kill=kill, batch_sleep=0.0, marks_every=marks_every)
    rc, unused_out, err = finish(proc)
    assert rc == -signal.SIGKILL, "the kill point was never reached: %s" % err
    assert_consistent(conn, before, eligible, complete=False)
    assert snapshot(conn, HOUR) != before or module_marks(conn) == committed_marks
    run_to_completion(db)
    assert_consistent(conn, before, eligible, complete=True)
    assert run_to_completion(db)["rows"] == 0
