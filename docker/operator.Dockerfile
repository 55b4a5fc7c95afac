# The Flinklet operator image: flinklet_operator (kopf + the Kubernetes client).
#
#   hack/build-images.sh                                   # builds and smoke-tests it
#   docker build -f docker/operator.Dockerfile -t flinklet-operator:0.1.0 .
#
# Same shape as docker/runtime.Dockerfile: a builder stage installs the pinned wheels
# (docker/requirements/operator.txt) and the flinklet distribution offline into a
# virtualenv; the final stage is the base image + Python 3.11 + that virtualenv, running
# as the non-root user 9999. Build arguments: BASE_IMAGE, BUILD_CA_BUNDLE, VERSION (see
# runtime.Dockerfile).

ARG BASE_IMAGE=debian:bookworm-slim

# --------------------------------------------------------------------------- builder
FROM ${BASE_IMAGE} AS builder

ARG BUILD_CA_BUNDLE=
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*

COPY docker/requirements/ /src/docker/requirements/
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip install ${BUILD_CA_BUNDLE:+--cert "$BUILD_CA_BUNDLE"} \
        -r /src/docker/requirements/build.txt

RUN /opt/build/bin/pip download ${BUILD_CA_BUNDLE:+--cert "$BUILD_CA_BUNDLE"} \
        --only-binary=:all: --no-deps --dest /wheels \
        -r /src/docker/requirements/operator.txt

COPY pyproject.toml README.md /src/
COPY runtime/ /src/runtime/
COPY operator/ /src/operator/
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --no-index --wheel-dir /wheels /src

RUN python3 -m venv --without-pip /opt/flinklet/venv \
 && /opt/build/bin/pip --python /opt/flinklet/venv/bin/python install \
        --no-index --find-links /wheels --compile \
        -r /src/docker/requirements/operator.txt 'flinklet[operator]' \
 && /opt/flinklet/venv/bin/python -c "import flinklet_operator, kopf, kubernetes, pydantic"

# --------------------------------------------------------------------------- operator
FROM ${BASE_IMAGE}

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="flinklet-operator" \
      org.opencontainers.image.description="Kubernetes operator for FlinkJob resources (Flinklet)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
           /usr/share/doc/* /usr/share/man/* \
 && groupadd --gid 9999 flinklet \
 && useradd --uid 9999 --gid 9999 --home-dir /home/flinklet --create-home \
            --shell /usr/sbin/nologin flinklet

COPY --from=builder /opt/flinklet/venv /opt/flinklet/venv

ENV PATH=/opt/flinklet/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /home/flinklet
USER 9999:9999
# 8080 liveness (/healthz, kopf), 9090 Prometheus metrics.
EXPOSE 8080 9090
ENTRYPOINT ["flinklet-operator"]
