"""playbooks/health.yml across a two-host inventory: the fleet report, and the page in a real browser."""

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import zlib

import pytest

from harness.collection import COLLECTIONS_ROOT, REPO
from harness.maint_seed import tconfig
from harness.mariadb import ROOT_PASSWORD

DAY = 86400


def _seed(db, maintenance_age_hours, master="pandora-a"):
    now = int(time.time())
    tconfig(db, db_maintance=now - int(maintenance_age_hours * 3600), MR=64, days_purge=30, days_compact=0)
    db.query("INSERT INTO tserver (name, status, master, server_type, keepalive) VALUES (%s, 1, 1, 0, NOW())",
             (master,))
    db.query("INSERT INTO tagente_datos SELECT 1, seq, %s - seq * 60 FROM seq_1_to_500", (now,))
    db.query("INSERT INTO tagente_datos SELECT 2, seq, %s - seq FROM seq_1_to_30", (now - 35 * DAY,))


def _inventory(path, hosts):
    lines = ["[pandora_servers]"]
    for name, db in hosts:
        lines.append("%s ansible_connection=local health_login_host=127.0.0.1 health_login_port=%d"
                     " health_login_user=root health_login_db=%s health_servername=%s" % (
                         name, db.server.port, db.name, name))
    lines += ["", "[pandora_servers:vars]", "health_config_file=''", "health_check_host=false"]
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")


def _playbook(tmp_path, inventory, extra):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_HOME=str(tmp_path / ".ansible"), ANSIBLE_LOCAL_TEMP=str(tmp_path / ".ansible" / "tmp"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0")
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory,
           os.path.join(REPO, "playbooks", "health.yml"), "-e", json.dumps(extra)]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, env=env,
                          cwd=str(tmp_path), check=False, timeout=600)


def _png_size_and_colors(path):
    """Width, height and the number of distinct colours of a PNG (8-bit RGB/RGBA, as Chromium writes it)."""
    with open(path, "rb") as handle:
        data = handle.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    idat = b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            chunks["IHDR"] = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", chunks["IHDR"][:10])
    channels = {2: 3, 6: 4}[color]
    raw = zlib.decompress(idat)
    stride = width * channels + 1
    colors = set()
    for y in range(0, height, 7):          # a sample of rows is enough
        row = raw[y * stride + 1:(y + 1) * stride]
        for x in range(0, width * channels, channels * 5):
            colors.add(row[x:x + 3])
    return width, height, len(colors)


def test_fleet_report_two_hosts_and_browser(main_server, new_db, tmp_path):
    good, stale = new_db(main_server, "fleet_a"), new_db(main_server, "fleet_b")
    _seed(good, 0.1)
    _seed(stale, 30)        # 30 h without maintenance; and this host is not the master
    inventory = str(tmp_path / "inventory.ini")
    _inventory(inventory, [("pandora-a", good), ("pandora-b", stale)])
    out = tmp_path / "report"
    proc = _playbook(tmp_path, inventory, {"health_report_dir": str(out),
                                           "health_login_password": ROOT_PASSWORD,
                                           "pandora_server_conf": ""})
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert ROOT_PASSWORD not in proc.stdout

    fleet = json.loads((out / "health.json").read_text())
    assert set(fleet) == {"pandora-a", "pandora-b"}
    assert fleet["pandora-a"]["health"]["worst"] == "warning"    # 30 rows 5 days past days_purge
    assert fleet["pandora-b"]["health"]["worst"] == "critical"   # no maintenance for 30 h
    assert fleet["pandora-b"]["health"]["main"]["master"]["this_host_is_master"] is False
    assert ROOT_PASSWORD not in (out / "health.json").read_text()

    md = (out / "health.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("| pandora-")]
    assert len(table) == 2
    row_b = [line for line in table if line.startswith("| pandora-b ")][0]
    assert "30.0 h" in row_b and "critical" in row_b and "pandora-a" in row_b   # its master is pandora-a
    row_a = [line for line in table if line.startswith("| pandora-a ")][0]
    assert "(this host)" in row_a and "30 rows" in row_a
    assert "## pandora-b" in md and "maintenance of the main database last ran 30.0 h ago" in md

    page = (out / "health.html").read_text()
    assert "<script" not in page and "http" not in page.split("<svg", 1)[0].replace("http://www.w3.org", "")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (tools/deps.sh installs Debian's chromium)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--user-data-dir=%s" % (tmp_path / "chromium-profile")]
    url = "file://%s" % (out / "health.html")
    dom = subprocess.run([chromium] + flags + ["--dump-dom", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, timeout=120, check=False)
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = dom.stdout
    assert len(re.findall(r'<tr class="(?:ok|warning|critical)">', rendered)) == 2
    assert len(re.findall(r"<svg[^>]*class=\"chart\"", rendered)) == 4    # two charts per host
    assert len(re.findall(r'<rect class="bar"', rendered)) >= 4
    shot = tmp_path / "health.png"
    proc = subprocess.run([chromium] + flags + ["--window-size=1280,1400", "--screenshot=%s" % shot, url],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120,
                          check=False)
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    width, height, colors = _png_size_and_colors(str(shot))
    assert (width, height) == (1280, 1400)
    assert colors > 5     # text, the table's borders, the severity badges and the bars: not a blank page
    keep = os.environ.get("PANDORA_HEALTH_SCREENSHOT")
    if keep:
        shutil.copy(str(shot), keep)
