#!/bin/sh
# Entrypoint of the Flinklet runtime image (/docker/entrypoint.sh).
#
#   docker run IMAGE jobmanager --job-entrypoint /opt/flinklet/examples/word_count.py
#   docker run IMAGE taskmanager -Djobmanager.rpc.address=jm
#   docker run IMAGE run /opt/flinklet/examples/word_count.py      # any flinklet command
#   docker run IMAGE python -c 'import flinklet'                   # any program in the image
#   docker run IMAGE help
#
# The first argument picks what runs: a process role (jobmanager, taskmanager) or any
# other flinklet command goes to `flinklet`; the name of a program on PATH runs that
# program; anything else is handed to `flinklet` too, which explains what it expects.
# The Kubernetes operator does not use this script: its pods run `flinklet` directly.
set -eu

usage() {
    cat <<'EOF'
Flinklet runtime image

usage: IMAGE jobmanager [--job-entrypoint FILE.py|module:function] [-p N] [-Dkey=value ...]
       IMAGE taskmanager [-Dkey=value ...]
       IMAGE <flinklet command> ...     run, list, cancel, stop, savepoint, info, cluster
       IMAGE <program> ...              e.g. python, sh
       IMAGE help

Configuration: $FLINKLET_CONF_DIR/flinklet-conf.yaml, then $FLINKLET_PROPERTIES
("key: value" lines), then -Dkey=value flags. Servers bind 127.0.0.1 unless told
otherwise: in a container reached through published ports, pass
-Drest.bind-address=0.0.0.0 (and -Djobmanager.bind-host=0.0.0.0 for TaskManagers in
other containers).

Job code: /opt/flinklet/usrlib (on PYTHONPATH); examples: /opt/flinklet/examples.
EOF
}

if [ "$#" -eq 0 ]; then
    usage
    exit 0
fi

case "$1" in
    help | --help | -h)
        usage
        exit 0
        ;;
    flinklet)
        shift
        exec flinklet "$@"
        ;;
    jobmanager | taskmanager | cluster | slot | run | list | cancel | stop | savepoint | info)
        exec flinklet "$@"
        ;;
    -*)
        # Options only: they are flinklet's (e.g. `IMAGE --help` handled above, `-V`).
        exec flinklet "$@"
        ;;
esac

if command -v -- "$1" >/dev/null 2>&1; then
    exec "$@"
fi
exec flinklet "$@"
