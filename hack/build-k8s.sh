#!/usr/bin/env bash
# Builds the real Kubernetes control plane, etcd, helm, kwok and an S3 server (MinIO) from
# source through the Go module proxy, at pinned versions, into a cache outside the repository:
#
#   ${FLINKLET_CACHE:-$HOME/.cache/flinklet}/k8s-<K8S_VERSION>/bin/
#       kube-apiserver kube-controller-manager kube-scheduler kubectl etcd helm kwok minio
#
# Idempotent: a binary whose stamp matches the pinned version and whose version command runs
# is not rebuilt, so a second run is a no-op that takes under a second.
#
# Usage: bash hack/build-k8s.sh            build whatever is missing
#        bash hack/build-k8s.sh --print-bin-dir   print the bin directory and exit
#        bash hack/build-k8s.sh --force     rebuild everything
# See docs/testing-infrastructure.md.
set -euo pipefail

# --- pinned versions ------------------------------------------------------------------------
# Every version below must exist on the Go module proxy *and* in the checksum database.
K8S_VERSION="${K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.5.35}"
HELM_VERSION="${HELM_VERSION:-v3.19.5}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
# MinIO publishes RELEASE.* tags that are not semantic versions, so the module proxy only
# serves it by pseudo-version: this is what github.com/minio/minio@latest resolved to
# (commit 7aac2a2c5b7c of 2026-02-12).
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"

CACHE_ROOT="${FLINKLET_CACHE:-$HOME/.cache/flinklet}"
PREFIX="${CACHE_ROOT}/k8s-${K8S_VERSION}"
BIN="${PREFIX}/bin"
SRC="${PREFIX}/src"
LOGS="${PREFIX}/logs"

FORCE=0
for arg in "$@"; do
  case "$arg" in
    --print-bin-dir) echo "$BIN"; exit 0 ;;
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

export GOFLAGS="-mod=mod"
export CGO_ENABLED=0
export GOTOOLCHAIN=local
if command -v go >/dev/null; then
  export GOCACHE="${GOCACHE:-$(go env GOCACHE)}"
  export GOMODCACHE="${GOMODCACHE:-$(go env GOMODCACHE)}"
  GO_VERSION=$(go version | cut -d' ' -f3)
else
  GO_VERSION="none"  # fine while every binary is cached; need_go fails otherwise
fi
need_go() {
  [[ $GO_VERSION != none ]] || { echo "build-k8s: go is not on PATH; it is needed to build $1" >&2; exit 1; }
}

mkdir -p "$BIN" "$SRC" "$LOGS"

T0=$(date +%s)
ts() { date -u +%H:%M:%S; }
log() { echo "[build-k8s $(ts)] $*"; }

# stamp_ok NAME EXPECTED VERSION-ARGS...: the binary exists, its stamp matches, its version runs
stamp_ok() {
  local name=$1 expected=$2; shift 2
  [[ $FORCE == 0 ]] || return 1
  [[ -x "$BIN/$name" && -f "$BIN/.$name.stamp" ]] || return 1
  [[ "$(cat "$BIN/.$name.stamp")" == "rev${STAMP_REV} $expected" ]] || return 1
  "$BIN/$name" "$@" >/dev/null 2>&1 || return 1
}

# Bump when the build flags change, so existing binaries are rebuilt.
STAMP_REV=3
write_stamp() { printf 'rev%s %s' "$STAMP_REV" "$2" > "$BIN/.$1.stamp"; }

# --- lane A: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl -----------------
K8S_STAMP="k8s.io/kubernetes@${K8S_VERSION} tags=selinux,notest,grpcnotrace"
# kubectl at the same version: the machine's /usr/bin/kubectl may be outside the +-1 skew.
K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

build_k8s() {
  local need=()
  for b in "${K8S_BINS[@]}"; do
    if [[ $b == kubectl ]]; then
      stamp_ok "$b" "$K8S_STAMP" version --client || need+=("$b")
    else
      stamp_ok "$b" "$K8S_STAMP" --version || need+=("$b")
    fi
  done
  if [[ ${#need[@]} == 0 ]]; then
    log "kubernetes ${K8S_VERSION}: up to date"
    return 0
  fi
  need_go "${need[*]}"
  local start; start=$(date +%s)
  log "kubernetes ${K8S_VERSION}: building ${need[*]}"
  local dir="$SRC/kubernetes"
  mkdir -p "$dir"
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with
  # ./staging/...; a consumer must replace each of them with the matching v0.Y.Z release.
  local modjson gomod
  modjson=$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}")
  gomod=$(printf '%s' "$modjson" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [[ -f "$gomod" ]] || { echo "cannot download k8s.io/kubernetes@${K8S_VERSION}: $modjson" >&2; return 1; }
  local staging_version="v0.${K8S_VERSION#v1.}"
  local staging
  staging=$(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/.*#\1#p' "$gomod" | sort -u)
  [[ -n "$staging" ]] || { echo "no staging replaces found in $gomod" >&2; return 1; }
  {
    echo "module flinklet.local/k8s-build"
    echo
    grep -E '^go [0-9]' "$gomod"
    grep -E '^godebug ' "$gomod" || true
    echo
    echo "require k8s.io/kubernetes ${K8S_VERSION}"
    echo
    echo "replace ("
    for m in $staging; do echo "	$m => $m ${staging_version}"; done
    echo ")"
  } > "$dir/go.mod"
  cat > "$dir/tools.go" <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
  local major=${K8S_VERSION#v}; major=${major%%.*}
  local minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
  local commit
  commit=$(printf '%s' "$modjson" | sed -n 's/^[[:space:]]*"Hash": "\(.*\)",\{0,1\}$/\1/p' | head -1)
  local date; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=${major}"
    ld+=" -X ${pkg}.gitMinor=${minor} -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${date}"
    # The module proxy's .info carries the tag's commit only sometimes; empty beats the
    # "$Format:%H$" placeholder the source tree holds.
    ld+=" -X ${pkg}.gitCommit=${commit}"
  done
  local pkgs=()
  for b in "${need[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  (
    cd "$dir"
    go mod tidy -e >/dev/null 2>&1 || true
    go build -trimpath -tags=selinux,notest,grpcnotrace -ldflags="$ld" -o "$BIN/" "${pkgs[@]}"
  )
  for b in "${need[@]}"; do
    if [[ $b == kubectl ]]; then "$BIN/$b" version --client; else "$BIN/$b" --version; fi
    write_stamp "$b" "$K8S_STAMP"
  done
  log "kubernetes ${K8S_VERSION}: built in $(( $(date +%s) - start ))s"
}

# --- lane B: etcd, helm, kwok, minio ----------------------------------------------------------
ETCD_STAMP="go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
build_etcd() {
  if stamp_ok etcd "$ETCD_STAMP" --version; then log "etcd ${ETCD_VERSION}: up to date"; return 0; fi
  need_go etcd
  local start; start=$(date +%s)
  log "etcd ${ETCD_VERSION}: building"
  local dir="$SRC/etcd"
  mkdir -p "$dir"
  # etcd's server module is its own main package; a wrapper module keeps its dependency
  # versions independent of the Kubernetes ones (which use the etcd 3.6 client libraries).
  local gomod
  gomod=$(go mod download -json "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  {
    echo "module flinklet.local/etcd-build"
    echo
    grep -E '^go [0-9]' "$gomod"
    echo
    echo "require go.etcd.io/etcd/server/v3 ${ETCD_VERSION}"
  } > "$dir/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' \
    > "$dir/tools.go"
  (
    cd "$dir"
    go mod tidy -e >/dev/null 2>&1 || true
    go build -trimpath -ldflags="-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
  )
  "$BIN/etcd" --version
  write_stamp etcd "$ETCD_STAMP"
  log "etcd ${ETCD_VERSION}: built in $(( $(date +%s) - start ))s"
}

# go_install NAME PACKAGE VERSION LDFLAGS VERSION-ARGS...
go_install() {
  local name=$1 pkg=$2 version=$3 ld=$4; shift 4
  local stamp="${pkg}@${version}"
  if stamp_ok "$name" "$stamp" "$@"; then log "$name ${version}: up to date"; return 0; fi
  need_go "$name"
  local start; start=$(date +%s)
  log "$name ${version}: building"
  # go install pkg@version ignores the current module and honours only GOBIN.
  GOFLAGS="" GOBIN="$BIN" go install -trimpath -ldflags="-s -w $ld" "${pkg}@${version}"
  "$BIN/$name" "$@"
  write_stamp "$name" "$stamp"
  log "$name ${version}: built in $(( $(date +%s) - start ))s"
}

minio_ldflags() {
  # v0.0.0-YYYYMMDDhhmmss-<12 hex>: the same values MinIO's release build sets.
  local ts=${MINIO_VERSION#v0.0.0-}; ts=${ts%%-*}
  local hash=${MINIO_VERSION##*-}
  local rfc="${ts:0:4}-${ts:4:2}-${ts:6:2}T${ts:8:2}:${ts:10:2}:${ts:12:2}Z"
  local tag="DEVELOPMENT.${ts:0:4}-${ts:4:2}-${ts:6:2}T${ts:8:2}-${ts:10:2}-${ts:12:2}Z"
  local p=github.com/minio/minio/cmd
  echo "-X ${p}.Version=${rfc} -X ${p}.ReleaseTag=${tag} -X ${p}.CommitID=${hash}" \
       "-X ${p}.ShortCommitID=${hash} -X ${p}.CopyrightYear=${ts:0:4}"
}

lane_b() {
  build_etcd
  go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" \
    "-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" version --short
  go_install kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" "" --version
  go_install minio github.com/minio/minio "$MINIO_VERSION" "$(minio_ldflags)" --version
}

# --- run both lanes in parallel (downloads of one overlap the compiles of the other) --------
log "cache: $BIN (GOCACHE=${GOCACHE:-} GOMODCACHE=${GOMODCACHE:-}, go: ${GO_VERSION})"
build_k8s > "$LOGS/lane-kubernetes.log" 2>&1 &
PID_A=$!
lane_b > "$LOGS/lane-tools.log" 2>&1 &
PID_B=$!
RC=0
wait "$PID_A" || { RC=1; echo "build-k8s: kubernetes lane failed, see $LOGS/lane-kubernetes.log" >&2; }
wait "$PID_B" || { RC=1; echo "build-k8s: tools lane failed, see $LOGS/lane-tools.log" >&2; }
grep -h '^\[build-k8s' "$LOGS/lane-kubernetes.log" "$LOGS/lane-tools.log" || true
if [[ $RC != 0 ]]; then
  tail -n 40 "$LOGS/lane-kubernetes.log" "$LOGS/lane-tools.log" >&2
  exit 1
fi
for b in "${K8S_BINS[@]}" etcd helm kwok minio; do
  [[ -x "$BIN/$b" ]] || { echo "build-k8s: $BIN/$b missing" >&2; exit 1; }
done
log "all binaries ready in $BIN (total $(( $(date +%s) - T0 ))s)"
