#!/bin/sh
# Runs once, when PostgreSQL's data folder is new (the postgres image runs every script in
# /docker-entrypoint-initdb.d). Two databases, since Prefect's server and isobench each keep
# an Alembic history: PREFECT_DB (with pg_trgm, which Prefect's server needs) and ISOBENCH_DB.
# psql takes the server from the environment (PGHOST, PGPORT, PGUSER or POSTGRES_USER).
set -eu
prefect_db="${PREFECT_DB:-prefect}"
isobench_db="${ISOBENCH_DB:-isobench}"
user="${PGUSER:-${POSTGRES_USER:-postgres}}"

for db in "$prefect_db" "$isobench_db"; do
    psql -v ON_ERROR_STOP=1 --username "$user" --dbname postgres --set db="$db" <<'SQL'
SELECT format('CREATE DATABASE %I', :'db')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
done
psql -v ON_ERROR_STOP=1 --username "$user" --dbname "$prefect_db" \
    -c 'CREATE EXTENSION IF NOT EXISTS pg_trgm'
