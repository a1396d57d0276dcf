#!/usr/bin/env bash
# Builds and caches the local container images of the molecule scenarios (no registry is used):
#
#   localhost/pandorafms-debian12:minbase   Debian 12 made with `debootstrap --variant=minbase` from the
#                                           apt source this machine is configured with, `docker import`ed
#   localhost/pandorafms-molecule:debian12  that base + python3, PyMySQL, the MariaDB client and server,
#                                           pigz, cron, procps (molecule/image/Dockerfile)
#
# An image that exists is kept; the test image is rebuilt when molecule/image/Dockerfile changes
# (its sha256 is stored as a label). `--force` rebuilds both. Needs a running engine
# (tools/docker.sh start) and root (debootstrap).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=${PANDORA_BASE_IMAGE:-localhost/pandorafms-debian12:minbase}
TEST_IMAGE=${PANDORA_TEST_IMAGE:-localhost/pandorafms-molecule:debian12}
SUITE=bookworm
DOCKERFILE_DIR=molecule/image
force=0
[ "${1:-}" = "--force" ] && force=1

log() { echo "build_image.sh: $*" >&2; }
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# The Debian mirror this machine's apt uses (deb822 .sources files or one-line lists), for SUITE.
apt_mirror() {
  python3 - "$SUITE" <<'PY'
import glob
import re
import sys

suite = sys.argv[1]
found = []


def consider(types, uris, suites, components):
    if "deb" not in types or suite not in suites or "main" not in components:
        return
    for uri in uris:
        if "security" not in uri:
            found.append(uri)


for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    with open(path) as handle:
        text = handle.read()
    for block in re.split(r"\n\s*\n", text):
        fields = {}
        key = None
        for line in block.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:
                fields[key] += " " + line.strip()
                continue
            if ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        consider(fields.get("types", "").split(), fields.get("uris", "").split(),
                 fields.get("suites", "").split(), fields.get("components", "").split())

for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        line = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
        if len(line) >= 4:
            consider([line[0]], [line[1]], [line[2]], line[3:])

if not found:
    sys.exit("no apt source for %s main is configured on this machine" % suite)
print(found[0])
PY
}

build_base() {
  if [ "$force" = 0 ] && image_exists "$BASE_IMAGE"; then
    log "$BASE_IMAGE exists (cached)"
    return
  fi
  command -v debootstrap >/dev/null 2>&1 || { log "debootstrap is not installed (tools/deps.sh installs it)"; exit 1; }
  local mirror rootfs started
  mirror=$(apt_mirror)
  rootfs=$(mktemp -d /var/tmp/pandorafms-rootfs.XXXXXX)
  # shellcheck disable=SC2064
  trap "rm -rf '$rootfs' '$rootfs.log'" EXIT
  started=$(date +%s)
  log "debootstrap --variant=minbase $SUITE from the configured apt source into $rootfs"
  if ! debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
    tail -n 30 "$rootfs.log" >&2
    rm -f "$rootfs.log"
    exit 1
  fi
  rm -f "$rootfs.log"
  # Smaller image: no package lists or caches (the test image runs apt-get update itself).
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*
  log "docker import -> $BASE_IMAGE"
  tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  log "base image built in $(( $(date +%s) - started )) s"
}

build_test_image() {
  local want have started
  want=$( (cat "$DOCKERFILE_DIR/Dockerfile"; echo "$BASE_IMAGE") | sha256sum | cut -c1-16)
  have=$(docker image inspect -f '{{ index .Config.Labels "org.pandorafms.dockerfile" }}' "$TEST_IMAGE" 2>/dev/null || true)
  if [ "$force" = 0 ] && [ "$have" = "$want" ]; then
    log "$TEST_IMAGE is up to date (cached)"
    return
  fi
  started=$(date +%s)
  log "docker build -> $TEST_IMAGE"
  # No buildx here, and the engine has no bridge: the classic builder on the host network.
  DOCKER_BUILDKIT=0 docker build --network host --pull=false \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" --label "org.pandorafms.dockerfile=$want" \
    -t "$TEST_IMAGE" "$DOCKERFILE_DIR" >/dev/null
  log "test image built in $(( $(date +%s) - started )) s"
}

timeout 10 docker info >/dev/null 2>&1 || { log "no Docker engine answers; run tools/docker.sh start"; exit 1; }
build_base
build_test_image
