#!/usr/bin/env bash
# Runs every molecule scenario (roles in real containers). Starts dockerd when none is running.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/.venv/bin:$PATH
scenarios=$(ls -d molecule/*/ 2>/dev/null | xargs -rn1 basename || true)
if [ -z "$scenarios" ]; then echo "molecule: no scenarios yet"; exit 0; fi
tools/docker.sh start
for s in $scenarios; do
  molecule test -s "$s"
done
