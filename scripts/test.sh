#!/usr/bin/env bash
# The whole test suite: lint, format check, then pytest (unit, integration and flows: SQLite
# and the PostgreSQL server at 127.0.0.1:5432, real HTTP, a Prefect test server, a Docker
# engine that this script starts when the machine has none running).
source "$(dirname "$0")/env.sh"
source scripts/docker-engine.sh
source scripts/compose-tool.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest "$@"
