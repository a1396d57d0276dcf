#!/usr/bin/env bash
# ansible-lint with the production profile, offline, from the collection layout.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/.venv/bin:$PATH
export ANSIBLE_COLLECTIONS_PATH=$PWD/.build/collections
# A private HOME: a copy of this collection installed under ~/.ansible (molecule's prerun does
# that) must not shadow the checkout being linted.
mkdir -p .build/lint-home
export HOME=$PWD/.build/lint-home
python - <<'PY'
import sys
sys.path.insert(0, "tests")
from harness.collection import ensure_collection_link
ensure_collection_link()
PY
ansible-lint --offline --profile production "$@"
