"""The history_db role's variables: argument specs, defaults and the module call agree.

Cheap checks (no containers, no server) of what a reader of ``ansible-doc -t role`` relies on:
every variable is prefixed, typed, documented and defaulted to the same value in
``meta/argument_specs.yml`` and ``defaults/main.yml``; secrets are ``no_log``; the module task
passes only options ``pandorafms.server.pandora_history_db`` knows, and where it passes a role
variable straight through, the role's default is the module's own.
"""

import os
import re

import pytest
import yaml

from ansible_collections.pandorafms.server.plugins.modules import pandora_history_db

ROLE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    "roles", "history_db")
TYPES = {"str": str, "int": int, "bool": bool, "list": list, "path": str}


def load(relative):
    with open(os.path.join(ROLE, relative)) as handle:
        return yaml.safe_load(handle)


SPEC = load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
DEFAULTS = load("defaults/main.yml")
TASKS = load("tasks/main.yml")


def module_task():
    tasks = [t for t in TASKS if "pandorafms.server.pandora_history_db" in t]
    assert len(tasks) == 1
    return tasks[0]["pandorafms.server.pandora_history_db"]


def test_every_default_is_specified_and_every_option_defaulted():
    assert sorted(set(DEFAULTS) - set(SPEC)) == []
    assert sorted(set(SPEC) - set(DEFAULTS)) == []


@pytest.mark.parametrize("name", sorted(SPEC))
def test_spec_and_default_agree(name):
    option = SPEC[name]
    assert name.startswith("history_db_")
    assert option.get("description"), name
    assert option["type"] in TYPES, name
    assert option.get("default") == DEFAULTS[name], name
    value = DEFAULTS[name]
    if value is not None and not (isinstance(value, str) and "{{" in value):
        assert isinstance(value, TYPES[option["type"]]), name
        if option["type"] == "int":
            assert not isinstance(value, bool), name
        if "choices" in option:
            assert value in option["choices"], name
    if option["type"] == "list":
        assert option.get("elements") == "str", name


@pytest.mark.parametrize("name", sorted(n for n in SPEC if re.search("password|_pass$", n)))
def test_secrets_are_no_log(name):
    assert SPEC[name].get("no_log") is True


def test_module_task_uses_known_options_and_the_module_defaults():
    spec = pandora_history_db.argument_spec()
    args = module_task()
    assert sorted(set(args) - set(spec)) == []
    straight = {}
    for option, value in args.items():
        match = re.fullmatch(r"\{\{ (history_db_\w+) \}\}", str(value))
        if match and match.group(1) in SPEC:
            straight[option] = match.group(1)
    # The options the role passes through unchanged: most of them.
    assert len(straight) >= 20
    for option, variable in sorted(straight.items()):
        module_default = spec[option].get("default")
        if module_default is not None:
            assert DEFAULTS[variable] == module_default, (variable, option)
