# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module shares: the connection options and the error mapping.

This file holds plain data and functions that take an ``AnsibleModule``-like
object; the engine files never import it.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import traceback

from ansible_collections.pandorafms.server.plugins.module_utils._connection import resolve_settings
from ansible_collections.pandorafms.server.plugins.module_utils._errors import PandoraError
from ansible_collections.pandorafms.server.plugins.module_utils._serverconf import (
    read_console_config, read_server_conf, server_conf_connection)


def connection_argument_spec():
    """The options documented by the ``pandorafms.server.connection`` doc fragment."""
    return dict(
        login_host=dict(type="str"),
        login_port=dict(type="int"),
        login_user=dict(type="str"),
        login_password=dict(type="str", no_log=True),
        login_unix_socket=dict(type="str"),
        login_db=dict(type="str"),
        config_file=dict(type="path", default="~/.my.cnf"),
        ca_cert=dict(type="path", aliases=["ssl_ca"]),
        client_cert=dict(type="path", aliases=["ssl_cert"]),
        client_key=dict(type="path", aliases=["ssl_key"]),
        check_hostname=dict(type="bool"),
        connect_timeout=dict(type="int", default=30),
        pandora_server_conf=dict(type="path"),
        ha_hosts_file=dict(type="path"),
    )


def settings_from_params(params, console_path=None):
    """Build ``(ConnectionSettings, server_conf_values)`` from module params."""
    server_values = None
    pandora_conf = None
    if params.get("pandora_server_conf"):
        server_values = read_server_conf(params["pandora_server_conf"], params.get("ha_hosts_file"))
        pandora_conf = server_conf_connection(server_values)
    console_conf = read_console_config(console_path) if console_path else None
    explicit = {
        "host": params.get("login_host"),
        "port": params.get("login_port"),
        "user": params.get("login_user"),
        "password": params.get("login_password"),
        "unix_socket": params.get("login_unix_socket"),
        "database": params.get("login_db"),
        "ca_cert": params.get("ca_cert"),
        "client_cert": params.get("client_cert"),
        "client_key": params.get("client_key"),
        "check_hostname": params.get("check_hostname"),
        "connect_timeout": params.get("connect_timeout"),
    }
    settings = resolve_settings(explicit, params.get("config_file"), pandora_conf, console_conf)
    return settings, server_values


def fail_from_error(module, exc, settings=None, **result):
    """``fail_json`` for an engine error, with any password masked."""
    msg = str(exc)
    if settings is not None:
        msg = settings.redact(msg)
    for secret in _secrets(module):
        msg = msg.replace(secret, "********")
    if isinstance(exc, PandoraError):
        module.fail_json(msg=msg, **result)
    module.fail_json(msg="unexpected error: %s" % msg, exception=_masked_traceback(module, settings),
                     **result)


def _secrets(module):
    return [v for k, v in module.params.items() if isinstance(v, str) and v and k.endswith("password")]


def _masked_traceback(module, settings):
    text = traceback.format_exc()
    for secret in _secrets(module) + ([settings.password] if settings and settings.password else []):
        text = text.replace(secret, "********")
    return text


# Tests only: the epoch seconds a run treats as now (an environment variable, not an option, so it is not
# part of any module's public interface).
NOW_VARIABLE = "PANDORAFMS_SERVER_TEST_NOW"


def test_now(module):
    """The epoch seconds of ``PANDORAFMS_SERVER_TEST_NOW``, or None; a bad value fails the module by name."""
    raw = os.environ.get(NOW_VARIABLE)
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        module.fail_json(msg="the environment variable %s is %r, not epoch seconds" % (NOW_VARIABLE, raw))
