# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The maintenance lock, compatible with pandora_db.pl.

pandora_db.pl takes ``GET_LOCK('<dbname>_pandora_db')`` on its connection and
keeps it until it disconnects.  Taking the same named lock on the same server
means this collection's maintenance and a stock pandora_db.pl from cron never
run at once.  The lock goes with the connection, also when a process is killed.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.pandorafms.server.plugins.module_utils._errors import LockBusy


def lock_name(dbname):
    return "%s_pandora_db" % dbname


def _holder(conn, name):
    with conn.cursor() as cur:
        cur.execute("SELECT IS_USED_LOCK(%s)", (name,))
        holder_id = cur.fetchone()[0]
        if not holder_id:
            return None
        cur.execute("SELECT user, host, command, time FROM information_schema.processlist WHERE id = %s",
                    (holder_id,))
        row = cur.fetchone()
    if not row:
        return "connection %s" % holder_id
    return "connection %s (%s@%s, connected %ss)" % (holder_id, row[0], row[1].split(":")[0], row[3])


class MaintenanceLock(object):
    """``with MaintenanceLock(conn, dbname, wait=0):`` holds the named lock."""

    def __init__(self, conn, dbname, wait=0, what="main"):
        self.conn = conn
        self.name = lock_name(dbname)
        self.wait = max(0, int(wait or 0))
        self.what = what
        self.held = False

    def acquire(self):
        with self.conn.cursor() as cur:
            cur.execute("SELECT GET_LOCK(%s, %s)", (self.name, self.wait))
            got = cur.fetchone()[0]
        if got != 1:
            holder = _holder(self.conn, self.name) or "another session"
            raise LockBusy(
                "another maintenance run holds the lock %s on the %s database (held by %s): "
                "pandora_db.pl from cron or another pandora_db_maintain is running. Wait for it to "
                "finish, or set lock_timeout to wait for it" % (self.name, self.what, holder),
                holder=holder)
        self.held = True
        return self

    def release(self):
        if self.held:
            try:
                with self.conn.cursor() as cur:
                    cur.execute("SELECT RELEASE_LOCK(%s)", (self.name,))
            finally:
                self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def is_free(conn, dbname):
    with conn.cursor() as cur:
        cur.execute("SELECT IS_FREE_LOCK(%s)", (lock_name(dbname),))
        return cur.fetchone()[0] == 1
