#!/bin/bash
# Runs once, when the primary's data directory is first initialized (docker-entrypoint-initdb.d):
# a replication role, a physical slot per replica (the primary keeps the WAL a stopped replica
# still needs), and a pg_hba line that lets the role stream. See docker-compose.yml, "replica".
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v role="$REPLICATION_USER" -v password="$REPLICATION_PASSWORD" -v slot="$REPLICATION_SLOT" <<'SQL'
CREATE ROLE :"role" WITH REPLICATION LOGIN PASSWORD :'password';
SELECT pg_create_physical_replication_slot(:'slot');
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SQL

# "all" in pg_hba.conf does not cover replication connections; they need their own line.
echo "host replication $REPLICATION_USER all scram-sha-256" >>"$PGDATA/pg_hba.conf"
