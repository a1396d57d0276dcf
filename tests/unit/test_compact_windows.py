"""Pure parts of the compaction step: window arithmetic, thresholds, resume tokens, chunk sizing."""

import pytest

from ansible_collections.pandorafms.server.plugins.module_utils._compact import (
    MAX_CHUNK_WINDOWS, CompactSettings, chunk_span, compact_boundary, estimate_density, format_resume,
    parse_resume, token_mark, window_start)
from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConfigError
from ansible_collections.pandorafms.server.plugins.module_utils._tconfig import TConfig

DAY = 86400
HOUR = 3600
NOW = 1764001234


@pytest.mark.parametrize("ts,step,expected", [
    (0, HOUR, 0), (3599, HOUR, 0), (3600, HOUR, 3600), (3601, HOUR, 3600),
    (NOW, HOUR, 1764000000), (NOW, 2 * HOUR, 1764000000), (NOW, 24 * HOUR, 1763942400),
    (1764003599, HOUR, 1764000000),
])
def test_window_start_is_aligned_to_the_epoch(ts, step, expected):
    assert window_start(ts, step) == expected
    assert expected % step == 0 and expected <= ts < expected + step


def test_boundary_is_the_end_of_the_last_whole_window_older_than_days_compact():
    boundary = compact_boundary(NOW, 30, HOUR)
    assert boundary % HOUR == 0
    assert boundary <= NOW - 30 * DAY < boundary + HOUR
    assert compact_boundary(NOW, 30, 3 * HOUR) % (3 * HOUR) == 0


def test_boundary_does_not_move_within_a_window():
    """A rerun in the same hour finds the same boundary: nothing new to do."""
    first = compact_boundary(1764000000, 2, HOUR)
    assert all(compact_boundary(1764000000 + s, 2, HOUR) == first for s in (0, 1, 1800, 3599))
    assert compact_boundary(1764003600, 2, HOUR) == first + HOUR


@pytest.mark.parametrize("density,modules,target,expected", [
    (12.0, 1, 12000, 1000),                     # 5-minute data, hourly windows, one module
    (12.0, 1000, 12000, 1),                     # a page of 1000 such modules: one window at a time
    (12.0, 100, 12000, 10),
    (0.5, 10, 12000, 2400),                     # sparse modules: long stretches
    (1e-12, 1, 12000, MAX_CHUNK_WINDOWS),       # never more than the cap
    (1e9, 1, 12000, 1),                         # at least one window
])
def test_chunk_span(density, modules, target, expected):
    assert chunk_span(density, modules, target) == expected


def test_density_estimate():
    assert estimate_density(10, 100, 12000, 5.0) == 12.0
    assert estimate_density(10, 100, 0, 8.0) == 1.0          # nothing found: the next span is 8 times longer
    assert chunk_span(estimate_density(10, 100, 0, 12.0), 100, 12000) == 8 * chunk_span(12.0, 100, 12000)


def test_resume_token_round_trip_and_garbage():
    assert parse_resume(format_resume(1764000000, 40, 42, 1763990000)) == (1764000000, 40, 42, 1763990000)
    for garbage in (None, "", "12", "a:b:c:d", "1:2:3", "1:2:3:4:5", "10:5:6:11", "10:7:6:5"):
        assert parse_resume(garbage) is None


def test_token_mark_semantics():
    resume = (5000, 10, 20, 4000)              # pass towards 5000: ids <= 10 done, ids 11..20 at 4000
    assert token_mark(3, 1000, resume) == 5000
    assert token_mark(10, 1000, resume) == 5000
    assert token_mark(11, 1000, resume) == 4000
    assert token_mark(20, 1000, resume) == 4000
    assert token_mark(21, 1000, resume) == 1000
    assert token_mark(21, 1000, None) == 1000
    assert token_mark(3, 6000, resume) == 6000  # never below last_compact


def settings(tokens=None, options=None, prefix=""):
    return CompactSettings.resolve(NOW, TConfig(dict(tokens or {}), {}), options or {}, prefix=prefix)


def test_settings_from_tconfig():
    s = settings({"days_compact": "30", "step_compact": "2", "days_purge": "45"})
    assert s.skipped_reason is None
    assert s.step == 2 * HOUR and s.cutoff == NOW - 30 * DAY
    assert s.boundary == compact_boundary(NOW, 30, 2 * HOUR)


@pytest.mark.parametrize("tokens,needle", [
    ({}, "days_compact is 0"),
    ({"days_compact": "0", "step_compact": "0"}, "days_compact is 0"),
    ({"days_compact": "", "step_compact": "1"}, "days_compact is 0"),
    ({"days_compact": "45", "days_purge": "45", "step_compact": "1"}, "not lower than days_purge"),
    ({"days_compact": "90", "days_purge": "45", "step_compact": "0"}, "not lower than days_purge"),
])
def test_settings_skip_as_upstream(tokens, needle):
    assert needle in settings(tokens).skipped_reason


def test_no_purge_does_not_disable_compaction():
    assert settings({"days_compact": "30", "step_compact": "1"}).skipped_reason is None
    assert settings({"days_compact": "30", "step_compact": "1", "days_purge": "0"}).skipped_reason is None


@pytest.mark.parametrize("tokens", [
    {"days_compact": "30", "step_compact": "0"},
    {"days_compact": "30", "step_compact": "-3"},
    {"days_compact": "30"},
    {"days_compact": "30", "step_compact": "0.5"},
    {"days_compact": "30", "step_compact": "hourly"},
])
def test_bad_step_is_a_config_error_naming_the_key(tokens):
    with pytest.raises(ConfigError) as err:
        settings(tokens)
    assert "step_compact" in str(err.value)


def test_bad_days_compact_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        settings({"days_compact": "thirty", "step_compact": "1"})
    assert "days_compact" in str(err.value)
    with pytest.raises(ConfigError):
        settings({"days_compact": "-1", "step_compact": "1"})


def test_options_win_over_tconfig_and_history_uses_its_prefix():
    tokens = {"days_compact": "0", "step_compact": "0", "days_purge": "10"}
    s = settings(tokens, {"days_compact": 20, "step_compact": 3, "days_purge": 40})
    assert (s.days_compact, s.step_compact, s.days_purge, s.skipped_reason) == (20, 3, 40, None)
    # Options meant for the main database do not leak into the history one.
    h = settings({"days_compact": "60", "step_compact": "1", "days_purge": "365"},
                 {"days_compact": 0, "history_step_compact": 4}, prefix="history_")
    assert (h.days_compact, h.step_compact, h.skipped_reason) == (60, 4, None)
    with pytest.raises(ConfigError) as err:
        settings(tokens, {"days_compact": 20, "step_compact": 0, "days_purge": 40})
    assert "option step_compact" in str(err.value)
