# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: health_markdown
short_description: The fleet health report as a Markdown table
version_added: 0.1.0
description:
  - Turns the results of M(pandorafms.server.pandora_db_info) on several hosts into one Markdown
    report - a table with one row per host (master, maintenance age, purge backlog, history lag,
    MR match, backup age, worst finding), the worst hosts first, then each host's findings.
  - Its sibling filter C(pandorafms.server.health_html) makes a self-contained HTML page of the
    same content with two charts per host (table sizes and backlog).
author:
  - pandorafms.server contributors (@pandorafms-server)
positional: _input
options:
  _input:
    description: A dictionary of host name to that host's registered M(pandorafms.server.pandora_db_info) result.
    type: dict
    required: true
'''

EXAMPLES = r'''
- name: Write the fleet report
  ansible.builtin.copy:
    content: "{{ fleet | pandorafms.server.health_markdown }}"
    dest: /var/tmp/pandora-health.md
    mode: "0644"
'''

RETURN = r'''
_value:
  description: The report.
  type: str
'''

from ansible.errors import AnsibleFilterError

from ansible_collections.pandorafms.server.plugins.module_utils._health_render import markdown, page


def _check(fleet):
    if not isinstance(fleet, dict):
        raise AnsibleFilterError("the health report filters take a dict of host name to pandora_db_info result,"
                                 " not %s" % type(fleet).__name__)
    return fleet


def health_markdown(fleet):
    return markdown(_check(fleet))


def health_html(fleet, title="Pandora FMS maintenance health"):
    return page(_check(fleet), title=title)


class FilterModule(object):
    def filters(self):
        return {"health_markdown": health_markdown, "health_html": health_html}
