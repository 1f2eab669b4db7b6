#!/bin/sh
# Writes pgbouncer.ini and userlist.txt into PGBOUNCER_RUN_DIR from environment variables;
# docker compose's `pgbouncer` service and system_tests/test_pgbouncer.py both configure
# PgBouncer with it. Then: pgbouncer "$PGBOUNCER_RUN_DIR/pgbouncer.ini".
#
# The app behind it must run with DATABASE_POOLER=transaction: every statement then carries
# its own row-level-security scope, transaction-local (tenants/rls.py). Prepared statements
# stay off (DATABASE_PREPARED_STATEMENTS defaults to 0 then): PgBouncer before 1.21 cannot
# keep them, and Debian 12 ships 1.18.
set -eu

: "${PGBOUNCER_DB_HOST:?the PostgreSQL host (or socket directory) to pool}"
: "${PGBOUNCER_DB_NAME:?the database name}"
: "${PGBOUNCER_DB_USER:?the PostgreSQL user the pool logs in as}"
RUN_DIR="${PGBOUNCER_RUN_DIR:-/var/run/pgbouncer}"
AUTH_TYPE="${PGBOUNCER_AUTH_TYPE:-scram-sha-256}"

password=""
if [ -n "${PGBOUNCER_DB_PASSWORD:-}" ]; then
  password=" password=${PGBOUNCER_DB_PASSWORD}"
fi

cat > "${RUN_DIR}/pgbouncer.ini" <<EOF
[databases]
${PGBOUNCER_DB_NAME} = host=${PGBOUNCER_DB_HOST} port=${PGBOUNCER_DB_PORT:-5432} dbname=${PGBOUNCER_DB_NAME} user=${PGBOUNCER_DB_USER}${password}

[pgbouncer]
listen_addr = ${PGBOUNCER_LISTEN_ADDR:-0.0.0.0}
listen_port = ${PGBOUNCER_LISTEN_PORT:-6432}
unix_socket_dir =
pidfile = ${RUN_DIR}/pgbouncer.pid
logfile = ${RUN_DIR}/pgbouncer.log
auth_type = ${AUTH_TYPE}
auth_file = ${RUN_DIR}/userlist.txt
pool_mode = ${PGBOUNCER_POOL_MODE:-transaction}
default_pool_size = ${PGBOUNCER_DEFAULT_POOL_SIZE:-20}
max_client_conn = ${PGBOUNCER_MAX_CLIENT_CONN:-500}
ignore_startup_parameters = extra_float_digits,options
EOF

# The client credentials PgBouncer checks (scram-sha-256 works from a plain-text entry).
if [ "${AUTH_TYPE}" != "any" ] && [ "${AUTH_TYPE}" != "trust" ]; then
  printf '"%s" "%s"\n' "${PGBOUNCER_DB_USER}" "${PGBOUNCER_DB_PASSWORD:-}" > "${RUN_DIR}/userlist.txt"
else
  : > "${RUN_DIR}/userlist.txt"
fi
