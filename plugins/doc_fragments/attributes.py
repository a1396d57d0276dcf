# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # The attribute this collection documents on top of ansible.builtin.action_common_attributes.
    DOCUMENTATION = r'''
options: {}
attributes:
  idempotent:
    description:
      - Whether a second run with the same options, on a database and file system that nothing else
        changed in between, reports no change and changes nothing.
'''
