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
