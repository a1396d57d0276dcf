# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet health report: one Markdown table, one self-contained HTML page, from the hosts' results.

Input: ``{host: result}``, where a result is what ``pandorafms.server.pandora_db_info`` returned on
that host (with its ``health``), or a failed result (``failed`` and ``msg``).  The page needs no
network: the styles are inline and the charts are inline SVG.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import html
import time

from ansible_collections.pandorafms.server.plugins.module_utils._health import summary_row

COLORS = {"ok": "#2e7d32", "warning": "#ef6c00", "critical": "#c62828"}
ORDER = {"critical": 0, "warning": 1, "ok": 2}


def rows(fleet):
    """One summary per host, the worst first."""
    out = []
    for host in sorted(fleet):
        result = fleet[host] or {}
        if result.get("failed") or result.get("unreachable") or "health" not in result:
            out.append({"host": host, "worst": "critical", "error": result.get("msg") or "no report",
                        "worst_reason": "no report: %s" % (result.get("msg") or "the module did not run")})
            continue
        out.append(summary_row(host, result["health"]))
    out.sort(key=lambda r: (ORDER.get(r["worst"], 3), r["host"]))
    return out


def _age(hours):
    if hours is None:
        return "never"
    if hours >= 48:
        return "%.1f d" % (hours / 24.0)
    return "%.1f h" % hours


def _yes_no(value):
    return "-" if value is None else ("yes" if value else "NO")


def _cells(row):
    if row.get("error"):
        return [row["host"], "-", "-", "-", "-", "-", "-", "critical: %s" % row["worst_reason"]]
    master = row["master"] or "none running"
    if row["is_master"] is True:
        master += " (this host)"
    return [row["host"], master, _age(row["maintenance_age_hours"]), "%d rows" % row["backlog_rows"],
            "-" if row["lag_days"] is None else "%.1f d" % row["lag_days"], _yes_no(row["mr_match"]),
            "-" if row["backup_age_hours"] is None else _age(row["backup_age_hours"]),
            "%s: %s" % (row["worst"], row["worst_reason"])]


HEADERS = ["host", "master", "maintenance age", "purge backlog", "history lag", "MR match", "backup age",
           "worst finding"]


def _md(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(fleet, generated=None):
    generated = generated or time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    table = rows(fleet)
    lines = ["# Pandora FMS maintenance health", "",
             "%d hosts, generated %s: %d critical, %d warning, %d ok." % (
                 len(table), generated, sum(1 for r in table if r["worst"] == "critical"),
                 sum(1 for r in table if r["worst"] == "warning"), sum(1 for r in table if r["worst"] == "ok")),
             "", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for row in table:
        lines.append("| " + " | ".join(_md(c) for c in _cells(row)) + " |")
    for host in [r["host"] for r in table]:
        health = (fleet[host] or {}).get("health")
        if not health:
            continue
        lines += ["", "## %s" % host, ""]
        for item in sorted(health["findings"], key=lambda f: ORDER[f["severity"]]):
            action = (" - %s" % item["action"]) if item.get("action") and item["severity"] != "ok" else ""
            lines.append("- **%s** %s%s" % (item["severity"], _md(item["reason"]), _md(action)))
    return "\n".join(lines) + "\n"


def _bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024.0
    return str(n)


def bar_chart(title, items, fmt=str, color="#1565c0", width=460):
    """A horizontal bar chart as inline SVG: ``items`` is ``[(label, value)]``."""
    items = [(label, max(0, value or 0)) for label, value in items]
    bar_h, gap, label_w, top = 16, 6, 170, 26
    height = top + len(items) * (bar_h + gap) + 8
    biggest = max([v for dummy, v in items] + [1])
    parts = ['<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img"'
             ' aria-label="%s">' % (width, height, html.escape(title)),
             '<text x="0" y="16" font-size="13" font-weight="bold">%s</text>' % html.escape(title)]
    span = width - label_w - 90
    for i, (label, value) in enumerate(items):
        y = top + i * (bar_h + gap)
        w = max(1 if value else 0, int(round(span * value / float(biggest))))
        parts.append('<text x="0" y="%d" font-size="12">%s</text>' % (y + 12, html.escape(label)))
        parts.append('<rect class="bar" x="%d" y="%d" width="%d" height="%d" fill="%s"/>' % (
            label_w, y, w, bar_h, color))
        parts.append('<text x="%d" y="%d" font-size="12">%s</text>'
                     % (label_w + w + 6, y + 12, html.escape(fmt(value))))
    if not items:
        parts.append('<text x="0" y="%d" font-size="12">nothing to show</text>' % (top + 12))
    parts.append("</svg>")
    return "".join(parts)


def _host_section(host, result):
    health = result.get("health")
    if not health:
        return ('<section class="host"><h2>%s</h2><p class="critical">No report: %s</p></section>'
                % (html.escape(host), html.escape(str(result.get("msg") or "the module did not run"))))
    main = health.get("main") or {}
    sizes = sorted(((name, t["data_bytes"] + t["index_bytes"]) for name, t in (main.get("tables") or {}).items()),
                   key=lambda item: -item[1])
    backlog = [(name, entry.get("rows") or 0) for name, entry in sorted((main.get("backlog") or {}).items())]
    lag = health.get("history_lag")
    if lag:
        backlog.append(("history move lag", lag.get("rows") or 0))
    items = "".join('<li><span class="sev %s">%s</span> %s%s</li>' % (
        f["severity"], f["severity"], html.escape(f["reason"]),
        (" <em>%s</em>" % html.escape(f["action"])) if f.get("action") and f["severity"] != "ok" else "")
        for f in sorted(health["findings"], key=lambda f: ORDER[f["severity"]]))
    return ('<section class="host"><h2>%s <span class="sev %s">%s</span></h2><div class="charts">%s%s</div>'
            '<ul class="findings">%s</ul></section>' % (
                html.escape(host), health["worst"], health["worst"],
                bar_chart("Table sizes (data + index)", sizes, _bytes),
                bar_chart("Backlog (rows past their threshold)", backlog, lambda v: "%d" % v, "#ef6c00"),
                items))


STYLE = """
body{font-family:sans-serif;margin:24px;color:#212121}
table{border-collapse:collapse;margin:12px 0 24px}
th,td{border:1px solid #bdbdbd;padding:4px 8px;text-align:left;font-size:14px;vertical-align:top}
th{background:#eeeeee}
td:first-child{white-space:nowrap}
.sev{color:#fff;border-radius:3px;padding:0 5px;font-size:12px}
.sev.ok{background:#2e7d32}.sev.warning{background:#ef6c00}.sev.critical{background:#c62828}
tr.critical td:first-child{border-left:5px solid #c62828}tr.warning td:first-child{border-left:5px solid #ef6c00}
tr.ok td:first-child{border-left:5px solid #2e7d32}
.charts{display:flex;flex-wrap:wrap;gap:24px}
section.host{border-top:1px solid #e0e0e0;padding-top:8px}
.findings li{margin:3px 0}
"""


def page(fleet, generated=None, title="Pandora FMS maintenance health"):
    """A self-contained HTML page: the fleet table, then one section per host with two charts."""
    generated = generated or time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    table = rows(fleet)
    body = ['<table id="fleet"><thead><tr>%s</tr></thead><tbody>' % "".join(
        "<th>%s</th>" % html.escape(h) for h in HEADERS)]
    for row in table:
        cells = _cells(row)
        body.append('<tr class="%s">%s</tr>' % (row["worst"], "".join(
            "<td>%s</td>" % html.escape(str(c)) for c in cells)))
    body.append("</tbody></table>")
    sections = [_host_section(row["host"], fleet[row["host"]] or {}) for row in table]
    counts = dict((s, sum(1 for r in table if r["worst"] == s)) for s in ORDER)
    values = (html.escape(title), STYLE, html.escape(title), len(table), html.escape(generated),
              counts["critical"], counts["warning"], counts["ok"], "".join(body), "".join(sections))
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>%s</title><style>%s</style>"
            "</head><body><h1>%s</h1><p>%d hosts, generated %s: %d critical, %d warning, %d ok.</p>%s%s"
            "</body></html>\n" % values)
