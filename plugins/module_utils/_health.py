# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Is maintenance keeping up? The health report of one Pandora FMS host.

Upstream's signals are scattered (a red dot on the console after 12 h, a server event after 24 h,
a console notice after 48 h whose history check reads the main database's age) and say nothing
about a purge backlog, a lagging history move, a cron file ``run-parts`` skips or an old backup.
This file gathers them into one report with a list of *findings*, each with a severity
(``ok``, ``warning``, ``critical``), a one-line reason and what to do.

Everything here only reads.  Counts use index range scans (``utimestamp`` and ``data_index1``),
each bounded in time (``max_statement_time``); a count that runs out of time is reported as an
estimate from the optimizer, never by scanning a table.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import glob
import grp
import os
import pwd
import re
import stat
import subprocess
import time

from ansible_collections.pandorafms.server.plugins.module_utils._compact import EXCLUDED_TYPES as COMPACT_EXCLUDED_TYPES
from ansible_collections.pandorafms.server.plugins.module_utils._connection import (
    column_exists, existing_tables, pymysql, server_info)
from ansible_collections.pandorafms.server.plugins.module_utils._lock import lock_name
from ansible_collections.pandorafms.server.plugins.module_utils._purge import (
    THRESHOLDS, PurgeRule, purge_steps, resolve_threshold)
from ansible_collections.pandorafms.server.plugins.module_utils._tconfig import TConfig, parse_number

DAY = 86400
HOUR = 3600
SEVERITIES = ("ok", "warning", "critical")
BIG_TABLES = ("tagente_datos", "tagente_datos_string", "tagente_datos_inc", "tevento", "ttrap", "tsesion",
              "tagente_estado", "tagente_modulo")
STOCK_TOOLS = ("pandora_db.pl", "pandora_db")
RUN_PARTS_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
VERSION_RE = re.compile(r"(\d+\.\d+NG(?:\.\d+)*)")
BUILD_RE = re.compile(r"Build\s*:?\s*(\d+)", re.I)


class Thresholds(object):
    """When a signal becomes a warning or critical (hours, days, rows)."""

    def __init__(self, maintenance_warning_hours=12, maintenance_critical_hours=24, maintenance_notice_hours=48,
                 backlog_warning_days=1, backlog_critical_days=7, lag_warning_days=1, lag_critical_days=7,
                 backup_max_age_hours=26, lock_warning_hours=4):
        self.maintenance_warning_hours = maintenance_warning_hours
        self.maintenance_critical_hours = maintenance_critical_hours
        self.maintenance_notice_hours = maintenance_notice_hours
        self.backlog_warning_days = backlog_warning_days
        self.backlog_critical_days = backlog_critical_days
        self.lag_warning_days = lag_warning_days
        self.lag_critical_days = lag_critical_days
        self.backup_max_age_hours = backup_max_age_hours
        self.lock_warning_hours = lock_warning_hours

    @classmethod
    def from_dict(cls, values):
        out = cls()
        for key, value in (values or {}).items():
            if not hasattr(out, key):
                raise ValueError("unknown threshold %r; known: %s" % (key, ", ".join(sorted(vars(out)))))
            number = parse_number(value, "thresholds.%s" % key, minimum=0, allow_float=True)
            setattr(out, key, number)
        if out.maintenance_warning_hours > out.maintenance_critical_hours:
            raise ValueError("thresholds.maintenance_warning_hours (%s) is above maintenance_critical_hours (%s)"
                             % (out.maintenance_warning_hours, out.maintenance_critical_hours))
        return out

    def as_dict(self):
        return dict(vars(self))


class Findings(object):
    def __init__(self):
        self.items = []

    def add(self, severity, check, reason, action=""):
        if severity not in SEVERITIES:
            raise ValueError("unknown severity %r" % severity)
        self.items.append({"severity": severity, "check": check, "reason": reason, "action": action})

    def worst(self):
        worst = "ok"
        for item in self.items:
            if SEVERITIES.index(item["severity"]) > SEVERITIES.index(worst):
                worst = item["severity"]
        return worst


def _hours(seconds):
    return None if seconds is None else round(seconds / 3600.0, 2)


class Reader(object):
    """Read-only queries, each bounded in time."""

    def __init__(self, conn, statement_seconds=1.0):
        self.conn = conn
        self.statement_seconds = statement_seconds
        self.mariadb = server_info(conn).is_mariadb

    def rows(self, sql, args=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def one(self, sql, args=None):
        rows = self.rows(sql, args)
        return rows[0] if rows else None

    def bounded_count(self, sql, args, explain_sql=None):
        """``(count, exact)``: the count, or the optimizer's estimate when it takes too long."""
        if self.mariadb:
            bounded = "SET STATEMENT max_statement_time=%s FOR %s" % (float(self.statement_seconds), sql)
        else:
            bounded = sql.replace("SELECT", "SELECT /*+ MAX_EXECUTION_TIME(%d) */" % int(self.statement_seconds * 1000),
                                  1)
        try:
            return int(self.one(bounded, args)[0] or 0), True
        except pymysql.err.MySQLError as exc:
            code = exc.args[0] if exc.args else None
            if code not in (1969, 3024):     # statement time exceeded (MariaDB, MySQL)
                raise
        with self.conn.cursor() as cur:
            cur.execute("EXPLAIN " + (explain_sql or sql), args)
            names = [d[0].lower() for d in cur.description]
            estimate = 0
            for row in cur.fetchall():
                estimate = max(estimate, int(dict(zip(names, row)).get("rows") or 0))
        return estimate, False


def _index_on(reader, table, column):
    """Whether ``table`` has an index whose first column is ``column``."""
    row = reader.one("SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE()"
                     " AND table_name = %s AND column_name = %s AND seq_in_index = 1", (table, column.strip("`")))
    return bool(row and row[0])


def _number(tconfig, token):
    raw = tconfig.get(token)
    if raw is None or str(raw).strip() == "":
        return None
    try:
        return float(str(raw).strip())
    except ValueError:
        return None


# -- the database side ------------------------------------------------------------------------------
def database_report(conn, database, now, role="main", servername=None, statement_seconds=1.0):
    """Everything about one database (main or history) that tells whether maintenance keeps up."""
    reader = Reader(conn, statement_seconds)
    tables = existing_tables(conn)
    report = {"role": role, "database": database, "server": server_info(conn).as_dict()}
    if "tconfig" not in tables:
        report["error"] = "no tconfig table: not a Pandora FMS database"
        return report, None
    tconfig = TConfig.load(conn)
    last = _number(tconfig, "db_maintance")
    report["maintenance"] = {"last_run": int(last) if last else None,
                             "age_hours": _hours(now - last) if last else None}
    report["schema"] = {"MR": tconfig.get("MR"), "db_scheme_version": tconfig.get("db_scheme_version"),
                        "db_scheme_build": tconfig.get("db_scheme_build")}
    report["tables"] = _table_sizes(reader)
    report["layout"] = _layouts(reader, [t for t in ("tagente_datos", "tagente_datos_string") if t in tables])
    if "tagente_datos" in tables:
        row = reader.one("SELECT MIN(utimestamp), MAX(utimestamp) FROM tagente_datos WHERE utimestamp > 0")
        report["tagente_datos_span"] = {"oldest": int(row[0]) if row and row[0] else None,
                                        "newest": int(row[1]) if row and row[1] else None}
    report["backlog"] = _purge_backlog(reader, tconfig, tables, now, role)
    report["compaction_backlog"] = _compaction_backlog(reader, tconfig, tables, now, role)
    report["lock"] = _lock(reader, database)
    if role == "main" and "tserver" in tables:
        report["master"] = _master(reader, servername)
    return report, tconfig


def _table_sizes(reader):
    out = {}
    for name, rows, data, index in reader.rows(
            "SELECT table_name, table_rows, data_length, index_length FROM information_schema.tables"
            " WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'"):
        if name in BIG_TABLES:
            out[name] = {"estimated_rows": int(rows or 0), "data_bytes": int(data or 0),
                         "index_bytes": int(index or 0)}
    return out


def _layouts(reader, names):
    out = {}
    for name in names:
        parts = reader.rows(
            "SELECT partition_name, partition_description, table_rows, data_length + index_length"
            " FROM information_schema.partitions WHERE table_schema = DATABASE() AND table_name = %s"
            " AND partition_name IS NOT NULL ORDER BY partition_ordinal_position", (name,))
        if not parts:
            out[name] = {"partitioned": False}
            continue
        bounds = [p[1] for p in parts if p[1] and p[1].upper() != "MAXVALUE"]
        out[name] = {"partitioned": True, "partitions": len(parts),
                     "first": parts[0][0], "last": parts[-1][0],
                     "span": [int(bounds[0]), int(bounds[-1])] if bounds and all(b.isdigit() for b in bounds)
                     else None,
                     "catch_all_rows": int(parts[-1][2] or 0) if str(parts[-1][1]).upper() == "MAXVALUE" else None}
    return out


def _cutoff_sql(reader, rule, cutoff):
    if rule.kind == "epoch":
        return cutoff
    return reader.one("SELECT FROM_UNIXTIME(%s)", (max(0, int(cutoff)),))[0]


def _purge_backlog(reader, tconfig, tables, now, role):
    """Rows older than each purge threshold that are still there (tables with an index on the column)."""
    out = {}
    specs = dict((spec.key, spec) for spec in THRESHOLDS)
    for step in purge_steps():
        if not isinstance(step, PurgeRule) or step.key is None or step.table not in tables:
            continue
        key = step.key if role == "main" else "history_" + step.key
        spec = specs.get(key)
        if spec is None:
            continue
        try:
            threshold = resolve_threshold(spec, tconfig, {})
        except Exception:   # a broken token is the maintenance's own error to report
            continue
        if not threshold.active:
            continue
        column = step.column.strip("`")
        cutoff = now - threshold.value * DAY
        entry = {"threshold_token": spec.token, "threshold_days": threshold.value, "cutoff": int(cutoff)}
        if not _index_on(reader, step.table, column):
            entry.update(rows=None, exact=False, note="no index on %s: not counted (it would scan the table)"
                         % column)
        else:
            sql = "SELECT COUNT(*) FROM `%s` WHERE `%s` < %%s" % (step.table, column)
            rows, exact = reader.bounded_count(sql, (_cutoff_sql(reader, step, cutoff),))
            entry.update(rows=rows, exact=exact)
            if rows:
                oldest = reader.one("SELECT MIN(`%s`) FROM `%s`" % (column, step.table))[0]
                if step.kind != "epoch" and oldest is not None:
                    oldest = reader.one("SELECT UNIX_TIMESTAMP(%s)", (oldest,))[0]
                entry["oldest"] = int(oldest) if oldest is not None else None
                entry["behind_days"] = round((cutoff - int(oldest)) / float(DAY), 2) if oldest is not None else None
        out[step.table] = entry
    return out


def _compaction_backlog(reader, tconfig, tables, now, role):
    """Rows older than the compaction boundary that no compaction has reached yet."""
    days = _number(tconfig, "days_compact")
    if not days or "tagente_datos" not in tables:
        return {"enabled": False}
    step = (_number(tconfig, "step_compact") or 1) * HOUR
    boundary = int(now - days * DAY)
    boundary -= boundary % int(step)
    purge_days = _number(tconfig, "days_purge")
    floor = int(now - purge_days * DAY) if purge_days else 0
    per_module = (role == "main" and "tagente_modulo" in tables
                  and column_exists(reader.conn, "tagente_modulo", "last_compact"))
    if per_module:
        mark = reader.one("SELECT MIN(UNIX_TIMESTAMP(last_compact)) FROM tagente_modulo WHERE id_tipo_modulo"
                          " NOT IN (" + ", ".join(str(t) for t in COMPACT_EXCLUDED_TYPES) + ")")[0]
    else:
        mark = _number(tconfig, "last_compact")
    mark = int(mark) if mark else 0
    start = max(floor, mark)
    # An upper bound (windows already holding one row are counted too), by one utimestamp range.
    rows, exact = reader.bounded_count("SELECT COUNT(*) FROM tagente_datos WHERE utimestamp >= %s AND utimestamp < %s",
                                       (start, boundary)) if start < boundary else (0, True)
    return {"enabled": True, "days_compact": days, "boundary": boundary, "mark": mark or None,
            "behind_hours": _hours(boundary - start) if rows else 0.0, "rows": rows, "exact": exact}


def _lock(reader, database):
    name = lock_name(database)
    holder = reader.one("SELECT IS_USED_LOCK(%s)", (name,))[0]
    if not holder:
        return {"name": name, "free": True}
    row = reader.one("SELECT user, host, time FROM information_schema.processlist WHERE id = %s", (holder,))
    out = {"name": name, "free": False, "connection": int(holder)}
    if row:
        out.update(user=row[0], host=(row[1] or "").split(":")[0], held_seconds=int(row[2] or 0))
    return out


def _master(reader, servername):
    rows = reader.rows("SELECT name, status, master, UNIX_TIMESTAMP(keepalive) FROM tserver"
                       " ORDER BY master DESC, id_server")
    master = None
    for name, status, is_master, dummy in rows:
        if is_master and int(status) == 1:
            master = name
            break
    names = sorted(set(r[0] for r in rows))
    return {"master": master, "servers": names, "servername": servername,
            "this_host_is_master": (master == servername) if servername else None}


def history_lag(conn, main_tconfig, now, statement_seconds=1.0):
    """Rows on the main database older than ``history_db_days`` (the move should have taken them)."""
    days = _number(main_tconfig, "history_db_days")
    if not days:
        return None
    reader = Reader(conn, statement_seconds)
    cutoff = int(now - days * DAY)
    rows, exact = reader.bounded_count("SELECT COUNT(*) FROM tagente_datos WHERE utimestamp > 0 AND utimestamp < %s",
                                       (cutoff,))
    oldest = reader.one("SELECT MIN(utimestamp) FROM tagente_datos WHERE utimestamp > 0")[0] if rows else None
    return {"history_db_days": days, "cutoff": cutoff, "rows": rows, "exact": exact,
            "oldest": int(oldest) if oldest else None,
            "lag_days": round((cutoff - int(oldest)) / float(DAY), 2) if oldest and oldest < cutoff else 0.0}


# -- the managed host -------------------------------------------------------------------------------
def _owner(st):
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return user, group


def tool_version(command, timeout=20):
    """The version banner a Pandora tool prints (``7.0NG.776`` and the build), or None."""
    try:
        proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = proc.stdout.decode("utf-8", "replace")
    match = VERSION_RE.search(text)
    if not match:
        return None
    build = BUILD_RE.search(text)
    return {"version": match.group(1), "build": build.group(1) if build else None}


def _cron_tool(text):
    """The first quoted or bare path the cron file runs, and the configuration it passes."""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = re.findall(r'"([^"]+)"|(\S+)', line)
        words = [a or b for a, b in words]
        paths = [w for w in words if w.startswith("/")]
        if paths:
            return paths[0], (paths[1] if len(paths) > 1 else None)
    return None, None


def cron_report(path, server_binary=None, perl="perl"):
    """The hourly cron file: present, owner, mode, a name run-parts runs, the tool and its version."""
    out = {"path": path, "exists": os.path.exists(path)}
    name = os.path.basename(path)
    out["name_runs"] = bool(RUN_PARTS_NAME.match(name))
    if not out["exists"]:
        return out
    st = os.stat(path)
    out["owner"], out["group"] = _owner(st)
    out["mode"] = "%04o" % stat.S_IMODE(st.st_mode)
    out["executable"] = bool(st.st_mode & stat.S_IXUSR)
    try:
        with open(path) as handle:
            text = handle.read(65536)
    except OSError as exc:
        out["error"] = str(exc)
        return out
    tool, conf = _cron_tool(text)
    out["tool"], out["config"] = tool, conf
    out["tool_exists"] = bool(tool and os.path.exists(tool))
    # Only upstream's tool prints its banner when run without arguments; anything else (this collection's
    # scheduled job, say) might do its work when run, and this report never changes anything.
    out["tool_kind"] = "stock" if tool and os.path.basename(tool) in STOCK_TOOLS else "other"
    if out["tool_exists"] and out["tool_kind"] == "stock":
        command = [perl, tool] if tool.endswith(".pl") else [tool]
        out["tool_version"] = tool_version(command)
    if server_binary and os.path.exists(server_binary):
        out["server_version"] = tool_version([server_binary, "--version"] if not server_binary.endswith(".pl")
                                             else [perl, server_binary])
    return out


def timer_report(paths):
    """This collection's own scheduled maintenance (cron entry or systemd timer), when installed."""
    found = [p for p in paths if os.path.exists(p)]
    return {"installed": bool(found), "files": found}


def backup_report(directory, now, verify=False):
    """The newest archive in ``directory``: its age, and whether it verifies (when asked)."""
    out = {"directory": directory, "exists": os.path.isdir(directory)}
    if not out["exists"]:
        return out
    archives = sorted(glob.glob(os.path.join(directory, "pandorafms_backup_*.tar.gz")), key=os.path.getmtime)
    out["archives"] = len(archives)
    if not archives:
        return out
    newest = archives[-1]
    out["newest"] = newest
    out["age_hours"] = _hours(now - os.path.getmtime(newest))
    out["bytes"] = os.path.getsize(newest)
    out["verified"] = None
    if verify:
        from ansible_collections.pandorafms.server.plugins.module_utils._errors import PandoraError
        from ansible_collections.pandorafms.server.plugins.module_utils._restore import verify_archive
        try:
            verify_archive(newest)
            out["verified"] = True
        except PandoraError as exc:
            out["verified"] = False
            out["verify_error"] = str(exc)
    return out


# -- findings ---------------------------------------------------------------------------------------
def _maintenance_finding(findings, side, report, th):
    age = report.get("maintenance", {}).get("age_hours")
    if age is None:
        findings.add("critical", "maintenance_%s" % side, "maintenance has never run on the %s database"
                     " (tconfig db_maintance is not set)" % side,
                     "schedule pandora_db.pl or pandorafms.server.db_maintenance for this database")
    elif age > th.maintenance_critical_hours:
        notice = " (the console notifies after %d h)" % th.maintenance_notice_hours \
            if age > th.maintenance_notice_hours else ""
        findings.add("critical", "maintenance_%s" % side, "maintenance of the %s database last ran %.1f h ago,"
                     " more than %s h%s" % (side, age, th.maintenance_critical_hours, notice),
                     "check the cron file or timer and the maintenance log (/var/log/pandora/pandora_db.log)")
    elif age > th.maintenance_warning_hours:
        findings.add("warning", "maintenance_%s" % side, "maintenance of the %s database last ran %.1f h ago,"
                     " more than %s h (the console shows a red dot)" % (side, age, th.maintenance_warning_hours),
                     "check that the hourly run is scheduled and finishes")
    else:
        findings.add("ok", "maintenance_%s" % side, "maintenance of the %s database ran %.1f h ago" % (side, age))


def _backlog_findings(findings, side, report, th):
    for table, entry in sorted(report.get("backlog", {}).items()):
        behind = entry.get("behind_days")
        if not entry.get("rows") or behind is None:
            continue
        where = "%s on %s: %s rows older than %s = %s days%s, the oldest %.1f days past it" % (
            table, side, entry["rows"], entry["threshold_token"], entry["threshold_days"],
            "" if entry.get("exact") else " (estimate)", behind)
        if behind > th.backlog_critical_days:
            findings.add("critical", "purge_backlog", where, "the purge is not keeping up: run"
                         " pandorafms.server.pandora_db_maintain with max_runtime until it catches up, or"
                         " consider the partitioned layout")
        elif behind > th.backlog_warning_days:
            findings.add("warning", "purge_backlog", where, "make sure the hourly maintenance finishes"
                         " (see its log), or run it once by hand")
    compact = report.get("compaction_backlog") or {}
    if compact.get("enabled") and compact.get("rows") and (compact.get("behind_hours") or 0) > 24 * th.backlog_warning_days:
        findings.add("warning", "compaction_backlog", "%s: %s rows older than days_compact = %s not compacted yet"
                     " (%.1f h behind)" % (side, compact["rows"], compact["days_compact"], compact["behind_hours"]),
                     "let the maintenance run to the end (max_runtime, compact_row_budget)")


def findings_for(report, th):
    findings = Findings()
    main = report["main"]
    if main.get("error"):
        findings.add("critical", "database_main", main["error"], "check the login and the database name")
        report["findings"] = findings.items
        report["worst"] = findings.worst()
        return report
    _maintenance_finding(findings, "main", main, th)
    _backlog_findings(findings, "main", main, th)
    master = main.get("master") or {}
    if master:
        if master.get("master") is None:
            findings.add("warning", "master", "no running master server in tserver: the stock maintenance"
                         " does nothing on any node", "start the Pandora FMS server")
        elif master.get("this_host_is_master") is False:
            findings.add("ok", "master", "this host (%s) is not the master (%s): maintenance runs there" % (
                master.get("servername"), master.get("master")))
    lock = main.get("lock") or {}
    if not lock.get("free", True):
        held = lock.get("held_seconds")
        severity = "warning" if held is not None and held > th.lock_warning_hours * HOUR else "ok"
        findings.add(severity, "lock", "the maintenance lock %s is held by connection %s%s" % (
            lock["name"], lock.get("connection"), " for %d s" % held if held is not None else ""),
            "a run is in progress; if it is stuck, look at that connection (SHOW PROCESSLIST)"
            if severity != "ok" else "")
    history = report.get("history")
    if history:
        if history.get("error"):
            findings.add("critical", "database_history", history["error"], "check the history database settings")
        else:
            _maintenance_finding(findings, "history", history, th)
            _backlog_findings(findings, "history", history, th)
            mr_main, mr_hist = main["schema"].get("MR"), history["schema"].get("MR")
            if str(mr_main) != str(mr_hist):
                findings.add("critical", "schema_mr", "MR differs: main %s, history %s" % (mr_main, mr_hist),
                             "apply the missing MR updates to the history database"
                             " (pandorafms.server.pandora_history_db reports schema_behind)")
    lag = report.get("history_lag")
    if lag and lag.get("rows"):
        text = "%s tagente_datos rows on main are older than history_db_days = %s (%.1f days behind)" % (
            lag["rows"], lag["history_db_days"], lag["lag_days"])
        if lag["lag_days"] > th.lag_critical_days:
            findings.add("critical", "history_lag", text, "the move to the history database is not running or"
                         " not keeping up: check the history_move step")
        elif lag["lag_days"] > th.lag_warning_days:
            findings.add("warning", "history_lag", text, "let the history move catch up (history_db_delay 0)")
    host = report.get("host") or {}
    cron = host.get("cron")
    if cron is not None:
        _cron_findings(findings, cron)
    backup = host.get("backup")
    if backup is not None:
        _backup_findings(findings, backup, th)
    if not findings.items or all(f["severity"] == "ok" for f in findings.items):
        findings.add("ok", "summary", "maintenance is keeping up")
    report["findings"] = findings.items
    report["worst"] = findings.worst()
    return report


def _cron_findings(findings, cron):
    path = cron["path"]
    if not cron["name_runs"]:
        findings.add("critical", "cron_name", "%s: run-parts never runs a file named %s (only [A-Za-z0-9_-])"
                     % (path, os.path.basename(path)), "rename it, e.g. /etc/cron.hourly/pandora_db"
                     " (pandorafms.server.db_maintenance refuses such names)")
    if not cron["exists"]:
        findings.add("critical", "cron_file", "%s does not exist: nothing runs the maintenance" % path,
                     "apply pandorafms.server.db_maintenance")
        return
    if cron.get("owner") != "root" or cron.get("group") != "root" or cron.get("mode") != "0755":
        findings.add("warning", "cron_mode", "%s is %s:%s %s; the manual asks for root:root 0755" % (
            path, cron.get("owner"), cron.get("group"), cron.get("mode")),
            "apply pandorafms.server.db_maintenance (it enforces root:root 0755)")
    if not cron.get("executable"):
        findings.add("critical", "cron_mode", "%s is not executable: run-parts skips it" % path, "chmod 0755 it")
    if cron.get("tool") and not cron.get("tool_exists"):
        findings.add("critical", "cron_tool", "%s runs %s, which does not exist" % (path, cron["tool"]),
                     "point it at the installed pandora_db.pl (pandorafms.server.db_maintenance finds it)")
    tool, server = cron.get("tool_version"), cron.get("server_version")
    if tool and server and tool.get("version") != server.get("version"):
        findings.add("warning", "cron_tool_version", "the maintenance tool is %s but the server is %s" % (
            tool.get("version"), server.get("version")), "upgrade the tool with the server")


def _backup_findings(findings, backup, th):
    if not backup.get("exists") or not backup.get("archives"):
        findings.add("warning", "backup", "no backup archive in %s" % backup["directory"],
                     "schedule pandorafms.server.backup")
        return
    if backup["age_hours"] > th.backup_max_age_hours:
        findings.add("warning", "backup", "the newest backup %s is %.1f h old (more than %s h)" % (
            os.path.basename(backup["newest"]), backup["age_hours"], th.backup_max_age_hours),
            "check the backup job's log")
    if backup.get("verified") is False:
        findings.add("critical", "backup", "the newest backup %s does not verify: %s" % (
            os.path.basename(backup["newest"]), backup.get("verify_error")),
            "take a new backup and find out what damaged this one")


def summary_row(host, report):
    """One line of the fleet table."""
    main = report.get("main") or {}
    history = report.get("history") or {}
    backlog = sum(int(e.get("rows") or 0) for e in (main.get("backlog") or {}).values())
    lag = (report.get("history_lag") or {}).get("lag_days")
    master = (main.get("master") or {})
    mr = None
    if history and not history.get("error"):
        mr = str(main.get("schema", {}).get("MR")) == str(history.get("schema", {}).get("MR"))
    backup = ((report.get("host") or {}).get("backup") or {}).get("age_hours")
    worst = report.get("worst", "ok")
    reason = ""
    for item in report.get("findings", []):
        if item["severity"] == worst:
            reason = item["reason"]
            break
    return {"host": host, "master": master.get("master"), "is_master": master.get("this_host_is_master"),
            "maintenance_age_hours": (main.get("maintenance") or {}).get("age_hours"),
            "history_maintenance_age_hours": (history.get("maintenance") or {}).get("age_hours") if history else None,
            "backlog_rows": backlog, "lag_days": lag, "mr_match": mr, "backup_age_hours": backup,
            "worst": worst, "worst_reason": reason}


# -- one host's report ------------------------------------------------------------------------------
def health_report(conn, database, now=None, servername=None, history_conn=None, history_database=None,
                  history_error=None, thresholds=None, host=None, statement_seconds=0.25):
    """The whole report: ``{main, history, history_lag, host, findings, worst, summary}``.

    ``host`` is what was read on the managed host (:func:`cron_report`, :func:`backup_report`,
    :func:`timer_report`), or None when it was not looked at.
    """
    now = int(now if now is not None else time.time())
    th = thresholds or Thresholds()
    started = time.time()
    main, main_tconfig = database_report(conn, database, now, "main", servername, statement_seconds)
    report = {"now": now, "main": main, "thresholds": th.as_dict()}
    if history_error:
        report["history"] = {"role": "history", "error": history_error}
    elif history_conn is not None:
        report["history"], dummy = database_report(history_conn, history_database, now, "history",
                                                   statement_seconds=statement_seconds)
    if main_tconfig is not None and str(main_tconfig.get("history_db_enabled", "")).strip() == "1" \
            and "tagente_datos" in existing_tables(conn):
        report["history_lag"] = history_lag(conn, main_tconfig, now, statement_seconds)
    if host is not None:
        report["host"] = host
    findings_for(report, th)
    report["seconds"] = round(time.time() - started, 3)
    return report


def collect(settings, server_values=None, servername=None, history=None, thresholds=None, host_checks=None,
            now=None, statement_seconds=0.25):
    """Connect, read, close: the report of the host whose database ``settings`` reach.

    ``history``: the ``history_login_*`` options (``host``, ``port``, ``user``, ``password``, ``db``);
    without them the main ``tconfig`` tokens say where the history database is.
    ``host_checks``: ``{"cron_file": path, "server_binary": path, "backup_dir": path or None,
    "verify_backup": bool, "timer_files": [paths]}``, or None to leave the managed host alone.
    """
    from ansible_collections.pandorafms.server.plugins.module_utils._connection import connect
    from ansible_collections.pandorafms.server.plugins.module_utils._errors import PandoraError
    from ansible_collections.pandorafms.server.plugins.module_utils._history_purge import (
        history_settings, same_database)
    from ansible_collections.pandorafms.server.plugins.module_utils._serverconf import default_servername
    now = int(now if now is not None else time.time())
    servername = servername or (server_values or {}).get("servername") or default_servername()
    conn = connect(settings)
    history_conn = hist_settings = history_error = None
    try:
        tconfig = TConfig.load(conn) if "tconfig" in existing_tables(conn) else None
        if tconfig is not None:
            try:
                hist_settings = history_settings(tconfig, history or {}, settings.connect_timeout)
                if hist_settings is not None:
                    history_conn = connect(hist_settings)
                    if same_database(conn, history_conn):
                        history_error = "the history database (%s) is the main database itself" % (
                            hist_settings.describe())
                        history_conn.close()
                        history_conn = None
            except PandoraError as exc:
                history_error = "history database: %s" % (hist_settings.redact(str(exc)) if hist_settings
                                                          else str(exc))
        host = None
        if host_checks is not None:
            host = {"cron": cron_report(host_checks["cron_file"], host_checks.get("server_binary"))
                    if host_checks.get("cron_file") else None,
                    "timer": timer_report(host_checks.get("timer_files") or []),
                    "backup": backup_report(host_checks["backup_dir"], now, host_checks.get("verify_backup"))
                    if host_checks.get("backup_dir") else None}
        try:
            report = health_report(conn, settings.database, now, servername, history_conn,
                                   hist_settings.database if hist_settings else None, history_error, thresholds,
                                   host, statement_seconds)
        except pymysql.err.MySQLError as exc:
            from ansible_collections.pandorafms.server.plugins.module_utils._errors import (
                OperationFailed, database_error_hint)
            code = exc.args[0] if exc.args else None
            reason = exc.args[1] if len(exc.args) > 1 else str(exc)
            raise OperationFailed(settings.redact(
                "reading the health of %s failed: (%s) %s. %s Nothing was changed (this module only reads)."
                % (settings.describe(), code, reason, database_error_hint(code))), code=code)
        if hist_settings is not None:
            report["history_database"] = {"host": hist_settings.host, "port": hist_settings.port,
                                          "database": hist_settings.database}
        return report
    finally:
        if history_conn is not None:
            history_conn.close()
        conn.close()
