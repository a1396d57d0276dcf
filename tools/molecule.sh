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

# The scenarios run in PANDORA_MOLECULE_JOBS lanes at once (default 2): each has its own containers,
# names and database ports, and most of a scenario's time is spent waiting (containers starting, the
# daemons' intervals), so two lanes on two cores take about half the time. Each scenario's output goes to
# its own log, printed whole when the scenario ends.
jobs=${PANDORA_MOLECULE_JOBS:-2}
logdir=$(mktemp -d /tmp/pandorafms-molecule.XXXXXX)

run_one() {
  local s=$1 t0 rc=0
  t0=$(date +%s)
  molecule test -s "$s" > "$logdir/$s.log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    # Leave nothing running from a failed scenario.
    molecule destroy -s "$s" >> "$logdir/$s.log" 2>&1 || true
  fi
  echo "$rc $(( $(date +%s) - t0 ))" > "$logdir/$s.status"
  {
    echo "=== molecule test -s $s"
    cat "$logdir/$s.log"
    if [ "$rc" -eq 0 ]; then echo "molecule: scenario $s passed in $(( $(date +%s) - t0 )) s"
    else echo "molecule: scenario $s FAILED after $(( $(date +%s) - t0 )) s"; fi
  } | flock "$logdir/.print" cat
}

lane() {
  local s
  for s in "$@"; do run_one "$s"; done
}

# Deal the scenarios into the lanes in turn, in name order.
lanes=()
for ((i = 0; i < jobs; i++)); do lanes+=(""); done
i=0
for s in "${scenarios[@]}"; do
  lanes[i % jobs]+="$s "
  i=$((i + 1))
done
pids=()
for ((i = 0; i < jobs; i++)); do
  # shellcheck disable=SC2086  # the lane is a list of scenario names
  [ -n "${lanes[$i]}" ] && { lane ${lanes[$i]} & pids+=($!); }
done
for pid in "${pids[@]}"; do wait "$pid" || true; done

passed=0
failed=0
failed_names=()
for s in "${scenarios[@]}"; do
  read -r rc _ < "$logdir/$s.status" || rc=1
  if [ "${rc:-1}" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failed_names+=("$s"); fi
done
rm -rf "$logdir"

echo "molecule: ${failed_names[*]:+failed: ${failed_names[*]}; }total $(( $(date +%s) - started )) s"
echo "molecule: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
