#!/usr/bin/env bash
# Build the Flinklet container images (runtime + operator) and smoke-test them.
#
#   bash hack/build-images.sh                  # build both images, then smoke-test them
#   bash hack/build-images.sh --no-smoke       # build only
#   bash hack/build-images.sh --smoke-only     # test images built earlier
#   bash hack/build-images.sh --usrlib jobs/   # bake a directory of job code into the runtime
#   bash hack/build-images.sh --rebuild-base   # podman: debootstrap the base image again
#
# Engine: docker when `docker info` works, else podman (CONTAINER_ENGINE=docker|podman
# forces one). With podman the script first makes it usable on a bare Debian machine
# (idempotent): installs podman, runc and debootstrap with apt if they are missing, writes
# a containers.conf (runc, cgroupfs, ulimits under this machine's hard limits) and, when
# the base image is not there, builds it with debootstrap + `podman import` under the
# name the Dockerfiles start FROM. Builds then run with --pull=never and --network host,
# and pip in the build gets the host's CA bundle.
#
# Smoke test: the runtime image runs a JobManager (application mode, the word-count
# example) and a TaskManager, both --network host with a read-only root filesystem and
# no capabilities, on free ports bound to 127.0.0.1; the job must reach FINISHED
# (checked through the REST API), /healthz and /readyz must answer. The operator image
# must answer --help, report its version and import its kopf handlers.
#
# Environment: RUNTIME_IMAGE (flinklet-runtime), OPERATOR_IMAGE (flinklet-operator),
# IMAGE_TAG (the project version), BASE_IMAGE (debian:bookworm-slim), FLINKLET_CACHE
# (~/.cache/flinklet: base rootfs, podman config), SMOKE_TIMEOUT (seconds, 180).
# Timings and sizes are printed at the end (and written to $FLINKLET_CACHE/images/last-build.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

RUNTIME_IMAGE=${RUNTIME_IMAGE:-flinklet-runtime}
OPERATOR_IMAGE=${OPERATOR_IMAGE:-flinklet-operator}
IMAGE_TAG=${IMAGE_TAG:-$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n1)}
BASE_IMAGE=${BASE_IMAGE:-debian:bookworm-slim}
CACHE=${FLINKLET_CACHE:-$HOME/.cache/flinklet}
SMOKE_TIMEOUT=${SMOKE_TIMEOUT:-180}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

build=1
smoke=1
rebuild_base=0
usrlib=""
while [ "$#" -gt 0 ]; do
    case "$1" in
        --no-smoke) smoke=0 ;;
        --smoke-only) build=0 ;;
        --rebuild-base) rebuild_base=1 ;;
        --usrlib) usrlib=${2:?--usrlib needs a directory}; shift ;;
        --usrlib=*) usrlib=${1#--usrlib=} ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-images: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

CLEANUP_DIRS=()
SMOKE_CONTAINERS=()
cleanup() {
    local c d
    for c in "${SMOKE_CONTAINERS[@]}"; do
        "$ENGINE" rm -f "$c" >/dev/null 2>&1 || true
    done
    for d in "${CLEANUP_DIRS[@]}"; do
        rm -rf "$d"
    done
}
trap cleanup EXIT

step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
die() { echo "build-images: $*" >&2; exit 1; }

# ------------------------------------------------------------------------------ engine
pick_engine() {
    if [ -n "${CONTAINER_ENGINE:-}" ]; then
        echo "$CONTAINER_ENGINE"
    elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        echo docker
    else
        echo podman
    fi
}
ENGINE=$(pick_engine)
case "$ENGINE" in docker | podman) ;; *) die "CONTAINER_ENGINE must be docker or podman, got '$ENGINE'" ;; esac

BUILD_FLAGS=()

setup_podman() {
    local missing=()
    command -v podman >/dev/null 2>&1 || missing+=(podman)
    command -v runc >/dev/null 2>&1 || missing+=(runc)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    if [ "${#missing[@]}" -gt 0 ]; then
        if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
            die "missing ${missing[*]}: install them (Debian: apt-get install -y podman runc debootstrap)"
        fi
        step "installing ${missing[*]} (apt)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi

    # runc, not crun (crun fails on hybrid cgroup v1/v2 hosts); ulimits at most the hard
    # limits here (the containers cannot raise them without CAP_SYS_RESOURCE).
    local nofile nproc conf
    nofile=$(ulimit -Hn)
    nproc=$(ulimit -Hu)
    [ "$nofile" = unlimited ] && nofile=1048576
    [ "$nproc" = unlimited ] && nproc=1048576
    [ "$nofile" -gt 1048576 ] && nofile=1048576
    # conmon starts runc with RLIMIT_NPROC capped at kernel.pid_max (seen here: hard limit
    # 96365, pid_max 32768, and runc fails with "error setting rlimit type 6: operation
    # not permitted" above 32768), so never ask for more than that.
    local pid_max
    pid_max=$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo 32768)
    [ "$nproc" -gt "$pid_max" ] && nproc=$pid_max
    conf="$CACHE/podman/containers.conf"
    mkdir -p "$CACHE/podman"
    cat >"$conf.new" <<EOF
# Written by hack/build-images.sh (flinklet): podman settings for this machine.
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    mv "$conf.new" "$conf"
    # The system-wide file too, so that plain `podman ...` later behaves the same, unless
    # someone else's containers.conf is there already.
    if [ "$(id -u)" -eq 0 ] && { [ ! -e /etc/containers/containers.conf ] \
        || grep -q 'hack/build-images.sh (flinklet)' /etc/containers/containers.conf; }; then
        mkdir -p /etc/containers
        cp "$conf" /etc/containers/containers.conf
    fi
    export CONTAINERS_CONF="$conf"
    # podman build (buildah) does not apply default_ulimits: it asks for 1048576 processes
    # and files for root, which runc cannot set here. Pass the same limits explicitly.
    BUILD_FLAGS+=(--ulimit "nofile=${nofile}:${nofile}" --ulimit "nproc=${nproc}:${nproc}")
    podman info >/dev/null || die "podman does not work here: 'podman info' failed (see above)"
}

base_image_podman() {
    if [ "$rebuild_base" -eq 1 ] && podman image exists "$BASE_IMAGE"; then
        podman untag "$BASE_IMAGE"
    fi
    if podman image exists "$BASE_IMAGE"; then
        echo "base image $BASE_IMAGE: present"
        return
    fi
    step "base image $BASE_IMAGE: debootstrap bookworm (minbase) + podman import"
    local rootfs="$CACHE/images/rootfs-bookworm" started=$SECONDS
    rm -rf "$rootfs"
    mkdir -p "$rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR" >"$CACHE/images/debootstrap.log" 2>&1 \
        || { tail -n 30 "$CACHE/images/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/images/debootstrap.log)"; }
    # What debian:*-slim drops, now and for every package installed later (dpkg excludes):
    # docs (but their copyright files), man and info pages, translations; apt lists/caches.
    # Every path below is inside "$rootfs" (checked above to be a fresh directory).
    printf 'path-exclude /usr/share/%s\n' 'doc/*' 'man/*' 'groff/*' 'info/*' 'lintian/*' 'linda/*' 'locale/*' \
        >"$rootfs/etc/dpkg/dpkg.cfg.d/slim"
    printf 'path-include /usr/share/doc/*/copyright\n' >>"$rootfs/etc/dpkg/dpkg.cfg.d/slim"
    find "${rootfs:?}/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    rm -rf "${rootfs:?}"/var/lib/apt/lists/* "${rootfs:?}"/var/cache/apt/*.bin \
        "${rootfs:?}"/var/cache/apt/archives/*.deb "${rootfs:?}"/usr/share/man/* \
        "${rootfs:?}"/usr/share/info/* "${rootfs:?}"/usr/share/groff/* \
        "${rootfs:?}"/usr/share/lintian/* "${rootfs:?}"/usr/share/locale/* \
        "${rootfs:?}"/var/log/*.log "${rootfs:?}"/var/log/apt/*
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' \
        "$DEBIAN_MIRROR" "$DEBIAN_MIRROR" >"$rootfs/etc/apt/sources.list"
    tar --numeric-owner -C "$rootfs" -c . | podman import \
        --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --message "debootstrap --variant=minbase bookworm (hack/build-images.sh)" \
        - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
    echo "base image $BASE_IMAGE built in $((SECONDS - started)) s"
}

if [ "$ENGINE" = podman ]; then
    step "podman setup"
    setup_podman
    BUILD_FLAGS+=(--pull=never --network host)
    for ca in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
        if [ -r "$ca" ]; then
            BUILD_FLAGS+=(-v "$ca:/etc/flinklet-build-ca.crt:ro" --build-arg BUILD_CA_BUNDLE=/etc/flinklet-build-ca.crt)
            break
        fi
    done
    [ "$build" -eq 1 ] && base_image_podman
fi
echo "engine: $ENGINE ($($ENGINE --version))"

# ------------------------------------------------------------------------------ build
declare -A BUILD_SECONDS=()

stage_context() {
    # A clean copy of what the images are built from, plus the user's job code as usrlib/.
    local dir
    dir=$(mktemp -d "${TMPDIR:-/tmp}/flinklet-image-context.XXXXXX")
    tar -C "$ROOT" --exclude=__pycache__ --exclude='*.pyc' -c pyproject.toml README.md runtime operator examples docker \
        | tar -C "$dir" -x
    mkdir -p "$dir/usrlib"
    cp -a "$usrlib"/. "$dir/usrlib/"
    echo "$dir"
}

build_image() {
    local name=$1 dockerfile=$2 context=$3
    shift 3
    local started=$SECONDS ignore=()
    step "build $name:$IMAGE_TAG ($dockerfile)"
    [ "$ENGINE" = podman ] && ignore=(--ignorefile "$context/$dockerfile.dockerignore")
    "$ENGINE" build "${BUILD_FLAGS[@]}" "${ignore[@]}" -f "$context/$dockerfile" \
        --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "VERSION=$IMAGE_TAG" "$@" \
        -t "$name:$IMAGE_TAG" "$context" || die "building $name failed (output above)"
    BUILD_SECONDS[$name]=$((SECONDS - started))
}

image_size() {
    local bytes
    bytes=$("$ENGINE" image inspect --format '{{.Size}}' "$1" 2>/dev/null) || { echo "?"; return; }
    awk -v b="$bytes" 'BEGIN { printf "%.0f MB", b / 1000 / 1000 }'
}

if [ "$build" -eq 1 ]; then
    if python3 -c 'import flinklet, packaging' >/dev/null 2>&1; then
        python3 docker/freeze_requirements.py --check \
            || echo "build-images: WARNING: the pins in docker/requirements/ differ from this environment (building with the pins as they are)" >&2
    fi
    context=$ROOT
    runtime_args=()
    if [ -n "$usrlib" ]; then
        [ -d "$usrlib" ] || die "--usrlib $usrlib is not a directory"
        context=$(stage_context)
        CLEANUP_DIRS+=("$context")
        runtime_args+=(--build-arg USRLIB=usrlib)
    fi
    build_image "$RUNTIME_IMAGE" docker/runtime.Dockerfile "$context" "${runtime_args[@]}"
    build_image "$OPERATOR_IMAGE" docker/operator.Dockerfile "$context"
fi

# ------------------------------------------------------------------------------ smoke
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

smoke_runtime() {
    local image="$RUNTIME_IMAGE:$IMAGE_TAG" rest rpc jm tm deadline state="" body=""
    step "smoke test $image: JobManager (word count, application mode) + TaskManager"
    rest=$(free_port)
    rpc=$(free_port)
    jm="flinklet-smoke-jm-$$"
    tm="flinklet-smoke-tm-$$"
    SMOKE_CONTAINERS=("$jm" "$tm")
    # As in the operator's pods: non-root, read-only root filesystem, writable /tmp, no
    # capabilities, no privilege escalation.
    local hardened=(--network host --read-only --tmpfs "/tmp:rw,exec,size=512m" --cap-drop ALL
        --security-opt no-new-privileges)
    "$ENGINE" run -d --name "$jm" "${hardened[@]}" "$image" \
        jobmanager --job-entrypoint /opt/flinklet/examples/word_count.py \
        "-Drest.port=$rest" "-Djobmanager.rpc.port=$rpc" -Drest.bind-address=127.0.0.1 \
        -Djobmanager.bind-host=127.0.0.1 >/dev/null
    "$ENGINE" run -d --name "$tm" "${hardened[@]}" "$image" \
        taskmanager "-Djobmanager.rpc.address=127.0.0.1" "-Djobmanager.rpc.port=$rpc" \
        -Dtaskmanager.numberOfTaskSlots=2 -Dtaskmanager.host=127.0.0.1 >/dev/null
    deadline=$((SECONDS + SMOKE_TIMEOUT))
    while [ "$SECONDS" -lt "$deadline" ]; do
        body=$(curl -fsS "http://127.0.0.1:$rest/jobs/overview" 2>/dev/null || true)
        state=$(printf '%s' "$body" | python3 -c 'import json,sys
try:
    jobs = json.load(sys.stdin).get("jobs", [])
except ValueError:
    jobs = []
print(jobs[0]["state"] if jobs else "")' 2>/dev/null || true)
        case "$state" in FINISHED | FAILED | CANCELED) break ;; esac
        if [ "$("$ENGINE" inspect -f '{{.State.Running}}' "$jm" 2>/dev/null)" != true ]; then
            break
        fi
        sleep 2
    done
    if [ "$state" != FINISHED ]; then
        echo "--- JobManager logs ---" >&2
        "$ENGINE" logs "$jm" 2>&1 | tail -n 60 >&2 || true
        echo "--- TaskManager logs ---" >&2
        "$ENGINE" logs "$tm" 2>&1 | tail -n 40 >&2 || true
        die "smoke test: the word-count job is '${state:-not there}' (wanted FINISHED) after $SMOKE_TIMEOUT s; /jobs/overview: ${body:-no answer}"
    fi
    curl -fsS "http://127.0.0.1:$rest/healthz" >/dev/null || die "smoke test: GET /healthz failed"
    curl -fsS "http://127.0.0.1:$rest/readyz" >/dev/null || die "smoke test: GET /readyz failed"
    local counted
    counted=$("$ENGINE" logs "$tm" 2>&1 | grep -c "('be'," || true)
    echo "word count FINISHED via REST on 127.0.0.1:$rest; /healthz and /readyz OK; TaskManager printed $counted running count(s) of 'be'"
    [ "$counted" -gt 0 ] || die "smoke test: the job finished but its output ('be', n) is not in the TaskManager's log"
    cleanup
    SMOKE_CONTAINERS=()
}

smoke_operator() {
    local image="$OPERATOR_IMAGE:$IMAGE_TAG" out version
    local hardened=(--rm --network none --read-only --cap-drop ALL --security-opt no-new-privileges)
    step "smoke test $image: --help, version, handlers import"
    out=$("$ENGINE" run "${hardened[@]}" "$image" --help 2>&1) \
        || { echo "$out" >&2; die "smoke test: '$image --help' failed"; }
    echo "$out" | head -n 3
    if grep -q -- '--version' <<<"$out"; then
        version=$("$ENGINE" run "${hardened[@]}" "$image" --version 2>&1) \
            || { echo "$version" >&2; die "smoke test: '$image --version' failed"; }
    else
        version=$("$ENGINE" run "${hardened[@]}" --entrypoint python "$image" \
            -c 'import flinklet_operator; print(flinklet_operator.__version__)' 2>&1) \
            || { echo "$version" >&2; die "smoke test: flinklet_operator.__version__ failed"; }
    fi
    echo "flinklet-operator version: $version"
    [ "$version" = "$IMAGE_TAG" ] || echo "build-images: WARNING: the operator reports version '$version', the image is tagged '$IMAGE_TAG'" >&2
    # The kopf handlers register at import: every dependency must be in the image.
    out=$("$ENGINE" run "${hardened[@]}" --entrypoint python "$image" \
        -c 'import flinklet_operator.handlers, kopf, kubernetes; print("handlers import OK")' 2>&1) \
        || { echo "$out" >&2; die "smoke test: importing flinklet_operator.handlers failed"; }
    echo "$out"
    [ "$("$ENGINE" run --rm --entrypoint id "$image" -u)" = 9999 ] || die "the operator image does not run as uid 9999"
}

if [ "$smoke" -eq 1 ]; then
    command -v curl >/dev/null 2>&1 || die "the smoke test needs curl"
    smoke_runtime
    smoke_operator
fi

# ------------------------------------------------------------------------------ summary
step "summary"
mkdir -p "$CACHE/images"
{
    echo "engine: $ENGINE; base: $BASE_IMAGE"
    for name in "$RUNTIME_IMAGE" "$OPERATOR_IMAGE"; do
        printf '%s:%s  size %s' "$name" "$IMAGE_TAG" "$(image_size "$name:$IMAGE_TAG")"
        if [ -n "${BUILD_SECONDS[$name]:-}" ]; then printf '  built in %s s' "${BUILD_SECONDS[$name]}"; fi
        printf '\n'
    done
} | tee "$CACHE/images/last-build.txt"
