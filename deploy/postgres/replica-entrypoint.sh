#!/bin/sh
# The compose `replica` service: a hot standby streaming from PRIMARY_HOST. On an empty data
# directory it first copies the primary (pg_basebackup -R writes the standby configuration);
# afterwards it resumes from its own volume. Runs as the image's postgres user.
set -eu
: "${PRIMARY_HOST:?the primary to stream from}"
: "${PRIMARY_USER:?a role with REPLICATION (the database owner in compose)}"
: "${PGPASSWORD:?its password}"

if [ ! -s "${PGDATA}/PG_VERSION" ]; then
  until pg_isready -h "${PRIMARY_HOST}" -p "${PRIMARY_PORT:-5432}" -q; do sleep 1; done
  pg_basebackup -h "${PRIMARY_HOST}" -p "${PRIMARY_PORT:-5432}" -U "${PRIMARY_USER}" \
    -D "${PGDATA}" -R -X stream -c fast
  chmod 700 "${PGDATA}"
fi
exec postgres -c hot_standby=on -c hot_standby_feedback=on
