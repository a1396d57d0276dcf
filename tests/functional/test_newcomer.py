"""What a new user sees first: ``make demo``, the test output, molecule's output, galaxy.yml."""

import os
import re
import subprocess
import sys

import yaml

from harness.collection import REPO

VENV_BIN = os.path.dirname(sys.executable)


def _demo(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "demo.py"), "--days", "12", "--agents", "4",
                           "--days-compact", "5", "--history-days", "8", "--output", str(out)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, cwd=REPO,
                          check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout, out


def test_demo_shows_compaction_real_counts_and_kept_files(tmp_path):
    text, out = _demo(tmp_path)
    # Compaction is on and shown, with the picture it drew.
    match = re.search(r"Compaction \(days_compact=5\): (\d+) raw tagente_datos rows .* averaged\ninto (\d+) means", text)
    assert match, text
    raw, means = int(match.group(1)), int(match.group(2))
    assert raw > means > 0
    picture = re.search(r"before and after: (\S+)", text).group(1)
    picture = picture if os.path.isabs(picture) else os.path.join(REPO, picture)
    with open(picture, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    # The before/after rows are counted in the database after the real run, and add up.
    counted = dict((m.group(1), (int(m.group(2)), int(m.group(3)), int(m.group(4))))
                   for m in re.finditer(r"^  (\w+) +(\d+) -> +(\d+)  \(([+-]\d+)\)$", text, re.M))
    assert counted["tagente_datos"][2] < 0 and counted["tevento"][2] < 0
    assert all(after - before == delta for before, after, delta in counted.values())
    total = int(re.search(r"Counted in the database: (\d+) fewer rows in all", text).group(1))
    assert total == -sum(delta for dummy, dummy2, delta in counted.values())
    assert re.search(r"check mode.s diff predicted the same for the \d+ tables it covers: yes", text)
    # Both servers: the move took the rows older than history_db_days to the history database.
    both = dict((m.group(1), [int(m.group(i)) for i in range(2, 7)]) for m in re.finditer(
        r"^  (tagente_datos\w*|tevento|ttrap) +(\d+) -> +(\d+) +(\d+) -> +(\d+) +([+-]\d+)$", text, re.M))
    assert set(both) == {"tagente_datos", "tagente_datos_string", "tevento", "ttrap"}, text
    for main_before, main_after, hist_before, hist_after, together in both.values():
        assert hist_before == 0 and hist_after > 0 and main_after < main_before
        assert main_after + hist_after - main_before - hist_before == together
    moved = dict((m.group(1), int(m.group(2))) for m in re.finditer(r"(\w+) (\d+)", re.search(
        r"The move's own count: (.*)\.", text).group(1)))
    assert moved["tevento"] == both["tevento"][3] and moved["ttrap"] == both["ttrap"][3]
    assert "Second real run: changed=False, 0 rows." in text
    # Every file the demo names is still there when it has finished.
    for name in ("compaction.png", "pandora_db.log", "check.json", "run.json"):
        assert (out / name).is_file(), name
    assert re.search(r"all of it in (\S+)\)", text).group(1).endswith("pandora_db.log")
    # Long step lists are wrapped, one reason per skipped line.
    assert max(len(line) for line in text.splitlines() if str(out) not in line and "/tmp/" not in line) <= 120
    assert re.search(r"^  - \w+.*: .+$", text, re.M)


def test_galaxy_has_no_placeholder_urls():
    with open(os.path.join(REPO, "galaxy.yml")) as handle:
        meta = yaml.safe_load(handle)
    for key in ("repository", "documentation", "homepage", "issues"):
        value = meta.get(key)
        assert value is None or not re.search(r"example\.(invalid|com|org)|localhost", value), (key, value)


def test_pytest_in_ci_shows_skip_reasons():
    with open(os.path.join(REPO, "tools", "test.sh")) as handle:
        line = [ln for ln in handle if "-m pytest" in ln][0]
    assert re.search(r"\s-rs\b|\s-r\w*s", line), line


def test_molecule_prints_no_critical_line_for_a_missing_default_scenario():
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""),
               ANSIBLE_HOME=os.path.join(REPO, ".build", "ansible-home"))
    proc = subprocess.run([os.path.join(VENV_BIN, "molecule"), "syntax", "-s", "default"], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False,
                          timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "CRITICAL" not in proc.stdout, proc.stdout[-3000:]
    # No prerun: it would force-install the collection into a cache the parallel lanes share.
    assert "Performing prerun" not in proc.stdout, proc.stdout[-3000:]
    # The default scenario checks every playbook the collection ships.
    with open(os.path.join(REPO, "molecule", "default", "playbooks.yml")) as handle:
        imported = set(os.path.basename(p["ansible.builtin.import_playbook"]) for p in yaml.safe_load(handle))
    assert imported == set(f for f in os.listdir(os.path.join(REPO, "playbooks")) if f.endswith(".yml"))


def test_expected_molecule_failures_are_announced():
    path = os.path.join(REPO, "molecule", "restore", "tasks", "restore-must-fail.yml")
    with open(path) as handle:
        tasks = yaml.safe_load(handle)
    failing = [i for i, t in enumerate(tasks) if "block" in t]
    assert failing
    for index in failing:
        before = tasks[index - 1]
        assert "ansible.builtin.debug" in before and "EXPECTED FAILURE" in before["name"]


def test_no_scenario_runs_molecules_prerun():
    """tools/molecule.sh runs scenarios in parallel lanes; molecule's prerun builds and force-installs the
    collection into one cache directory they all share, and two lanes removing the same tree at once made a
    scenario fail in CI. Every scenario finds the collection through .build/collections instead."""
    scenarios = sorted(d for d in os.listdir(os.path.join(REPO, "molecule"))
                       if os.path.isfile(os.path.join(REPO, "molecule", d, "molecule.yml")))
    assert len(scenarios) >= 6, scenarios
    for name in scenarios:
        with open(os.path.join(REPO, "molecule", name, "molecule.yml")) as handle:
            config = yaml.safe_load(handle)
        assert config.get("prerun") is False, name
        env = config.get("provisioner", {}).get("env", {})
        assert env.get("ANSIBLE_COLLECTIONS_PATH", "").endswith("/.build/collections"), name
