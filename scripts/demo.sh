#!/usr/bin/env bash
# The main job on the embedded default: SQLite in the working directory, no services.
source "$(dirname "$0")/env.sh"
.venv/bin/isobench demo "$@"
