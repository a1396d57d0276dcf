"""The pipelined walk of step history_move (tables without a key, MariaDB) and the serial walk it replaces there.

* the serial walk (``PIPELINE`` off, what a server without ``DELETE ... RETURNING`` uses) still conserves every row;
* the pipelined walk overlaps the two servers (main reads block n+1 before it commits block n) and still never has
  two ranges copied and not deleted: whenever the history side is about to commit block m, main has committed
  block m-1;
* rows written into an old range between its read and its delete: the delete sees them, rolls back, the range is
  resolved as after a crash and moved again, with every row conserved; rows that keep changing stop the run with
  a clear error after a few tries, nothing lost.
"""

import json

import pytest

from harness.history_move_seed import OneConnection, assert_conserved, link, old_rows_left, original_of, seed
from harness.maint_seed import DAY, NOW, engine_run

from ansible_collections.pandorafms.server.plugins.module_utils import _history_move
from ansible_collections.pandorafms.server.plugins.module_utils._errors import OperationFailed

MOVE = ["history_move"]
CUTOFF = NOW - 30 * DAY


def _token(conn, token):
    raw = conn.scalar("SELECT value FROM tconfig WHERE token = %s", (token,))
    return json.loads(raw)["n"] if raw else 0


class Recorder(object):
    """The hook: the sequence of protocol points of tagente_datos, and at each history commit the journals."""

    def __init__(self, main, history):
        self.events = []
        self.main = OneConnection(main)
        self.history = OneConnection(history)
        self.before_commit = []  # (copied.n committed on history, moved.n committed on main)

    def __call__(self, table, count, sql):
        if table != "tagente_datos" or not sql.startswith("history_move:"):
            return
        point = sql.split(":", 1)[1]
        self.events.append(point)
        if point == "verified":  # history thread, the journal written, the COMMIT next
            self.before_commit.append((_token(self.history, "history_move_copied_tagente_datos"),
                                       _token(self.main, "history_move_moved_tagente_datos")))

    def close(self):
        self.main.close()
        self.history.close()

    def overlapped(self):
        """Times main read a block while the block before it was not yet committed on main."""
        reads_ahead, open_blocks = 0, 0
        for point in self.events:
            if point == "locked":
                if open_blocks:
                    reads_ahead += 1
                open_blocks += 1
            elif point == "committed":
                open_blocks -= 1
        return reads_ahead


@pytest.mark.parametrize("pipeline,delay", [(True, 0), (False, 0), (True, 0.001)],
                         ids=["pipelined", "serial", "serial-with-a-delay"])
def test_both_walks_conserve_and_only_the_pipelined_one_overlaps(pandora_db, history_db, monkeypatch, pipeline,
                                                                 delay):
    """A run with a delay between blocks is paced by its sleeps: it takes the serial walk."""
    monkeypatch.setattr(_history_move, "PIPELINE", pipeline)
    link(pandora_db, history_db, days=30, step=25, delay=delay)
    seed(pandora_db)
    original = original_of(pandora_db)
    recorder = Recorder(pandora_db, history_db)
    try:
        res = engine_run(pandora_db, steps=MOVE, statement_hook=recorder)
    finally:
        recorder.close()
    assert_conserved(original, pandora_db, history_db, days=30)
    assert old_rows_left(pandora_db) == 0
    data = [s for s in res["steps"] if s["table"] == "tagente_datos"][0]
    assert data["details"]["blocks"] == recorder.events.count("committed") > 20
    assert data["details"]["max_block_rows"] == 120  # the oversized (second, module) pair: one block either way
    # At most one range copied and not deleted: block m commits on history only after main committed m - 1.
    assert len(recorder.before_commit) == data["details"]["blocks"]
    assert all(moved >= copied for copied, moved in recorder.before_commit), recorder.before_commit
    if pipeline and not delay:
        assert recorder.overlapped() >= data["details"]["blocks"] // 2, recorder.events[:40]
    else:
        assert recorder.overlapped() == 0
    assert engine_run(pandora_db, steps=MOVE)["changed"] is False


def _late_rows(pandora_db, every, limit):
    """A hook writing one row into the oldest range still on main at every ``every``-th block read.

    In the pipelined walk that range was read (and is being copied) but not deleted yet.
    """
    conn = OneConnection(pandora_db)
    state = {"reads": 0, "written": []}

    def hook(table, count, sql):
        if table != "tagente_datos" or sql != "history_move:locked":
            return
        state["reads"] += 1
        if state["reads"] % every or len(state["written"]) >= limit:
            return
        oldest = conn.scalar("SELECT MIN(utimestamp) FROM tagente_datos WHERE utimestamp < %s", (CUTOFF,))
        row = (900 + len(state["written"]), 0.5 + len(state["written"]), oldest)
        conn.query("INSERT INTO tagente_datos (id_agente_modulo, datos, utimestamp) VALUES (%s, %s, %s)", row)
        state["written"].append(row)
    return hook, state, conn


def test_rows_written_into_a_range_being_moved_are_moved_too(pandora_db, history_db):
    link(pandora_db, history_db, days=30, step=25)
    seed(pandora_db)
    original = original_of(pandora_db)
    hook, state, conn = _late_rows(pandora_db, every=5, limit=2)
    try:
        res = engine_run(pandora_db, steps=MOVE, statement_hook=hook)
    finally:
        conn.close()
    assert len(state["written"]) == 2
    for row in state["written"]:
        original["tagente_datos"][row] += 1
    assert_conserved(original, pandora_db, history_db, days=30)
    assert old_rows_left(pandora_db) == 0
    assert sum("changed on main while it was moved" in line for line in res["log"]) == 2, res["log"]


def test_rows_that_keep_changing_stop_the_run_and_lose_nothing(pandora_db, history_db):
    link(pandora_db, history_db, days=30, step=25)
    seed(pandora_db)
    original = original_of(pandora_db)
    hook, state, conn = _late_rows(pandora_db, every=2, limit=1000)
    try:
        with pytest.raises(OperationFailed) as err:
            engine_run(pandora_db, steps=MOVE, statement_hook=hook)
    finally:
        conn.close()
    assert "kept changing on the main database" in str(err.value)
    assert "tagente_datos" in str(err.value)
    assert len(state["written"]) > _history_move.MAX_RESTARTS
    for row in state["written"]:
        original["tagente_datos"][row] += 1
    # Nothing lost or doubled; the rerun finishes the move.
    res = engine_run(pandora_db, steps=MOVE)
    assert res["changed"] is True
    assert_conserved(original, pandora_db, history_db, days=30)
    assert old_rows_left(pandora_db) == 0
