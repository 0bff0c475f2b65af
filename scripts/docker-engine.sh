# Sourced by test.sh: make a Docker engine reachable and export DOCKER_HOST, as DESIGN.md's
# "facts checked on these machines" describe: Debian's docker.io, no bridge, no iptables,
# vfs storage, its own socket. Does nothing when an engine already answers.
ISOBENCH_DOCKER_ROOT="${ISOBENCH_DOCKER_ROOT:-/tmp/isobench-docker}"

_docker_ok() { DOCKER_HOST="$1" timeout 10 docker version >/dev/null 2>&1; }

if [ -n "${DOCKER_HOST:-}" ] && _docker_ok "$DOCKER_HOST"; then
    return 0 2>/dev/null || exit 0
fi
if _docker_ok "unix://$ISOBENCH_DOCKER_ROOT/docker.sock"; then
    export DOCKER_HOST="unix://$ISOBENCH_DOCKER_ROOT/docker.sock"
    return 0 2>/dev/null || exit 0
fi
if ! command -v dockerd >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's docker.io for the Docker tests..." >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
if command -v dockerd >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    mkdir -p "$ISOBENCH_DOCKER_ROOT"
    setsid dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
        --data-root "$ISOBENCH_DOCKER_ROOT/data" --exec-root "$ISOBENCH_DOCKER_ROOT/exec" \
        -H "unix://$ISOBENCH_DOCKER_ROOT/docker.sock" --pidfile "$ISOBENCH_DOCKER_ROOT/docker.pid" \
        >"$ISOBENCH_DOCKER_ROOT/dockerd.log" 2>&1 < /dev/null &
    for _ in $(seq 1 60); do
        _docker_ok "unix://$ISOBENCH_DOCKER_ROOT/docker.sock" && break
        sleep 0.5
    done
    export DOCKER_HOST="unix://$ISOBENCH_DOCKER_ROOT/docker.sock"
else
    echo "no Docker engine could be started here; the Docker tests will skip (fail under CI=true)" >&2
fi
