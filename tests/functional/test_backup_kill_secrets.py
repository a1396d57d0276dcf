"""No secret outlives a crash: SIGKILL a backup during its dump, a restore while it loads.

After each kill no file under the backup and scratch directories holds the password (the client
tools read their option file from an inherited pipe, never from disk), no argv ever shows it, and
the next run of the same kind removes the killed run's scratch directory and loading account.
"""

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
from ansible_collections.pandorafms.server.plugins.module_utils._backup import run_backup, run_restore
from ansible_collections.pandorafms.server.plugins.module_utils._connection import ConnectionSettings
args = json.loads(sys.stdin.read())
func = run_backup if args["kind"] == "backup" else run_restore
result = func(ConnectionSettings(**args["settings"]), **args["options"])
print(json.dumps({"archive": result.get("archive")}))
""" % COLLECTIONS_ROOT


def start(db, kind, **options):
    proc = subprocess.Popen([sys.executable, "-c", RUNNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    settings = {"host": "127.0.0.1", "port": db.server.port, "user": "root", "password": ROOT_PASSWORD,
                "database": db.name}
    proc.stdin.write(json.dumps({"settings": settings, "kind": kind, "options": options}).encode())
    proc.stdin.close()
    proc.stdin = None
    return proc


def group_commands(pgid):
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.getpgid(int(pid)) != pgid:
                continue
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                out.append(handle.read())
        except (OSError, ProcessLookupError):
            continue
    return out


def wait_for_tool(proc, tool, timeout=60):
    """Wait until ``tool`` (the dump tool, the client) runs in the engine's process group."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(cmd.split(b"\0")[0].endswith(tool) for cmd in group_commands(proc.pid)):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    return False


def kill_group(proc):
    for kill in (proc.kill, lambda: os.killpg(proc.pid, signal.SIGKILL)):
        try:
            kill()
        except (ProcessLookupError, PermissionError):
            pass
    proc.wait()


def files_holding(secret, *roots):
    found = []
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in files:
                path = os.path.join(folder, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                with open(path, "rb") as handle:
                    if secret in handle.read():
                        found.append(path)
    return found


def scratch_dirs(folder, prefix):
    return sorted(n for n in os.listdir(folder) if n.startswith(prefix))


def test_kills_leave_no_password_on_disk(pandora_db, tmp_path):
    db = bu.Checked(pandora_db)
    bu.fill(db, agents=4, days=6)   # a dump that lasts long enough to be killed, on a quiet machine too
    dest = str(tmp_path / "backups")
    secret = ROOT_PASSWORD.encode()
    seed = int(os.environ.get("BACKUP_KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    killed = {"backup": 0, "restore": 0}
    with bu.ArgvWatcher(ROOT_PASSWORD) as watch:
        proc = start(db, "backup", dest=dest, include_files=False)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
        archive = json.loads(out.decode())["archive"]

        for kind, tool, prefix, options in (
                ("backup", b"mariadb-dump", ".pandorafms-backup-", dict(dest=dest, include_files=False)),
                ("restore", b"mariadb", ".pandorafms-restore-", dict(src=archive))):
            for attempt in range(3):
                proc = start(db, kind, **options)
                running = wait_for_tool(proc, tool)
                time.sleep(rng.uniform(0, 0.05))
                kill_group(proc)
                if running:
                    killed[kind] += 1
                assert files_holding(secret, dest) == [], "seed %s: after a kill of the %s" % (seed, kind)
            # The killed runs' scratch directories are there until the next run of the same kind starts.
            assert scratch_dirs(dest, prefix), "seed %s: no %s was killed while it ran" % (seed, kind)
            proc = start(db, kind, **options)
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err.decode()[-2000:]
            assert scratch_dirs(dest, prefix) == []
            assert files_holding(secret, dest) == []
    assert watch.seen > 0
    assert watch.hits == []
    assert killed["backup"] >= 1 and killed["restore"] >= 1, (seed, killed)
    accounts = db.server.execute("SELECT COUNT(*) FROM mysql.user WHERE User LIKE 'pfms\\_rst\\_%%'")[0][0]
    assert accounts == 0
    for name in bu.databases(db.server, db.name + "\\_pre\\_restore\\_%"):
        db.server.execute("DROP DATABASE `%s`" % name)
