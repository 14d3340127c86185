#!/usr/bin/env bash
# Installs what the test suite needs to run against real services:
#   - Debian packages: prometheus (prometheus, promtool), etcd-server,
#     chromium (the headless browser the verifier's paywall test loads)
#   - a kube-apiserver built from the Go module proxy, cached under
#     $HOME/.cache/obol/testbin/k8s-$K8S_VERSION and laid out for envtest
#   - the token compiler's npm package (only when `make contracts` needs it)
# Idempotent: each step is skipped when its result is already present.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
CACHE="${OBOL_CACHE:-$HOME/.cache/obol}"
TESTBIN="$CACHE/testbin/k8s-$K8S_VERSION"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

log() { printf 'test-deps: %s\n' "$*" >&2; }

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_packages=()
command -v prometheus >/dev/null 2>&1 || apt_packages+=(prometheus)
command -v promtool >/dev/null 2>&1 || apt_packages+=(prometheus)
[ -x /usr/bin/etcd ] || apt_packages+=(etcd-server)
# The verifier's browser paywall is tested in headless Chromium.
command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
# npm compiles the token contract for `make contracts-check`.
command -v npm >/dev/null 2>&1 || apt_packages+=(nodejs npm)
if [ ${#apt_packages[@]} -gt 0 ]; then
  log "installing Debian packages: ${apt_packages[*]}"
  sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
  # Debian may start the services on install; tests run their own on free ports.
  sudo_if_needed systemctl stop prometheus etcd >/dev/null 2>&1 || true
else
  log "Debian packages present (prometheus, promtool, etcd, npm, chromium)"
fi

mkdir -p "$TESTBIN"
if [ ! -x "$TESTBIN/kube-apiserver" ]; then
  log "building kube-apiserver v$K8S_VERSION from the Go module proxy (about 8 minutes on 2 cores, once)"
  minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
  ( cd "$ROOT/hack/tools/kube-apiserver" &&
    GOFLAGS=-mod=mod go build -trimpath \
      -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
      -o "$TESTBIN/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver )
  mv "$TESTBIN/kube-apiserver.tmp" "$TESTBIN/kube-apiserver"
else
  log "kube-apiserver v$K8S_VERSION cached in $TESTBIN"
fi
ln -sf /usr/bin/etcd "$TESTBIN/etcd"
if command -v kubectl >/dev/null 2>&1; then ln -sf "$(command -v kubectl)" "$TESTBIN/kubectl"; fi
log "KUBEBUILDER_ASSETS=$TESTBIN"
