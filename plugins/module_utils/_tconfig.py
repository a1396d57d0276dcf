# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pandora's ``tconfig`` table: ``token`` / ``value`` rows without a unique key.

Reading follows Pandora: when a token has several rows the first one (lowest
``id_config``) wins; duplicates are reported.  Writing leaves exactly one row.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.pandorafms.server.plugins.module_utils._errors import ConfigError


class TConfig(object):
    """A snapshot of one database's tconfig, read once."""

    def __init__(self, values, duplicates):
        self.values = values
        self.duplicates = duplicates

    @classmethod
    def load(cls, conn):
        values, duplicates = {}, {}
        with conn.cursor() as cur:
            cur.execute("SELECT token, value FROM tconfig ORDER BY id_config")
            for token, value in cur.fetchall():
                if token in values:
                    duplicates.setdefault(token, [values[token]]).append(value)
                else:
                    values[token] = value
        return cls(values, duplicates)

    def get(self, token, default=None):
        return self.values.get(token, default)

    def is_set(self, token):
        value = self.values.get(token)
        return value is not None and str(value).strip() != ""

    def get_number(self, token, default=None, minimum=None, allow_float=False):
        """A numeric token; unset or empty -> ``default``; garbage -> :class:`ConfigError`."""
        raw = self.values.get(token)
        if raw is None or str(raw).strip() == "":
            return default
        return parse_number(raw, "tconfig token %s" % token, minimum=minimum, allow_float=allow_float)

    def duplicate_warnings(self):
        return ["tconfig token %s has %d rows; Pandora uses the first (%r)" % (
            token, len(vals), vals[0]) for token, vals in sorted(self.duplicates.items())]


def parse_number(raw, what, minimum=None, allow_float=False):
    text = str(raw).strip()
    try:
        value = float(text) if allow_float else int(text)
    except ValueError:
        try:
            as_float = float(text)
        except ValueError:
            as_float = None
        if as_float is not None and not allow_float and as_float.is_integer():
            value = int(as_float)
        else:
            raise ConfigError("%s is %r, which is not a %s; set it to a number (0 disables the step)"
                              % (what, raw, "number" if allow_float else "whole number"))
    if minimum is not None and value < minimum:
        raise ConfigError("%s is %s; it must be %s or more" % (what, raw, minimum))
    return value


def read_token(conn, token):
    """Value of the first row of ``token`` (None when absent)."""
    with conn.cursor() as cur:
        cur.execute("SELECT value FROM tconfig WHERE token = %s ORDER BY id_config LIMIT 1", (token,))
        row = cur.fetchone()
    return row[0] if row else None


def token_rows(conn, token):
    with conn.cursor() as cur:
        cur.execute("SELECT value FROM tconfig WHERE token = %s ORDER BY id_config", (token,))
        return [row[0] for row in cur.fetchall()]


def plan_token(conn, token, value):
    """True when :func:`write_token` would change something."""
    rows = token_rows(conn, token)
    return rows != [str(value)]


def write_token(conn, token, value):
    """Make ``token`` hold exactly one row with ``value``; return True if anything changed.

    Runs in its own transaction so a reader never sees the token missing.
    """
    value = str(value)
    if not plan_token(conn, token, value):
        return False
    previous = conn.get_autocommit()
    conn.autocommit(False)
    try:
        with conn.cursor() as cur:
            cur.execute("DELETE FROM tconfig WHERE token = %s", (token,))
            cur.execute("INSERT INTO tconfig (token, value) VALUES (%s, %s)", (token, value))
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    finally:
        conn.autocommit(previous)
    return True
