"""A restore SIGKILLed at random moments leaves the live database old or new, never a mix or empty."""

import json
import os
import random
import signal
import subprocess
import sys
import time

from harness import backup_util as bu
from harness.collection import COLLECTIONS_ROOT
from harness.mariadb import ROOT_PASSWORD

RUNNER = r"""
import json, sys
sys.path.insert(0, %r)
from ansible_collections.pandorafms.server.plugins.module_utils._backup import run_restore
from ansible_collections.pandorafms.server.plugins.module_utils._connection import ConnectionSettings
args = json.loads(sys.stdin.read())
result = run_restore(ConnectionSettings(**args["settings"]), src=args["src"])
print(json.dumps({"database": result["database"], "seconds": result["seconds"]}))
""" % COLLECTIONS_ROOT


def start_restore(db, archive):
    """The engine in its own process group (password through stdin, never argv)."""
    proc = subprocess.Popen([sys.executable, "-c", RUNNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    settings = {"host": "127.0.0.1", "port": db.server.port, "user": "root", "password": ROOT_PASSWORD,
                "database": db.name}
    proc.stdin.write(json.dumps({"settings": settings, "src": archive}).encode())
    proc.stdin.close()
    proc.stdin = None  # written and closed: communicate() must not touch it
    return proc


def kill_group(proc):
    """SIGKILL the engine, then whatever it started (the same process group)."""
    for kill in (proc.kill, lambda: os.killpg(proc.pid, signal.SIGKILL)):
        try:
            kill()
        except (ProcessLookupError, PermissionError):
            pass
    proc.wait()


def wait_settled(server, timeout=60):
    """Wait until no statement of a killed run is still executing on the server.

    A multi-table RENAME TABLE goes on in the server after its client died;
    while it runs, SHOW TABLES (which takes no metadata lock) can list a
    half-renamed set, although every reader of a table waits for the whole
    statement.  The state that counts is the one after it.
    """
    deadline = time.time() + timeout
    while True:
        busy = server.execute("SELECT id, command, info FROM information_schema.processlist WHERE id <> CONNECTION_ID()"
                              " AND command NOT IN ('Sleep', 'Daemon') AND user <> 'system user'")
        if not busy:
            return
        assert time.time() < deadline, "statements still running: %s" % (busy,)
        time.sleep(0.05)


def test_restore_killed_at_random_moments(pandora_db, tmp_path):
    db = bu.Checked(pandora_db)
    bu.fill(db, agents=4, days=3)
    res_backup = __import__(
        "ansible_collections.pandorafms.server.plugins.module_utils._backup", fromlist=["run_backup"]).run_backup
    from ansible_collections.pandorafms.server.plugins.module_utils._connection import ConnectionSettings
    settings = ConnectionSettings(host="127.0.0.1", port=db.server.port, user="root", password=ROOT_PASSWORD,
                                  database=db.name)
    archive = res_backup(settings, dest=str(tmp_path / "b"), include_files=False)["archive"]
    new = db.checksums()

    # One full run to learn how long a restore takes here.
    bu.scribble(db, marker=100)
    started = time.time()
    proc = start_restore(db, archive)
    out, err = proc.communicate(timeout=300)
    duration = time.time() - started
    assert proc.returncode == 0, err.decode()[-2000:]
    assert db.checksums() == new

    seed = int(os.environ.get("BACKUP_KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    outcomes = []
    for attempt in range(10):
        bu.scribble(db, marker=attempt + 1)
        old = db.checksums()
        assert old != new
        proc = start_restore(db, archive)
        delay = rng.uniform(0.05, duration * 1.1)
        time.sleep(delay)
        finished = proc.poll() is not None
        kill_group(proc)
        wait_settled(db.server)
        now = db.checksums()
        state = "old" if now == old else "new" if now == new else "MIX"
        outcomes.append((round(delay, 2), state, finished))
        assert state != "MIX", "seed %s: after a kill at %.2fs the live database is neither old nor new " \
                               "(tables %s)" % (seed, delay, sorted(now))
        assert now, "seed %s: the live database is empty" % seed
    print("seed %s, restore %.1fs, kills (delay, state, finished): %s" % (seed, duration, outcomes))

    # A later restore cleans up what the killed ones left and works.
    proc = start_restore(db, archive)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert db.checksums() == new
    assert bu.databases(db.server, db.name + "\\_restore\\_%") == []
    for name in bu.databases(db.server, db.name + "\\_pre\\_restore\\_%"):
        db.server.execute("DROP DATABASE `%s`" % name)
