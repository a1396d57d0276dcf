# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine's exceptions.  Modules map each one to ``fail_json`` with its message.

Every message is meant for a Pandora FMS administrator: what failed, where, and
what to do.  No message ever carries a password.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class PandoraError(Exception):
    """Base class: ``str(exc)`` is the message shown to the user."""

    def __init__(self, msg, **details):
        super(PandoraError, self).__init__(msg)
        self.msg = msg
        self.details = details


class ConfigError(PandoraError):
    """A configuration value (option, file, tconfig token) is missing or invalid."""


class MissingDependency(PandoraError):
    """A Python library or client tool is not installed on the managed host."""


class ConnectionFailed(PandoraError):
    """The database server could not be reached or refused the login."""


class LockBusy(PandoraError):
    """Another maintenance run holds the named lock."""


class PreconditionFailed(PandoraError):
    """The database is not in a state that allows the operation (schema, archive, ...)."""


class OperationFailed(PandoraError):
    """A statement or an external tool failed while the operation was running."""


# What to do about the database errors a maintenance or a backup meets, by server error code.
_DB_HINTS = (
    ((1205, 1213), "Another session held the rows' locks too long (lock wait timeout or deadlock, retried a few"
                   " times); run again when the database is less busy, or lower batch_size"),
    ((1044, 1045, 1142, 1143, 1227), "The login lacks a privilege this needs; grant it SELECT, INSERT, UPDATE,"
                                     " DELETE, CREATE TEMPORARY TABLES and LOCK TABLES on the Pandora database"),
    ((2006, 2013, 2055), "The connection to the server was lost; check that the server is up (and its"
                         " max_allowed_packet, wait_timeout and error log), then run again"),
    ((1114, 1021), "The server ran out of space for a table; free disk space or raise the table's limit, then run"
                   " again"),
    ((1146, 1054), "The schema differs from the Pandora FMS schema this collection knows; check the schema version"
                   " (pandora_db_info reports it)"),
)


def database_error_hint(code):
    """A sentence saying what to do about server error ``code`` (None when there is nothing specific)."""
    for codes, hint in _DB_HINTS:
        if code in codes:
            return hint + "."
    if code is not None:
        return "See the database server's error log for the cause, fix it, then run again."
    return None
