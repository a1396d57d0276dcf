"""The test harness never leaves a mariadbd behind, even when the process that started it is killed.

A pytest run stopped by SIGKILL (a CI timeout, a user's kill -9) skips fixture teardown; the
servers it started must still go, or they keep their ports, datadirs and memory on the machine.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

STARTER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, %r)
    from harness.mariadb import MariaDBServer
    server = MariaDBServer(basedir=sys.argv[1], name="orphan-check")
    server.start()
    print(server.proc.pid, flush=True)
    time.sleep(600)
""") % TESTS


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_server_stops_when_its_starter_is_killed(tmp_path):
    starter = subprocess.Popen([sys.executable, "-c", STARTER, str(tmp_path / "server")],
                               stdout=subprocess.PIPE, text=True)
    pid = None
    try:
        line = starter.stdout.readline()
        assert line.strip().isdigit(), "the starter did not report a server pid: %r" % line
        pid = int(line)
        assert _alive(pid)
        starter.send_signal(signal.SIGKILL)
        starter.wait(10)
        deadline = time.time() + 60
        while _alive(pid) and time.time() < deadline:
            time.sleep(0.2)
        assert not _alive(pid), "mariadbd %d survived the SIGKILL of the process that started it" % pid
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait(10)
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)
