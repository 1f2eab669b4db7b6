#!/bin/sh
# docker-entrypoint-initdb.d script of the compose `db` service (runs once, on an empty
# volume): lets the `replica` service stream from it as the database owner, with a password.
set -eu
echo "host replication ${POSTGRES_USER} all scram-sha-256" >> "${PGDATA}/pg_hba.conf"
