#!/usr/bin/env bash
# The whole test suite: lint, format check, then pytest (unit and integration, SQLite and
# the PostgreSQL server at 127.0.0.1:5432).
source "$(dirname "$0")/env.sh"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest "$@"
