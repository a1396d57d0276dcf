"""_service's process state from pid files and /proc, with real processes this test starts."""

import os
import signal
import subprocess
import sys
import time

import pytest

from harness.collection import ensure_collection_link

ensure_collection_link()

from ansible_collections.pandorafms.server.plugins.module_utils import _service  # noqa: E402

DAEMON = "import sys, time\nwhile True:\n    time.sleep(0.05)\n"


@pytest.fixture
def daemon(tmp_path):
    """A real process run as ``python3 <tmp>/bin/pandora_server <tmp>/pandora_server.conf -D``."""
    program = tmp_path / "pandora_server"
    program.write_text(DAEMON)
    conf = tmp_path / "pandora_server.conf"
    conf.write_text("servername t\n")
    procs = []

    def start(*argv, **kwargs):
        argv = list(argv) or [sys.executable, str(program), str(conf), "-D"]
        proc = subprocess.Popen(argv, **kwargs)
        procs.append(proc)
        deadline = time.time() + 5
        while time.time() < deadline:  # until exec is done and /proc shows the new argv
            info = _service.process_info(proc.pid)
            if info and info["argv"] == argv:
                break
            time.sleep(0.01)
        return proc

    yield start, str(program), str(conf), tmp_path
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_read_pid_file(tmp_path):
    path = tmp_path / "x.pid"
    assert _service.read_pid_file(str(path)) is None
    for text, want in (("1234\n", 1234), (" 77 ", 77), ("", None), ("abc", None), ("0", None), ("-5", None)):
        path.write_text(text)
        assert _service.read_pid_file(str(path)) == want, text


def test_found_in_proc_without_pid_file(daemon):
    start, program, conf, tmp = daemon
    proc = start()
    state = _service.find_process(program, conf, None)
    assert state["running"] is True
    assert state["pid"] == proc.pid and state["pids"] == [proc.pid]
    assert state["source"] == "proc"


def test_pid_file_trusted_only_when_it_names_the_daemon(daemon):
    start, program, conf, tmp = daemon
    proc = start()
    pid_file = tmp / "server.pid"
    pid_file.write_text("%d\n" % proc.pid)
    state = _service.find_process(program, conf, str(pid_file))
    assert (state["running"], state["pid"], state["source"], state["stale_pid_file"]) == (
        True, proc.pid, "pid_file", False)
    # A pid file naming a live process that is not the daemon (this test) is stale: /proc decides.
    pid_file.write_text("%d\n" % os.getpid())
    state = _service.find_process(program, conf, str(pid_file))
    assert (state["running"], state["pid"], state["source"], state["stale_pid_file"]) == (
        True, proc.pid, "proc", True)


def test_zombie_is_not_running(daemon):
    """A killed daemon nobody has reaped still has /proc/<pid> (and kill -0 succeeds): it is dead."""
    start, program, conf, tmp = daemon
    proc = start()
    pid_file = tmp / "server.pid"
    pid_file.write_text("%d\n" % proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    deadline = time.time() + 5
    while _service.process_info(proc.pid)["state"] != "Z" and time.time() < deadline:
        time.sleep(0.01)
    assert os.path.isdir("/proc/%d" % proc.pid)
    os.kill(proc.pid, 0)  # what a "kill -0" liveness check would believe
    state = _service.find_process(program, conf, str(pid_file))
    assert state["running"] is False and state["pid"] is None
    assert state["stale_pid_file"] is True


def test_unrelated_processes_that_grep_would_match_are_ignored(daemon):
    start, program, conf, tmp = daemon
    # argv holds both strings, as "grep pandora_server pandora_server.conf" or an editor would.
    start(sys.executable, "-c", "import time; time.sleep(30)", program, conf)
    # The program with another configuration (a secondary server) is not this server either.
    other = tmp / "other.conf"
    other.write_text("servername other\n")
    start(sys.executable, program, str(other), "-D")
    assert _service.find_process(program, conf)["running"] is False
    assert _service.find_process(program, str(other))["running"] is True


def test_main_pid_is_the_parent_of_matching_children(daemon):
    start, program, conf, tmp = daemon
    script = tmp / "forker"
    script.write_text("import os, sys, time\nif os.fork() == 0:\n    time.sleep(30)\nelse:\n    time.sleep(30)\n")
    parent = start(sys.executable, str(script), conf)
    deadline = time.time() + 5
    while len(_service.find_process(str(script), conf)["pids"]) < 2 and time.time() < deadline:
        time.sleep(0.01)
    state = _service.find_process(str(script), conf)
    assert len(state["pids"]) == 2
    assert state["pid"] == parent.pid
    for pid in state["pids"]:
        if pid != parent.pid:
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("argv,want", [
    (["/usr/bin/perl", "/usr/bin/pandora_server", "/etc/pandora/pandora_server.conf", "-D"], True),
    (["/usr/bin/pandora_server", "/etc/pandora/pandora_server.conf"], True),
    (["grep", "/usr/bin/pandora_server /etc/pandora/pandora_server.conf"], False),
    (["/usr/bin/perl", "/usr/bin/pandora_server", "/etc/pandora/conf.d/second.conf", "-D"], False),
    (["/usr/bin/perl", "/usr/bin/pandora_server /etc/pandora/pandora_server.conf -D"], False),
    ([], False),
])
def test_argv_matches(argv, want):
    assert _service.argv_matches(argv, "/usr/bin/pandora_server", "/etc/pandora/pandora_server.conf") is want


def test_tail_lines(tmp_path):
    path = tmp_path / "log"
    path.write_text("".join("line %d\n" % i for i in range(1000)))
    assert _service.tail_lines(str(path), 3) == ["line 997", "line 998", "line 999"]
    assert _service.tail_lines(str(path), 3, limit=20) == ["line 998", "line 999"]
    assert _service.tail_lines(str(tmp_path / "missing"), 3) == []


def test_a_session_leader_is_the_daemon(daemon):
    """The foreground process of ``pandora_server -D`` has the daemon's argv but does not lead its
    session; the daemon that forked and called setsid does, and it is the one reported."""
    start, program, conf, tmp = daemon
    foreground = start()
    state = _service.find_process(program, conf)
    assert state["pid"] == foreground.pid and state["daemonized"] is False
    leader = start(sys.executable, program, conf, "-D", start_new_session=True)
    state = _service.find_process(program, conf)
    assert state["pids"] == [foreground.pid, leader.pid]
    assert state["pid"] == leader.pid and state["daemonized"] is True
