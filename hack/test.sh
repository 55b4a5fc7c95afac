#!/usr/bin/env bash
# The project's one test command (the README's second line; CI runs exactly this).
# Installs what it needs, builds the cached Kubernetes/S3 test binaries when missing,
# then runs the linters, the type checker, the import contracts and every test tier.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "install"
python -m pip install --quiet --disable-pip-version-check -e '.[dev]'

step "test binaries (kube-apiserver, etcd, ..., cached under ${FLINKLET_CACHE:-$HOME/.cache/flinklet})"
bash hack/build-k8s.sh

step "ruff"
ruff check runtime operator tests benchmarks examples
ruff format --check runtime operator tests benchmarks examples

step "mypy --strict"
mypy

step "import contracts"
lint-imports

step "pytest"
set +e
python -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"
