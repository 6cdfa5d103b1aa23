#!/usr/bin/env bash
# Builds (only when missing) a Debian 13 root with Swift 6 in it, for running the Swift binding
# tests on a Debian 12 host. Prints the root's path on stdout.
# Recipe: a Debian 13 root made by debootstrap, Swift from its packages (docs/ios.md).
set -euo pipefail
ROOT=${THUDO_SWIFT_ROOT:-/var/cache/thudo/swift-root}
if [ -x "$ROOT/usr/bin/swiftc" ] && [ -f "$ROOT/.thudo-ready" ]; then
  # git: SwiftPM clones packages added by URL (scripts/check-swift-package.sh).
  if [ ! -x "$ROOT/usr/bin/git" ]; then
    chroot "$ROOT" apt-get update -qq >&2
    chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git ca-certificates >&2
  fi
  echo "$ROOT"; exit 0
fi
log() { echo "swift-root: $*" >&2; }
if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
fi
MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$MIRROR" ] || { log "no Debian mirror found in the apt sources"; exit 1; }
rm -rf "$ROOT"; mkdir -p "$(dirname "$ROOT")"
log "debootstrap trixie from $MIRROR"
debootstrap --variant=minbase trixie "$ROOT" "$MIRROR" >&2
mount -t proc proc "$ROOT/proc"
trap 'umount "$ROOT/proc" 2>/dev/null || true' EXIT
chroot "$ROOT" apt-get update -qq >&2
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  swiftlang libswiftlang libc6-dev git ca-certificates >&2
touch "$ROOT/.thudo-ready"
echo "$ROOT"
