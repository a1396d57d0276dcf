#!/usr/bin/env bash
# Release gates: the collection builds, installs from its tarball, its docs lint clean
# (antsibull-docs), ansible-doc renders every module, and the execution environment definition
# is accepted by ansible-builder.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/.venv/bin:$PATH
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ansible-galaxy collection build --output-path "$work/dist" . >/dev/null
tarball=$(ls "$work"/dist/pandorafms-server-*.tar.gz)
ansible-galaxy collection install --offline --force -p "$work/installed" "$tarball" >/dev/null 2>&1
installed=$work/installed/ansible_collections/pandorafms/server
echo "built and installed $(basename "$tarball")"

for path in plugins/modules/*.py; do
  module=$(basename "$path" .py)
  out=$(ANSIBLE_NOCOLOR=1 ANSIBLE_COLLECTIONS_PATH=$work/installed ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=0 \
        ansible-doc -t module "pandorafms.server.$module" 2>"$work/doc.err")
  if ! grep -q "MODULE pandorafms.server.$module" <<<"$out" || grep -q "WARNING\|ERROR" "$work/doc.err"; then
    cat "$work/doc.err"; exit 1
  fi
  echo "ansible-doc pandorafms.server.$module: ok"
done

(cd "$installed" && antsibull-docs lint-collection-docs --plugin-docs .)
echo "antsibull-docs lint-collection-docs: ok"

ansible-builder create --file meta/execution-environment.yml --context "$work/ee" >/dev/null
echo "ansible-builder create: ok"
