#!/usr/bin/env bash
# ansible-lint with the production profile, offline, from the collection layout.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/.venv/bin:$PATH
export ANSIBLE_COLLECTIONS_PATH=$PWD/.build/collections
python - <<'PY'
import sys
sys.path.insert(0, "tests")
from harness.collection import ensure_collection_link
ensure_collection_link()
PY
ansible-lint --offline --profile production "$@"
