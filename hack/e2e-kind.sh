#!/usr/bin/env bash
# The Kubernetes walkthrough of docs/kubernetes.md, run and checked end to end on kind.
#
#   bash hack/e2e-kind.sh            # or: make e2e-kind
#   KEEP_CLUSTER=1 bash hack/e2e-kind.sh    # leave the cluster running afterwards
#
# Needs Docker (a running daemon), kind, kubectl and helm (the helm and kubectl that
# hack/build-k8s.sh builds are used when they are not on PATH). Steps, each failing fast
# with what went wrong and the operator's log:
#
#   1. create the kind cluster (kind-config.yaml), unless it exists
#   2. build the images (hack/build-images.sh with Docker) and `kind load` them
#   3. install MinIO + its bucket (examples/k8s/minio.yaml) and the operator chart
#   4. apply the word-count FlinkJob, wait for RUNNING, check its output and its REST API
#   5. rescale it (kubectl scale fj/wordcount --replicas 3), wait for parallelism 3
#   6. suspend it (spec.job.state) until its pods are gone, resume it to RUNNING
#   7. run the S3 example until a checkpoint is on MinIO
#   8. delete the FlinkJobs and check that their Deployments go with them
#   9. delete the cluster (if this script created it and KEEP_CLUSTER is not 1)
#
# Environment: KIND_CLUSTER_NAME (flinklet), KIND_NODE_IMAGE (kind's default),
# IMAGE_TAG (the project version), SKIP_BUILD=1 (use images built earlier),
# MINIO_IMAGE (the tag in examples/k8s/minio.yaml), TIMEOUT (seconds per wait, 300),
# SKIP_S3=1 (skip step 7), KEEP_CLUSTER=1, REST_PORT (local port for the JobManager's
# REST API through kubectl port-forward, 8081).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

CLUSTER=${KIND_CLUSTER_NAME:-flinklet}
IMAGE_TAG=${IMAGE_TAG:-$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n1)}
RUNTIME_IMAGE=flinklet-runtime:$IMAGE_TAG
OPERATOR_IMAGE=flinklet-operator:$IMAGE_TAG
OPERATOR_NS=flinklet-system
JOBS_NS=flinklet-jobs
RELEASE=flinklet-operator
OPERATOR_DEPLOYMENT=flinklet-operator
TIMEOUT=${TIMEOUT:-300}
REST_PORT=${REST_PORT:-8081}

step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
die() {
    echo "e2e-kind: FAILED: $*" >&2
    exit 1
}

# ------------------------------------------------------------------------ prerequisites
find_tool() {
    # A tool from PATH, else the copy hack/build-k8s.sh built (helm, kubectl).
    local name=$1 dir
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        return
    fi
    dir=$(bash hack/build-k8s.sh --print-bin-dir 2>/dev/null || true)
    if [ -n "$dir" ] && [ -x "$dir/$name" ]; then
        echo "$dir/$name"
        return
    fi
    return 1
}

command -v docker >/dev/null 2>&1 || die "docker is not installed (https://docs.docker.com/get-docker/)"
docker info >/dev/null 2>&1 || die "Docker is not available: 'docker info' failed (is the daemon running, may you use it?)"
command -v curl >/dev/null 2>&1 || die "curl is not installed"
command -v kind >/dev/null 2>&1 || die "kind is not installed (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
KUBECTL=$(find_tool kubectl) || die "kubectl is not installed (or run 'bash hack/build-k8s.sh')"
HELM=$(find_tool helm) || die "helm is not installed (or run 'bash hack/build-k8s.sh')"
kubectl() { "$KUBECTL" "$@"; }
helm() { "$HELM" "$@"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/flinklet-e2e-kind.XXXXXX")
export KUBECONFIG="$WORK/kubeconfig"
created_cluster=0

diagnose() {
    echo "---------------------------------------------------------------- diagnostics" >&2
    kubectl get flinkjobs,deployments,pods,services -n "$JOBS_NS" -o wide >&2 2>&1 || true
    kubectl get flinkjobs -n "$JOBS_NS" -o yaml 2>&1 | sed -n '/^  status:/,/^- /p' | head -n 80 >&2 || true
    echo "--- events ($JOBS_NS) ---" >&2
    kubectl get events -n "$JOBS_NS" --sort-by=.lastTimestamp 2>&1 | tail -n 25 >&2 || true
    echo "--- operator log ---" >&2
    kubectl logs -n "$OPERATOR_NS" "deployment/$OPERATOR_DEPLOYMENT" --tail=60 >&2 2>&1 || true
    echo "--- JobManager logs ---" >&2
    kubectl logs -n "$JOBS_NS" -l app.kubernetes.io/component=jobmanager --tail=30 --prefix >&2 2>&1 || true
}

finish() {
    local rc=$?
    if [ "$rc" -ne 0 ]; then
        diagnose
    fi
    if [ "$created_cluster" -eq 1 ] && [ "${KEEP_CLUSTER:-0}" != 1 ] && [ "$rc" -eq 0 ]; then
        step "delete the kind cluster $CLUSTER"
        kind delete cluster --name "$CLUSTER" || true
    elif [ "$created_cluster" -eq 1 ]; then
        echo "e2e-kind: the cluster '$CLUSTER' is kept: kind delete cluster --name $CLUSTER" >&2
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap finish EXIT

# wait_jsonpath NAME JSONPATH VALUE WHAT: wait until a FlinkJob field has a value.
wait_jsonpath() {
    local name=$1 path=$2 value=$3 what=$4
    echo "waiting for $what (fj/$name $path = $value, at most ${TIMEOUT}s)"
    kubectl wait -n "$JOBS_NS" "fj/$name" --for="jsonpath=$path=$value" --timeout="${TIMEOUT}s" \
        || die "$what: fj/$name never had $path = $value (it is '$(kubectl get -n "$JOBS_NS" "fj/$name" -o "jsonpath=$path" 2>/dev/null)')"
}

# wait_until WHAT COMMAND...: poll a command until it succeeds.
wait_until() {
    local what=$1 deadline=$((SECONDS + TIMEOUT))
    shift
    echo "waiting for $what (at most ${TIMEOUT}s)"
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || die "$what did not happen within ${TIMEOUT}s"
        sleep 3
    done
}

# ------------------------------------------------------------------------ 1. cluster
step "1. kind cluster '$CLUSTER'"
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    echo "reusing the existing cluster '$CLUSTER'"
else
    node_image=()
    [ -n "${KIND_NODE_IMAGE:-}" ] && node_image=(--image "$KIND_NODE_IMAGE")
    kind create cluster --name "$CLUSTER" --config kind-config.yaml "${node_image[@]}" --wait 180s \
        || die "kind create cluster failed"
    created_cluster=1
fi
kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG"
kubectl cluster-info >/dev/null || die "the cluster does not answer (kubectl cluster-info)"
kubectl version

# ------------------------------------------------------------------------ 2. images
step "2. images $RUNTIME_IMAGE and $OPERATOR_IMAGE"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    CONTAINER_ENGINE=docker IMAGE_TAG="$IMAGE_TAG" bash hack/build-images.sh --no-smoke \
        || die "building the images failed"
fi
for image in "$RUNTIME_IMAGE" "$OPERATOR_IMAGE"; do
    docker image inspect "$image" >/dev/null 2>&1 || die "image $image is missing (run without SKIP_BUILD)"
done
kind load docker-image "$RUNTIME_IMAGE" "$OPERATOR_IMAGE" --name "$CLUSTER" || die "kind load docker-image failed"

# ------------------------------------------------------------------------ 3. MinIO, operator
step "3. namespace $JOBS_NS, MinIO and the operator chart"
kubectl create namespace "$JOBS_NS" --dry-run=client -o yaml | kubectl apply -f -
minio_manifest="$ROOT/examples/k8s/minio.yaml"
if [ -n "${MINIO_IMAGE:-}" ]; then
    sed "s#image: quay.io/minio/minio:.*#image: $MINIO_IMAGE#" "$minio_manifest" >"$WORK/minio.yaml"
    minio_manifest="$WORK/minio.yaml"
fi
kubectl apply -n "$JOBS_NS" -f "$minio_manifest"
kubectl rollout status -n "$JOBS_NS" deployment/minio --timeout="${TIMEOUT}s" || die "MinIO did not become ready"
kubectl wait -n "$JOBS_NS" --for=condition=complete job/minio-create-bucket --timeout="${TIMEOUT}s" \
    || die "the bucket job did not complete: $(kubectl logs -n "$JOBS_NS" job/minio-create-bucket --tail=20 2>&1)"

helm upgrade --install "$RELEASE" charts/flinklet-operator \
    --namespace "$OPERATOR_NS" --create-namespace \
    --set "watchNamespaces={$JOBS_NS}" \
    --set image.tag="$IMAGE_TAG" \
    --wait --timeout "${TIMEOUT}s" || die "helm install of the operator failed"
kubectl rollout status -n "$OPERATOR_NS" "deployment/$OPERATOR_DEPLOYMENT" --timeout="${TIMEOUT}s" \
    || die "the operator did not become ready"

# ------------------------------------------------------------------------ 4. word count
step "4. the word-count FlinkJob"
kubectl apply -n "$JOBS_NS" -f examples/k8s/wordcount.yaml
wait_jsonpath wordcount '{.status.jobStatus.state}' RUNNING "the word count to run"
kubectl get fj -n "$JOBS_NS"

has_word_counts() {
    kubectl logs -n "$JOBS_NS" -l flinklet.io/job=wordcount,app.kubernetes.io/component=taskmanager \
        --tail=200 2>/dev/null | grep -q "('be', "
}
wait_until "word counts in the TaskManagers' logs" has_word_counts
kubectl logs -n "$JOBS_NS" -l flinklet.io/job=wordcount,app.kubernetes.io/component=taskmanager --tail=5

# The JobManager's REST API (Flink's paths), through a port-forward on 127.0.0.1.
kubectl port-forward -n "$JOBS_NS" svc/wordcount-rest "$REST_PORT:8081" >"$WORK/port-forward.log" 2>&1 &
port_forward=$!
rest_answers() { curl -fsS "http://127.0.0.1:$REST_PORT/jobs/overview" >"$WORK/overview.json" 2>/dev/null; }
wait_until "the JobManager's REST API on 127.0.0.1:$REST_PORT" rest_answers
kill "$port_forward" 2>/dev/null || true
wait "$port_forward" 2>/dev/null || true
grep -q '"state": *"RUNNING"' "$WORK/overview.json" \
    || die "GET /jobs/overview does not show a RUNNING job: $(cat "$WORK/overview.json")"
echo "GET /jobs/overview: $(cat "$WORK/overview.json")"

# ------------------------------------------------------------------------ 5. rescale
step "5. rescale to parallelism 3"
kubectl scale fj/wordcount -n "$JOBS_NS" --replicas 3
wait_jsonpath wordcount '{.status.jobStatus.parallelism}' 3 "the rescaled job"
wait_jsonpath wordcount '{.status.jobStatus.state}' RUNNING "the rescaled job to run"
tm_replicas=$(kubectl get deployment wordcount-taskmanager -n "$JOBS_NS" -o jsonpath='{.spec.replicas}')
[ "$tm_replicas" = 2 ] || die "parallelism 3 with 2 slots per TaskManager needs 2 TaskManagers, the Deployment has $tm_replicas"
kubectl get fj -n "$JOBS_NS"

# ------------------------------------------------------------------------ 6. suspend/resume
step "6. suspend and resume"
kubectl patch fj/wordcount -n "$JOBS_NS" --type merge -p '{"spec":{"job":{"state":"suspended"}}}'
wait_jsonpath wordcount '{.status.lifecycleState}' SUSPENDED "the job to be suspended"
no_job_pods() {
    [ -z "$(kubectl get pods -n "$JOBS_NS" -l flinklet.io/job=wordcount -o name 2>/dev/null)" ]
}
wait_until "the suspended job's pods to be gone" no_job_pods
kubectl patch fj/wordcount -n "$JOBS_NS" --type merge -p '{"spec":{"job":{"state":"running"}}}'
wait_jsonpath wordcount '{.status.jobStatus.state}' RUNNING "the resumed job to run"
kubectl get fj -n "$JOBS_NS"

# ------------------------------------------------------------------------ 7. S3 checkpoints
if [ "${SKIP_S3:-0}" != 1 ]; then
    step "7. the S3 example: checkpoints on MinIO"
    kubectl apply -n "$JOBS_NS" -f examples/k8s/s3-checkpoints.yaml
    wait_jsonpath sensor-average-s3 '{.status.jobStatus.state}' RUNNING "the S3 job to run"
    has_s3_checkpoint() {
        kubectl get fj sensor-average-s3 -n "$JOBS_NS" -o jsonpath='{.status.jobStatus.lastCheckpoint.path}' 2>/dev/null \
            | grep -q '^s3://flinklet/jobs/'
    }
    wait_until "a completed checkpoint under s3://flinklet/jobs/" has_s3_checkpoint
    kubectl get fj sensor-average-s3 -n "$JOBS_NS" -o jsonpath='{.status.jobStatus.lastCheckpoint.path}'
    echo
    kubectl delete -n "$JOBS_NS" -f examples/k8s/s3-checkpoints.yaml --timeout="${TIMEOUT}s"
fi

# ------------------------------------------------------------------------ 8. delete
step "8. delete the word count"
kubectl delete fj/wordcount -n "$JOBS_NS" --timeout="${TIMEOUT}s"
for deployment in wordcount-jobmanager wordcount-taskmanager; do
    kubectl get -n "$JOBS_NS" "deployment/$deployment" >/dev/null 2>&1 || continue
    kubectl wait -n "$JOBS_NS" --for=delete "deployment/$deployment" --timeout="${TIMEOUT}s" \
        || die "deployment/$deployment outlived its FlinkJob"
done
kubectl delete -n "$JOBS_NS" -f examples/k8s/wordcount.yaml --ignore-not-found

step "e2e-kind: PASSED"
