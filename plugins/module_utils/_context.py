# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What one maintenance run carries from step to step, and what each step returns.

Every step has the same two entry points:

* ``plan(ctx)`` computes what it would do (counts) and changes nothing;
* ``run(ctx)`` does it.

Both return a list of :class:`StepResult`.  Check mode calls ``plan`` only, so
its predictions come from the same code as the real run.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible_collections.pandorafms.server.plugins.module_utils._errors import PandoraError

DAY = 86400


class OutOfTime(PandoraError):
    """Raised between batches when ``max_runtime`` is used up; the runner stops cleanly."""


class StepResult(object):
    """The outcome of one step on one table (a step may return several)."""

    FIELDS = ("name", "table", "rows", "seconds", "threshold", "skipped_reason", "database", "details")

    def __init__(self, name, table=None, rows=0, seconds=0.0, threshold=None, skipped_reason=None,
                 database="main", details=None):
        self.name = name
        self.table = table
        self.rows = rows
        self.seconds = seconds
        self.threshold = threshold
        self.skipped_reason = skipped_reason
        self.database = database
        self.details = details or {}

    @property
    def changed(self):
        return bool(self.rows) and not self.skipped_reason

    def as_dict(self):
        out = dict((field, getattr(self, field)) for field in self.FIELDS)
        out["seconds"] = round(self.seconds, 3)
        return out

    def __repr__(self):
        return "StepResult(%r)" % self.as_dict()


class RunLog(object):
    """Upstream-format run log: ``HH:MM:SS [SOURCE] message`` lines.

    Lines go to an optional file (flushed at once, so ``tail -f`` shows
    progress) and are kept in memory for the module's result.
    """

    def __init__(self, path=None, clock=time.localtime, keep=2000):
        self.path = path
        self.clock = clock
        self.lines = []
        self.keep = keep
        self._handle = open(path, "a") if path else None

    def raw(self, text):
        if len(self.lines) < self.keep:
            self.lines.append(text)
        if self._handle:
            self._handle.write(text + "\n")
            self._handle.flush()

    def __call__(self, source, message):
        self.raw("%s [%s] %s" % (time.strftime("%H:%M:%S", self.clock()), source, message))

    def close(self):
        if self._handle:
            self._handle.close()
            self._handle = None


class Context(object):
    """One maintenance run: connections, thresholds, limits, logging.

    ``conn`` / ``history_conn`` are PyMySQL connections in autocommit mode;
    ``tconfig`` / ``history_tconfig`` are :class:`TConfig` snapshots;
    ``options`` holds the module's threshold overrides (``None`` = not given).
    """

    def __init__(self, conn, tconfig, now=None, check_mode=False, options=None, history_conn=None,
                 history_tconfig=None, batch_size=None, batch_sleep=0.0, max_runtime=None, log=None,
                 server=None, servername=None, incomingdir=None, dbname=None):
        self.conn = conn
        self.tconfig = tconfig
        self.history_conn = history_conn
        self.history_tconfig = history_tconfig
        self.now = int(now if now is not None else time.time())
        self.check_mode = check_mode
        self.options = dict(options or {})
        self.batch_size = batch_size
        self.batch_sleep = batch_sleep or 0.0
        self.started = time.monotonic()
        self.deadline = self.started + max_runtime if max_runtime else None
        self.log = log or RunLog()
        self.server = server
        self.servername = servername
        self.incomingdir = incomingdir
        self.dbname = dbname
        self.warnings = []
        self.stopped_early = False

    def time_left(self):
        if self.deadline is None:
            return None
        return self.deadline - time.monotonic()

    def check_time(self):
        """Call between batches: raises :class:`OutOfTime` when ``max_runtime`` is used up."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.stopped_early = True
            raise OutOfTime("max_runtime reached")

    def pause(self):
        if self.batch_sleep:
            time.sleep(self.batch_sleep)

    def warn(self, text):
        self.warnings.append(text)
