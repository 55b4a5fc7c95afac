# The Flinklet runtime image: JobManager and TaskManager processes (and the flinklet CLI).
#
#   hack/build-images.sh                                   # builds and smoke-tests it
#   docker build -f docker/runtime.Dockerfile -t flinklet-runtime:0.1.0 .
#
# Two stages. The builder downloads the pinned wheels (docker/requirements/runtime.txt,
# generated from the development environment by docker/freeze_requirements.py), builds
# the flinklet wheel and installs all of it, offline, into a virtualenv. The final stage
# is the base image + Python 3.11 + that virtualenv: no compiler, no pip, no build tools.
#
# Build arguments:
#   BASE_IMAGE       Debian bookworm (slim). hack/build-images.sh builds a local one with
#                    debootstrap where no registry is reachable.
#   USRLIB           a directory in the build context copied to /opt/flinklet/usrlib
#                    (bake job code in); default: an empty placeholder.
#   BUILD_CA_BUNDLE  a CA bundle path inside the build (mounted by the build command) for
#                    pip behind a TLS-intercepting proxy; empty: pip's own certificates.
#   VERSION          the image's version label.

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

# A throwaway virtualenv with the pinned build tools (pip, setuptools, wheel).
COPY docker/requirements/ /src/docker/requirements/
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip install ${BUILD_CA_BUNDLE:+--cert "$BUILD_CA_BUNDLE"} \
        -r /src/docker/requirements/build.txt

# Every third-party dependency as a pinned binary wheel (no compiler in this stage).
RUN /opt/build/bin/pip download ${BUILD_CA_BUNDLE:+--cert "$BUILD_CA_BUNDLE"} \
        --only-binary=:all: --no-deps --dest /wheels \
        -r /src/docker/requirements/runtime.txt

# The flinklet wheel, from the sources (both packages of the one distribution).
COPY pyproject.toml README.md /src/
COPY runtime/ /src/runtime/
COPY operator/ /src/operator/
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --no-index --wheel-dir /wheels /src

# The image's virtualenv, installed offline from exactly those wheels; byte-compiled here
# because the root filesystem is read-only at run time.
RUN python3 -m venv --without-pip /opt/flinklet/venv \
 && /opt/build/bin/pip --python /opt/flinklet/venv/bin/python install \
        --no-index --find-links /wheels --compile \
        -r /src/docker/requirements/runtime.txt 'flinklet[rocksdb,s3,cluster]' \
 && /opt/flinklet/venv/bin/python -c "import flinklet, rocksdict, boto3, fastapi, uvicorn, httpx"

# --------------------------------------------------------------------------- runtime
FROM ${BASE_IMAGE}

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="flinklet-runtime" \
      org.opencontainers.image.description="Flinklet JobManager/TaskManager: Apache Flink's stream processing model in Python" \
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
COPY examples/ /opt/flinklet/examples/
ARG USRLIB=docker/usrlib
COPY ${USRLIB}/ /opt/flinklet/usrlib/
COPY --chmod=0755 docker/entrypoint.sh /docker/entrypoint.sh

# PYTHONPATH: job code in usrlib first, then /opt/flinklet (so "examples.word_count:main"
# imports). No bytecode writes (read-only root filesystem); unbuffered logs.
ENV PATH=/opt/flinklet/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/opt/flinklet/usrlib:/opt/flinklet \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FLINKLET_HOME=/opt/flinklet

WORKDIR /opt/flinklet
USER 9999:9999
# 6123 JobManager RPC, 8081 REST (/healthz, /readyz, Flink's REST API), 9249 metrics.
EXPOSE 6123 8081 9249
ENTRYPOINT ["/docker/entrypoint.sh"]
CMD ["help"]
