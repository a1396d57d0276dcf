#!/usr/bin/env bash
# Runs every test: pytest (engine, modules, roles' files, against private MariaDB servers),
# ansible-test sanity, ansible-lint, antsibull-changelog lint and the molecule scenarios.
# Called by `make test` after tools/deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/.venv/bin:$PATH
status=0
step() { echo; echo "=== $*"; }

step "pytest"
basetemp=$(mktemp -d /tmp/pandorafms-pytest.XXXXXX)
python -m pytest tests -q -rs -p no:cacheprovider --basetemp "$basetemp" || status=1

# Every mariadbd the tests started lives under a pytest temporary directory; none may survive.
left=$(pgrep -af "mariadbd .*$basetemp" || true)
if [ -n "$left" ]; then echo "test servers left running:"; echo "$left"; status=1; fi
rm -rf "$basetemp"

step "ansible-test sanity"
tools/sanity.sh || status=1

step "ansible-lint (production profile)"
tools/lint.sh || status=1

step "antsibull-changelog lint"
antsibull-changelog lint || status=1

step "collection build, install and docs"
tools/build_check.sh || status=1

step "molecule"
tools/molecule.sh || status=1

echo
if [ "$status" = 0 ]; then echo "ALL TESTS PASSED"; else echo "SOME TESTS FAILED"; fi
exit $status
