"""Pure parts of _partitions: the UTC calendar, names, plans, the table comment, option validation."""

import pytest

from ansible_collections.pandorafms.server.plugins.module_utils import _partitions as P
from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConfigError

NOW = 1790000000  # 2026-09-21 14:13:20 UTC, a Monday
DAY = 86400


@pytest.mark.parametrize("interval, start, following", [
    ("day", "p20260921", 1790035200),
    ("week", "p20260921", 1790553600),
    ("month", "p20260901", 1790812800),
])
def test_period_start_and_next(interval, start, following):
    begin = P.period_start(NOW, interval)
    assert P.partition_name(begin) == start and P.next_start(begin, interval) == following
    assert P.name_start(start) == begin


def test_month_boundaries_and_weeks_start_on_monday():
    dec = P.period_start(1796083200 + 5 * DAY, "month")  # 2026-12-06
    assert P.partition_name(dec) == "p20261201" and P.partition_name(P.next_start(dec, "month")) == "p20270101"
    assert P.partition_name(P.period_start(NOW + 6 * DAY, "week")) == "p20260921"  # Sunday the 27th
    assert P.partition_name(P.period_start(NOW + 7 * DAY, "week")) == "p20260928"


def test_ahead_plan_covers_the_horizon_and_starts_after_the_last_bound():
    plan = P.ahead_plan(None, NOW, "day", 3)
    assert [n for n, _u in plan] == ["p20260921", "p20260922", "p20260923", "p20260924"]
    assert plan[-1][1] > NOW + 3 * DAY
    assert P.ahead_plan(plan[-1][1], NOW, "day", 3) == []  # nothing more is due
    assert [n for n, _u in P.ahead_plan(plan[1][1], NOW, "day", 3)] == ["p20260923", "p20260924"]


def test_initial_partitions_and_clause():
    dated = P.initial_partitions(NOW - 2 * DAY, NOW, "day", 1)
    assert [n for n, _u in dated] == ["p20260919", "p20260920", "p20260921", "p20260922"]
    assert P.initial_partitions(None, NOW, "day", 1)[0][0] == "p20260921"
    assert P.initial_partitions(0, NOW, "day", 1)[0][0] == "p20260921"  # undated rows do not stretch the layout
    clause = P.partition_clause(dated[:1])
    assert clause.startswith("PARTITION BY RANGE (`utimestamp`) (PARTITION `p_undated` VALUES LESS THAN (1), ")
    assert clause.endswith("PARTITION `p_future` VALUES LESS THAN MAXVALUE)")


def test_comment_round_trip_and_foreign_comments():
    assert P.parse_comment(P.make_comment("week", 10)) == ("week", 10)
    assert P.parse_comment("") is None and P.parse_comment("some admin note") is None


def test_droppable_only_whole_ranges_older_than_the_cutoff():
    parts = [P.Partition(P.UNDATED, 1), P.Partition("p20260919", 1789862400), P.Partition("p20260920", 1789948800),
             P.Partition(P.CATCHALL, None)]
    layout = P.Layout("tagente_datos", True, parts, "RANGE", "`utimestamp`")
    assert layout.managed
    assert [p.name for p in P.droppable(layout, 1789948800)] == ["p20260919", "p20260920"]
    assert [p.name for p in P.droppable(layout, 1789948799)] == ["p20260919"]
    assert P.droppable(layout, 1789862399) == []
    assert not P.Layout("t", True, parts[1:], "RANGE", "utimestamp").managed  # no p_undated


@pytest.mark.parametrize("kwargs, text", [
    (dict(interval="hour", days_ahead=7), "option interval"),
    (dict(interval="day", days_ahead=0), "option days_ahead is 0"),
    (dict(interval="day", days_ahead=7, chunk_rows=5), "option chunk_rows is 5"),
    (dict(interval="day", days_ahead=7, lock_wait=0), "option lock_wait"),
])
def test_validation_names_the_option(kwargs, text):
    with pytest.raises(ConfigError) as err:
        P.validate_options(**kwargs)
    assert text in str(err.value)
