"""_service.ServiceController against real processes: a stand-in init script, pandora_ha and server
(tests/harness/fake_pandora.py). The real daemon runs in the molecule scenario ``watchdog``."""

import os
import signal
import time

import pytest

from harness.collection import ensure_collection_link
from harness.fake_pandora import FakePandora

ensure_collection_link()

from ansible_collections.pandorafms.server.plugins.module_utils import _service  # noqa: E402
from ansible_collections.pandorafms.server.plugins.module_utils._errors import (  # noqa: E402
    ConfigError, OperationFailed)


@pytest.fixture
def fake(tmp_path):
    inst = FakePandora(tmp_path / "pandora")
    yield inst
    inst.kill_all()


def control(fake, state, check_mode=False, **extra):
    return _service.ServiceController(fake.service_settings(**extra)).control(state, check_mode=check_mode)


def verbs(result):
    return [c["verb"] for c in result["commands"]]


def test_started_is_idempotent_and_check_mode_changes_nothing(fake):
    planned = control(fake, "started", check_mode=True)
    assert planned["changed"] is True and verbs(planned) == ["start"]
    assert planned["commands"][0]["rc"] is None
    assert planned["after"]["server"]["running"] is True and planned["after"]["server"]["predicted"] is True
    assert fake.calls() == [] and fake.pids(fake.server) == [] and fake.pids(fake.ha) == []

    first = control(fake, "started")
    assert first["changed"] is True and verbs(first) == ["start"]
    assert first["before"]["server"]["running"] is False
    assert first["after"]["server"]["running"] and first["after"]["ha"]["running"]
    assert first["after"]["server"]["pid"] == fake.pids(fake.server)[0]
    assert first["after"]["ha"]["source"] == "pid_file"
    assert first["server_pid_changed"] is True and first["ha_systemd"] is None

    calls = fake.calls()
    second = control(fake, "started")
    again = control(fake, "started", check_mode=True)
    assert second["changed"] is False and second["commands"] == [] and again["changed"] is False
    assert second["after"]["server"]["pid"] == first["after"]["server"]["pid"]
    assert fake.calls() == calls


def test_restart_server_changes_only_the_server_pid(fake):
    up = control(fake, "started")
    result = control(fake, "restart-server")
    assert result["changed"] is True and verbs(result) == ["restart-server"]
    assert result["after"]["server"]["pid"] != up["after"]["server"]["pid"]
    assert result["after"]["ha"]["pid"] == up["after"]["ha"]["pid"]
    assert result["server_pid_changed"] is True


def test_restarted_changes_both_pids(fake):
    up = control(fake, "started")
    result = control(fake, "restarted")
    assert verbs(result) == ["restart"]
    assert result["after"]["server"]["pid"] != up["after"]["server"]["pid"]
    assert result["after"]["ha"]["pid"] != up["after"]["ha"]["pid"]
    assert result["after"]["ha"]["running"] and result["after"]["server"]["running"]


def test_stop_server_then_started_starts_only_the_server(fake):
    up = control(fake, "started")
    down = control(fake, "stop-server")
    assert verbs(down) == ["stop-server"] and not down["after"]["server"]["running"]
    assert down["after"]["ha"]["pid"] == up["after"]["ha"]["pid"]
    assert control(fake, "stop-server")["changed"] is False
    back = control(fake, "started")
    assert verbs(back) == ["start-server"] and back["after"]["server"]["running"]
    assert back["after"]["ha"]["pid"] == up["after"]["ha"]["pid"]


def test_stopped_stops_both_and_is_idempotent(fake):
    control(fake, "started")
    planned = control(fake, "stopped", check_mode=True)
    assert verbs(planned) == ["stop"] and fake.pids(fake.server)
    result = control(fake, "stopped")
    assert verbs(result) == ["stop"]
    assert not result["after"]["server"]["running"] and not result["after"]["ha"]["running"]
    assert fake.pids(fake.server) == [] and fake.pids(fake.ha) == []
    assert control(fake, "stopped")["changed"] is False


def _wait_dead(pid, timeout=10.0):
    """Until ``pid`` is gone or a zombie: a signal is delivered asynchronously, and a quick look may come first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open("/proc/%d/stat" % pid) as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except OSError:
            return
        time.sleep(0.02)
    raise AssertionError("process %d still alive %.0f s after SIGKILL" % (pid, timeout))


def test_server_without_ha(fake):
    """A server someone started alone: stopped uses stop-server, restarted brings HA in."""
    alone = control(fake, "start-server")
    assert verbs(alone) == ["start-server"] and not alone["after"]["ha"]["running"]
    restarted = control(fake, "restarted")
    assert verbs(restarted) == ["stop-server", "start"]
    assert restarted["after"]["server"]["pid"] != alone["after"]["server"]["pid"]
    assert restarted["after"]["ha"]["running"]
    fake_ha = restarted["after"]["ha"]["pid"]
    os.kill(fake_ha, signal.SIGKILL)  # HA gone, server left behind
    _wait_dead(fake_ha)
    stopped = control(fake, "stopped")
    assert verbs(stopped) == ["stop-server"]
    assert not stopped["after"]["server"]["running"]


def test_not_managing_ha_uses_server_verbs(fake):
    result = control(fake, "started", manage_ha=False)
    assert verbs(result) == ["start-server"] and result["ha_managed"] is False
    assert fake.pids(fake.ha) == []
    assert verbs(control(fake, "restarted", manage_ha=False)) == ["restart-server"]


def test_a_server_that_cannot_start_fails_with_its_log(fake):
    fake.set_mode("fail")
    with pytest.raises(OperationFailed) as info:
        control(fake, "start-server", timeout=1)
    msg = str(info.value)
    assert "state=start-server" in msg and "not running" in msg
    assert "cannot connect to the database" in msg  # the server log's last lines
    assert "Cannot start" in msg  # the init script's output


def test_a_server_pid_file_is_used_when_given(fake):
    result = control(fake, "started", server_pid_file=fake.server_pid_file)
    assert result["after"]["server"]["source"] == "pid_file"


def test_bad_paths_fail_in_check_mode_too(fake, tmp_path):
    for extra, words in (({"init_script": str(tmp_path / "nope")}, "init script"),
                         ({"server_daemon": str(tmp_path / "nope")}, "server program"),
                         ({"server_conf": str(tmp_path / "nope")}, "server configuration")):
        for check_mode in (True, False):
            with pytest.raises(ConfigError) as info:
                control(fake, "started", check_mode=check_mode, **extra)
            assert words in str(info.value)
    assert fake.calls() == []
    with pytest.raises(ConfigError):
        control(fake, "reloaded")
