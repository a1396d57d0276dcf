"""Settings of the move to the history database (reference 8.1): pure, no database."""

import pytest

from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConfigError
from ansible_collections.pandorafms.server.plugins.module_utils._history_move import (
    row_hash_sql, row_text_sql, resolve_move_settings)
from ansible_collections.pandorafms.server.plugins.module_utils._tconfig import TConfig


def tc(**values):
    return TConfig(dict((k, str(v)) for k, v in values.items()), {})


def test_disabled_unless_history_db_enabled():
    out = resolve_move_settings(tc(history_db_days=30), {})
    assert not out.enabled and out.skip_reason == "tconfig history_db_enabled is not 1"
    out = resolve_move_settings(tc(history_db_enabled=1), {})
    assert not out.enabled and out.skip_reason == "history_db_days is not defined"


def test_tables_and_days():
    out = resolve_move_settings(tc(history_db_enabled=1, history_db_days=30, history_db_step=500,
                                   history_db_delay="0.5", history_db_string_days=60), {})
    assert out.enabled and out.step == 500 and out.delay == 0.5
    # history_db_adv is 0: strings follow history_db_days; events and traps are off
    assert out.days == {"tagente_datos": (30, "tconfig"), "tagente_datos_string": (30, "tconfig")}
    out = resolve_move_settings(tc(history_db_enabled=1, history_db_days=30, history_db_adv=1,
                                   history_db_string_days=60, history_event_enabled=1, history_trap_enabled=1,
                                   history_trap_days=45), {"history_db_delay": 0})
    assert out.days == {"tagente_datos": (30, "tconfig"), "tagente_datos_string": (60, "tconfig"),
                        "tevento": (90, "default"), "ttrap": (45, "tconfig")}
    assert out.step == 1000 and out.delay == 0.0


def test_never_ahead_of_history_db_days():
    out = resolve_move_settings(tc(history_db_enabled=1, history_db_days=30, history_db_adv=1,
                                   history_db_string_days=7, history_event_enabled=1, history_event_days=10), {})
    assert out.days["tagente_datos_string"] == (30, "history_db_days")
    assert out.days["tevento"] == (30, "history_db_days")
    assert len(out.warnings) == 2 and "history_event_days (10) is lower than history_db_days (30)" in out.warnings[1]


def test_options_win_and_bad_values_name_the_key():
    out = resolve_move_settings(tc(history_db_enabled=1, history_db_days=30, history_db_step=100),
                                {"history_db_days": 40, "history_db_step": 10000})
    assert out.days["tagente_datos"] == (40, "option") and out.step == 10000
    with pytest.raises(ConfigError, match="tconfig token history_db_step"):
        resolve_move_settings(tc(history_db_enabled=1, history_db_days=30, history_db_step="many"), {})
    with pytest.raises(ConfigError, match="option history_db_delay"):
        resolve_move_settings(tc(history_db_enabled=1, history_db_days=30), {"history_db_delay": -1})
    with pytest.raises(ConfigError, match="history_db_step"):
        resolve_move_settings(tc(history_db_enabled=1, history_db_days=30), {"history_db_step": 10 ** 6})


def test_row_text_and_hash_cover_every_column():
    text = row_text_sql(["a", "b`c"])
    assert text == "CONCAT('(', QUOTE(`a`), ',', QUOTE(`b``c`), ')')"
    assert row_hash_sql(["a"]).count("QUOTE(`a`)") == 2
