#!/bin/bash
# The read replica's entrypoint (official postgres image): on first start, with an empty data
# directory, clone the primary with pg_basebackup -R (which writes primary_conninfo and
# standby.signal) over the primary's replication slot; then hand over to the image's own
# entrypoint, which finds an initialized directory and starts a hot standby.
set -euo pipefail

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready --host "$PRIMARY_HOST" --port 5432 --quiet; do
    echo "replica: waiting for the primary at $PRIMARY_HOST"
    sleep 1
  done
  mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
  PGPASSWORD="$REPLICATION_PASSWORD" gosu postgres pg_basebackup \
    --host "$PRIMARY_HOST" --port 5432 --username "$REPLICATION_USER" --pgdata "$PGDATA" \
    --write-recovery-conf --wal-method stream --slot "$REPLICATION_SLOT" --checkpoint fast --progress
fi

exec docker-entrypoint.sh "$@"
