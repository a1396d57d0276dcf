#!/usr/bin/env bash
# ansible-test sanity on a clean copy of the collection at
# .build/sanity/ansible_collections/pandorafms/server (ansible-test needs that layout).
# ansible-test would download get-pip.py from the internet; this script provides a local stand-in
# (ensurepip, then pip install). The sanity tests' own requirements are still installed by pip,
# from the Python package index this machine's pip is configured with (cached after the first run).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
venv=$repo/.venv
dest=$repo/.build/sanity/ansible_collections/pandorafms/server

rm -rf "$dest"
mkdir -p "$dest"
git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do
  [ -e "$f" ] || continue
  mkdir -p "$dest/$(dirname "$f")"
  cp -p "$f" "$dest/$f"
done

# ansible-test bootstraps pip by downloading get-pip.py; give it a local stand-in that uses
# ensurepip and then pip install with the arguments it receives.
pip_version=$("$venv/bin/python" - <<'PY'
import pathlib, re
import ansible_test
src = (pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
print(re.search(r"pip='([^']+)'", src).group(1))
PY
)
cache=${HOME}/.ansible/test/cache
mkdir -p "$cache"
standin=$cache/get_pip_${pip_version//./_}.py
if [ ! -f "$standin" ]; then
  cat > "$standin" <<'PY'
# Offline stand-in for get-pip.py, written by pandorafms.server's tools/sanity.sh.
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
# get-pip.py's own flags mean "do not add these packages"; pip install does not know them.
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
PY
fi

cd "$dest"
# ansible-test lists the files git knows; make the copy its own repository so the outer
# checkout (where .build/ is ignored) does not hide it.
git init -q . && git add -A
export PATH=$venv/bin:$PATH
ansible-test sanity --python 3.11 --color no "$@"
