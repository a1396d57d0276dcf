"""history_move under faults: SIGKILL of the mover, the history server killed, the main connection killed.

Each kind is injected at least 20 times at random points (a random protocol point of the move, or a random
moment, which lands inside statements too); after every fault the rows are all still somewhere, and after the
rerun to completion main and history together hold exactly the original rows, none on both sides, none younger
than the cutoff moved.  Each cycle moves the clock one day forward so there is new old data to move.
"""

import os
import random
import signal
import threading
import time

import pytest

from harness.history_move_seed import MOVED, OneConnection, assert_conserved, link, original_of, rows, seed
from harness.maint_seed import DAY, NOW, engine_run
from harness.mariadb import MariaDBServer

from ansible_collections.pandorafms.server.plugins.module_utils._errors import PandoraError

FAULTS = 20
STEP = 10
# Faults at a protocol point (the n-th statement of the run) always land; faults at a random moment may come
# after a fast run has ended.  With 29 cycles, these keep the 20 faults certain on a quiet or a busy machine.
POINT_SHARE = 0.8
KILL_AT_MAX = 12


def _seeded(main, history):
    link(main, history, days=30, step=STEP)
    seed(main, data=900, strings=90, events=90, traps=60, big_second=25)
    return original_of(main)


def _nothing_lost(original, main_db, history_db, now):
    with OneConnection(main_db) as main, OneConnection(history_db) as history:
        _check_nothing_lost(original, main, history, now)


def _check_nothing_lost(original, main, history, now):
    for table in MOVED:
        missing = original[table] - (rows(main, table) + rows(history, table))
        assert not missing, "%s: %d rows lost, e.g. %r" % (table, sum(missing.values()), list(missing)[:3])
    cutoff = now - 30 * DAY
    assert history.scalar("SELECT COUNT(*) FROM tagente_datos WHERE utimestamp >= %s", (cutoff,)) == 0


def _cycles(rng):
    """Clock values: one more day of old data per cycle."""
    return [NOW - 29 * DAY + i * DAY for i in range(29)]


def _complete(original, main, history, now, last=False):
    res = engine_run(main, steps=["history_move"], now=now)
    assert res["stopped_early"] is False
    with OneConnection(main) as m, OneConnection(history) as h:
        assert_conserved(original, m, h, days=30, now=now)
    if last:
        again = engine_run(main, steps=["history_move"], now=now)
        assert again["changed"] is False
    return res


def test_sigkill_of_the_mover(pandora_db, history_db):
    rng = random.Random(11)
    original = _seeded(pandora_db, history_db)
    faults = 0
    for now in _cycles(rng):
        if faults >= FAULTS:
            break
        # Mostly at a protocol point (always reached: a cycle runs dozens of statements), else at a random
        # moment early in the run (a quiet machine finishes a cycle in well under a second).
        by_point = rng.random() < POINT_SHARE
        kill_at = rng.randint(1, KILL_AT_MAX)
        pid = os.fork()
        if pid == 0:  # the mover: SIGKILLed at a protocol point, or by the parent at a random moment
            try:
                calls = [0]

                def hook(table, count, sql):
                    calls[0] += 1
                    if by_point and calls[0] == kill_at:
                        os.kill(os.getpid(), signal.SIGKILL)
                engine_run(pandora_db, steps=["history_move"], now=now, statement_hook=hook)
            finally:
                os._exit(0)
        if not by_point:
            time.sleep(rng.uniform(0.0, 0.05))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _unused, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            faults += 1
            _nothing_lost(original, pandora_db, history_db, now)
        _complete(original, pandora_db, history_db, now, last=faults >= FAULTS)
    assert faults >= FAULTS


@pytest.fixture
def own_history(tmp_path):
    """A history server of this test's own, so killing it disturbs no other test (gone with tmp_path)."""
    from conftest import Database
    from harness import schema
    server = MariaDBServer(basedir=str(tmp_path / "hist"), name="history-kill", buffer_pool="32M")
    server.start()
    try:
        schema.load_fixture(server, "pandora_history")
        yield server, Database(server, "pandora_history")
    finally:
        server.stop()


def test_history_server_killed_and_restarted(pandora_db, own_history):
    server, history = own_history
    rng = random.Random(12)
    original = _seeded(pandora_db, history)
    faults = 0
    for now in _cycles(rng):
        if faults >= FAULTS:
            break
        calls = [0]
        kill_at = rng.randint(1, 30)

        def hook(table, count, sql):
            calls[0] += 1
            if calls[0] == kill_at:
                os.kill(server.proc.pid, signal.SIGKILL)
                server.proc.wait(30)
        try:
            engine_run(pandora_db, steps=["history_move"], now=now, statement_hook=hook)
        except PandoraError:
            pass
        if calls[0] >= kill_at:
            faults += 1
            server.proc = None
            server.start()
            _nothing_lost(original, pandora_db, history, now)
        _complete(original, pandora_db, history, now, last=faults >= FAULTS)
    assert faults >= FAULTS


def test_main_connection_killed_mid_block(pandora_db, history_db):
    rng = random.Random(13)
    original = _seeded(pandora_db, history_db)
    admin = pandora_db.connect()

    def kill_movers():
        with admin.cursor() as cur:
            cur.execute("SELECT id FROM information_schema.PROCESSLIST WHERE db = %s AND id <> CONNECTION_ID()",
                        (pandora_db.name,))
            for (thread,) in cur.fetchall():
                try:
                    cur.execute("KILL %d" % thread)
                except Exception:
                    pass
    faults = 0
    try:
        for now in _cycles(rng):
            if faults >= FAULTS:
                break
            calls = [0]
            kill_at = rng.randint(1, KILL_AT_MAX)
            by_point = rng.random() < POINT_SHARE
            timer = None

            def hook(table, count, sql):
                calls[0] += 1
                if by_point and calls[0] == kill_at:
                    kill_movers()
            if not by_point:
                timer = threading.Timer(rng.uniform(0.0, 0.05), kill_movers)
                timer.start()
            failed = False
            try:
                engine_run(pandora_db, steps=["history_move"], now=now, statement_hook=hook)
            except PandoraError:
                failed = True
            if timer is not None:
                timer.join()
            if failed:
                faults += 1
                _nothing_lost(original, pandora_db, history_db, now)
            _complete(original, pandora_db, history_db, now, last=faults >= FAULTS)
    finally:
        admin.close()
    assert faults >= FAULTS
