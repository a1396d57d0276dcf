#!/usr/bin/env bash
# Runs the molecule scenarios (the roles in real containers; see molecule/*/molecule.yml):
# starts dockerd when none answers (and stops that one at the end, whatever happens), builds the
# local images when they are missing or out of date, then `molecule test -s <scenario>` for each.
#
# Usage: tools/molecule.sh [scenario ...]     (default: every scenario)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/.venv/bin:$PATH

scenarios=("$@")
if [ "${#scenarios[@]}" -eq 0 ]; then
  for f in molecule/*/molecule.yml; do
    [ -e "$f" ] && scenarios+=("$(basename "$(dirname "$f")")")
  done
fi
if [ "${#scenarios[@]}" -eq 0 ]; then echo "molecule: no scenarios yet"; exit 0; fi

# The scenarios find this checkout as the collection pandorafms.server under .build/collections.
python - <<'PY'
import sys
sys.path.insert(0, "tests")
from harness.collection import ensure_collection_link
ensure_collection_link()
PY

if ! tools/docker.sh status >/dev/null 2>&1; then
  tools/docker.sh start
  trap 'tools/docker.sh stop' EXIT
else
  echo "molecule: using the Docker engine that is already running"
fi

started=$(date +%s)
tools/build_image.sh
echo "molecule: images ready after $(( $(date +%s) - started )) s"

passed=0
failed=0
failed_names=()
for s in "${scenarios[@]}"; do
  t0=$(date +%s)
  echo "=== molecule test -s $s"
  if molecule test -s "$s"; then
    passed=$((passed + 1))
    echo "molecule: scenario $s passed in $(( $(date +%s) - t0 )) s"
  else
    failed=$((failed + 1))
    failed_names+=("$s")
    echo "molecule: scenario $s FAILED after $(( $(date +%s) - t0 )) s"
    # Leave nothing running from a failed scenario.
    molecule destroy -s "$s" >/dev/null 2>&1 || true
  fi
done

echo "molecule: ${failed_names[*]:+failed: ${failed_names[*]}; }total $(( $(date +%s) - started )) s"
echo "molecule: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
