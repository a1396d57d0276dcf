"""_watchdog.Watchdog with real processes (the stand-in installation of tests/harness/fake_pandora.py)
and short intervals: restart of a killed server, the alert with its context when the restart fails,
standby and re-alert, recovery, and the flap budget."""

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from harness.collection import REPO, ensure_collection_link
from harness.fake_pandora import FakePandora

ensure_collection_link()

from ansible_collections.pandorafms.server.plugins.module_utils import _service, _watchdog  # noqa: E402
from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConfigError  # noqa: E402

ALERT = """#!%s
# records its arguments and PANDORA_WATCHDOG_* environment, one JSON object per alert
import json, os, sys
ctx = {"argv": sys.argv[1:], "env": dict((k, v) for k, v in os.environ.items() if k.startswith("PANDORA_WATCHDOG_"))}
open(%r, "a").write(json.dumps(ctx) + "\\n")
print("sms sent")
"""


@pytest.fixture
def fake(tmp_path):
    inst = FakePandora(tmp_path / "pandora")
    yield inst
    inst.kill_all()


@pytest.fixture
def alert(tmp_path):
    record = tmp_path / "alerts.jsonl"
    path = tmp_path / "pandora_alert"
    path.write_text(ALERT % (sys.executable, str(record)))
    path.chmod(stat.S_IRWXU)

    def alerts():
        if not record.exists():
            return []
        return [json.loads(line) for line in record.read_text().splitlines()]
    return str(path), alerts


def make_dog(fake, alert_path, log, clock=None, **extra):
    values = dict(interval=0.2, restart_timeout=3, max_restarts=3, window=60, realert_interval=60,
                  alert_command=alert_path, alert_timeout=10, log_lines=5, hostname="pandora1",
                  service=fake.service_settings())
    values.update(extra)
    return _watchdog.Watchdog(_watchdog.WatchdogSettings(**values), log=log.append, clock=clock)


def server_pid(fake):
    return _service.find_process(fake.server, fake.conf)["pid"]


def kill(pid):
    """SIGKILL, then wait until /proc shows the process dead (delivery is asynchronous)."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 5
    while _service.is_alive(_service.process_info(pid)) and time.time() < deadline:
        time.sleep(0.01)


def test_a_killed_server_is_restarted(fake, alert):
    log = []
    dog = make_dog(fake, alert[0], log)
    _service.ServiceController(fake.service_settings()).control("started")
    assert dog.tick() == "ok"
    old = server_pid(fake)
    kill(old)
    assert dog.tick() == "restarted"
    new = server_pid(fake)
    assert new and new != old
    assert fake.calls()[-1] == "start-server"  # pandora_ha still ran: the server alone was started
    assert dog.tick() == "ok" and dog.failures == 1 and alert[1]() == []


def test_restart_fails_alert_with_context_standby_realert_recover(fake, alert):
    log = []
    dog = make_dog(fake, alert[0], log, realert_interval=0.5)
    fake.set_mode("fail")
    before = time.time()
    assert dog.tick() == "restart_failed"
    sent = alert[1]()
    assert len(sent) == 1
    argv, env = sent[0]["argv"], sent[0]["env"]
    assert argv[:2] == ["pandora1", "restart_failed"] and argv[3] == "1"
    assert "restart did not bring the server back" in argv[4]
    assert "cannot connect to the database" in argv[5]  # the server log's last lines
    assert env["PANDORA_WATCHDOG_HOST"] == "pandora1"
    assert env["PANDORA_WATCHDOG_REASON"] == "restart_failed"
    assert env["PANDORA_WATCHDOG_FAILURES"] == "1" and env["PANDORA_WATCHDOG_ALERTS"] == "1"
    assert abs(int(env["PANDORA_WATCHDOG_EPOCH"]) - before) < 30 and env["PANDORA_WATCHDOG_TIME"] == argv[2]
    assert env["PANDORA_WATCHDOG_LOG_FILE"] == fake.log
    assert "cannot connect to the database" in env["PANDORA_WATCHDOG_LOG_TAIL"]
    assert any("sms sent" in line for line in log)  # the alert's output is logged

    calls = len(fake.calls())
    assert dog.tick() == "standby"  # no restart while in standby
    assert len(fake.calls()) == calls and len(alert[1]()) == 1
    time.sleep(0.6)
    assert dog.tick() == "realert"
    assert [a["env"]["PANDORA_WATCHDOG_ALERTS"] for a in alert[1]()] == ["1", "2"]
    assert len(fake.calls()) == calls

    fake.set_mode("ok")
    _service.ServiceController(fake.service_settings()).control("started")
    assert dog.tick() == "standby"  # seen once: a daemon that dies right after it forked is not back
    assert dog.tick() == "recovered" and dog.standby is False
    kill(server_pid(fake))
    assert dog.tick() == "restarted"  # out of standby, restarts again


def test_flap_budget_stops_restarts(fake, alert):
    """A server that dies right after each start is restarted max_restarts times, then alerted on."""
    log = []
    dog = make_dog(fake, alert[0], log, max_restarts=2, window=60)
    fake.set_mode("die:1.5")
    events = []
    deadline = time.time() + 30
    while "flapping" not in events and time.time() < deadline:
        events.append(dog.tick())
        time.sleep(0.2)
    assert events.count("restarted") == 2, events
    assert events[-1] == "flapping"
    assert fake.calls().count("start-server") + fake.calls().count("start") <= 3
    sent = alert[1]()
    assert [a["argv"][1] for a in sent] == ["flapping"]
    assert sent[0]["env"]["PANDORA_WATCHDOG_RESTARTS"] == "2" and sent[0]["env"]["PANDORA_WATCHDOG_FAILURES"] == "3"
    calls = len(fake.calls())
    for dummy in range(3):
        time.sleep(0.2)
        assert dog.tick() == "standby"
    assert len(fake.calls()) == calls


def test_budget_window_forgets_old_restarts(fake, alert):
    log = []
    now = [1000.0]  # the watchdog's clock; the processes and their waits stay real
    dog = make_dog(fake, alert[0], log, clock=lambda: now[0], max_restarts=1, window=100)
    _service.ServiceController(fake.service_settings()).control("started")
    kill(server_pid(fake))
    assert dog.tick() == "restarted"
    now[0] += 101
    kill(server_pid(fake))
    assert dog.tick() == "restarted"  # the first restart is out of the window
    now[0] += 99
    kill(server_pid(fake))
    assert dog.tick() == "flapping"


def test_settings_are_validated():
    for bad in ({"interval": 0}, {"restart_state": "stopped"}, {"max_restarts": -1}, {"window": "x"},
                {"alert_command": "pandora_alert"}):
        with pytest.raises(ConfigError):
            _watchdog.WatchdogSettings(**bad)
    with pytest.raises(ConfigError) as info:
        _watchdog.WatchdogSettings.from_dict({"intervall": 3})
    assert "intervall" in str(info.value)


def test_cli_supervised_background_process(fake, alert, tmp_path):
    """The role's pandora-watchdog command: start in the background, restart a killed server,
    stop on purpose (the cron check then leaves it stopped), start again."""
    cli = os.path.join(REPO, "roles", "watchdog", "files", "pandora_watchdog_cli.py")
    settings = fake.service_settings()
    options = {
        "lib_dir": os.path.join(REPO, ".build", "collections"),
        "pid_file": str(tmp_path / "watchdog.pid"),
        "log_file": str(tmp_path / "watchdog.log"),
        "stopped_marker": str(tmp_path / "watchdog.stopped"),
        "watchdog": {"interval": 0.3, "restart_timeout": 5, "alert_command": alert[0], "hostname": "h",
                     "service": dict((k, getattr(settings, k)) for k in (
                         "server_conf", "init_script", "server_daemon", "ha_daemon", "ha_pid_file", "manager",
                         "poll", "settle"))},
    }
    config = tmp_path / "watchdog.json"
    config.write_text(json.dumps(options))

    def cli_run(*args):
        return subprocess.run([sys.executable, cli, "--config", str(config)] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                              timeout=60, check=False)

    assert cli_run("status").returncode == 3
    _service.ServiceController(settings).control("started")
    started = cli_run("start")
    assert started.returncode == 0 and "started (pid" in started.stdout, started.stdout
    try:
        assert "already running" in cli_run("start").stdout
        old = server_pid(fake)
        kill(old)
        deadline = time.time() + 15
        log_file = tmp_path / "watchdog.log"
        while time.time() < deadline and (server_pid(fake) in (None, old)
                                          or "the server runs again" not in log_file.read_text()):
            time.sleep(0.1)
        assert server_pid(fake) not in (None, old)
        text = log_file.read_text()
        assert "restarting it" in text and "the server runs again" in text
    finally:
        stopped = cli_run("stop")
    assert stopped.returncode == 0 and "stopped (pid" in stopped.stdout
    status = cli_run("status")
    assert status.returncode == 3 and "stopped on purpose" in status.stdout
    assert "stopped on purpose" in cli_run("ensure").stdout and cli_run("status").returncode == 3
    assert "started (pid" in cli_run("start").stdout and cli_run("status").returncode == 0
    assert cli_run("stop").returncode == 0
