# Sourced by test.sh: a Compose tool for the docker-compose.yml checks. Docker's own plugin
# (`docker compose`) when the machine has it; else Debian's docker-compose, installed here
# when this runs as root with apt (this project's machines have no Compose plugin).
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing Debian's docker-compose for the compose checks..." >&2
        apt-get update -qq >/dev/null \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
    else
        echo "no Compose tool here; the compose checks will skip (fail under CI=true)" >&2
    fi
fi
