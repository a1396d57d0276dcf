"""Run CompactStep in a process of its own (crash tests and the benchmark).

Usage: ``python compact_child.py '<json>'`` with keys

* ``port``, ``db``: the test server and database (root, password from the harness);
* ``history_port``, ``history_db``: optional history database (``database`` = "history");
* ``now``, ``options``, ``batch_sleep``, ``max_runtime``, ``check_mode``, ``database``;
* ``kill``: optional ``{"match": "<statement prefix>", "nth": N}`` or ``{"commit": N}``:
  the process SIGKILLs itself right after the Nth statement starting with the prefix
  has run (or right before the Nth COMMIT), to crash at an exact point of a transaction;
* ``marks_every``: optional seconds between writes of ``tagente_modulo.last_compact``
  inside a page (0 = with every transaction), to reach that code path in a short test.

It prints ``START`` when the step is about to run, then one JSON line with the
results (and the step's log lines on stderr).  No password is in its arguments.
"""

import json
import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from harness.collection import ensure_collection_link  # noqa: E402
from harness.mariadb import ROOT_PASSWORD  # noqa: E402

ensure_collection_link()

import pymysql  # noqa: E402
import pymysql.cursors  # noqa: E402

from ansible_collections.pandorafms.server.plugins.module_utils._compact import ColumnMarks, CompactStep  # noqa: E402
from ansible_collections.pandorafms.server.plugins.module_utils._context import Context  # noqa: E402
from ansible_collections.pandorafms.server.plugins.module_utils._tconfig import TConfig  # noqa: E402


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def install_kill(spec):
    counter = {"n": 0}
    if "commit" in spec:
        original_commit = pymysql.connections.Connection.commit

        def commit(self):
            counter["n"] += 1
            if counter["n"] == spec["commit"]:
                _die()
            return original_commit(self)

        pymysql.connections.Connection.commit = commit
        return
    prefix = spec["match"].lower()
    original = pymysql.cursors.Cursor.execute

    def execute(self, query, args=None):
        result = original(self, query, args)
        if query.lstrip().lower().startswith(prefix):
            counter["n"] += 1
            if counter["n"] == spec["nth"]:
                _die()
        return result

    pymysql.cursors.Cursor.execute = execute


def connect(port, db):
    return pymysql.connect(host="127.0.0.1", port=port, user="root", password=ROOT_PASSWORD, database=db,
                           autocommit=True, charset="utf8mb4")


def main(argv):
    spec = json.loads(argv[1])
    if spec.get("kill"):
        install_kill(spec["kill"])
    if spec.get("marks_every") is not None:
        ColumnMarks.write_every = float(spec["marks_every"])
    conn = connect(spec["port"], spec["db"])
    history = None
    if spec.get("history_db"):
        history = connect(spec["history_port"], spec["history_db"])
    ctx = Context(conn, TConfig.load(conn), now=spec.get("now"), check_mode=spec.get("check_mode", False),
                  options=spec.get("options"), history_conn=history,
                  history_tconfig=TConfig.load(history) if history else None,
                  batch_sleep=spec.get("batch_sleep", 0.0), max_runtime=spec.get("max_runtime"))
    step = CompactStep(spec.get("database", "main"))
    sys.stdout.write("START\n")
    sys.stdout.flush()
    results = step.plan(ctx) if ctx.check_mode else step.run(ctx)
    for line in ctx.log.lines:
        sys.stderr.write(line + "\n")
    sys.stdout.write(json.dumps([r.as_dict() for r in results]) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
