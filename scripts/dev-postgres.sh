#!/usr/bin/env bash
# A throwaway PostgreSQL 15 (Debian's) for development and CI: its own
# cluster under $PADDOCK_PG_DIR on 127.0.0.1, never the packaged cluster
# (/var/lib/postgresql/15/main) nor pg_ctlcluster. Needs root (the server
# runs as the postgres user). fsync is off: the data is thrown away.
#
#   scripts/dev-postgres.sh start   install if needed, initdb if needed, start, make the role and database
#   scripts/dev-postgres.sh stop    stop what start started
#   scripts/dev-postgres.sh env     print `export PADDOCK_TEST_POSTGRES=<DSN>`
#   scripts/dev-postgres.sh dsn     print the DSN
#   scripts/dev-postgres.sh durable turn fsync, synchronous_commit and full_page_writes on
#                                   (for benchmarks: a user's server runs durable)
#
# The port is $PADDOCK_PG_PORT, else a free one picked at the first start and
# kept in $PADDOCK_PG_DIR/port. The DSN's database is made for the tests:
# they make a schema (or a database) of their own in it and drop it after.
set -euo pipefail
BASE=${PADDOCK_PG_DIR:-/tmp/paddock-pg}
BIN=${PADDOCK_PG_BIN:-/usr/lib/postgresql/15/bin}
DB=paddock; DBUSER=paddock; DBPASS=paddock-dev
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

port() {
  if [ -n "${PADDOCK_PG_PORT:-}" ]; then echo "$PADDOCK_PG_PORT"; return; fi
  if [ -s "$BASE/port" ]; then cat "$BASE/port"; return; fi
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
dsn() { echo "postgres://$DBUSER:$DBPASS@127.0.0.1:$(port)/$DB?sslmode=disable"; }

case "${1:-start}" in
  stop)
    if [ -f "$BASE/data/postmaster.pid" ]; then as_pg "$BIN/pg_ctl" -D "$BASE/data" -m fast -w stop >/dev/null || true; fi
    exit 0 ;;
  env) echo "export PADDOCK_TEST_POSTGRES='$(dsn)'"; exit 0 ;;
  dsn) dsn; exit 0 ;;
  durable)
    PSQL=("$BIN/psql" -h "$BASE" -p "$(port)" -U postgres -v ON_ERROR_STOP=1 -qAt)
    for s in fsync synchronous_commit full_page_writes; do as_pg "${PSQL[@]}" -c "ALTER SYSTEM SET $s = on"; done
    as_pg "${PSQL[@]}" -c "SELECT pg_reload_conf()" >/dev/null
    echo "fsync=$(as_pg "${PSQL[@]}" -c 'SHOW fsync') synchronous_commit=$(as_pg "${PSQL[@]}" -c 'SHOW synchronous_commit')"
    exit 0 ;;
  start) ;;
  *) echo "usage: $0 start|stop|env|dsn|durable" >&2; exit 2 ;;
esac

if [ "$(id -u)" != 0 ]; then
  echo "dev-postgres.sh: needs root (it runs PostgreSQL as the postgres user)" >&2; exit 1
fi
[ -x "$BIN/initdb" ] || bash "$(dirname "$0")/deps.sh" postgres
t0=$(date +%s%N)
mkdir -p "$BASE"; chown postgres:postgres "$BASE"; chmod 755 "$BASE"
PORT=$(port)
if [ ! -f "$BASE/data/PG_VERSION" ]; then
  # Local socket: trust (this script, as root via setpriv); TCP: passwords.
  as_pg "$BIN/initdb" -D "$BASE/data" -U postgres -E UTF8 --locale=C.UTF-8 --no-sync \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  cat >> "$BASE/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$BASE'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
shared_buffers = 128MB
EOF
  echo "$PORT" > "$BASE/port"
fi
if ! as_pg "$BIN/pg_ctl" -D "$BASE/data" status >/dev/null 2>&1; then
  as_pg "$BIN/pg_ctl" -D "$BASE/data" -l "$BASE/server.log" -w -t 30 start >/dev/null
fi
PSQL=("$BIN/psql" -h "$BASE" -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qAt)
"${PSQL[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname='$DBUSER'" | grep -q 1 ||
  "${PSQL[@]}" -c "CREATE ROLE $DBUSER LOGIN CREATEDB PASSWORD '$DBPASS'"
"${PSQL[@]}" -c "SELECT 1 FROM pg_database WHERE datname='$DB'" | grep -q 1 ||
  "${PSQL[@]}" -c "CREATE DATABASE $DB OWNER $DBUSER"
# Check over TCP with the password, the way paddock (pgx) connects.
PGPASSWORD=$DBPASS "$BIN/psql" "$(dsn)" -qAt -v ON_ERROR_STOP=1 -c 'SELECT 1' >/dev/null
echo "postgres is up in $(( ($(date +%s%N) - t0) / 1000000 )) ms: export PADDOCK_TEST_POSTGRES='$(dsn)'"
