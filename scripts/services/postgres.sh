#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster on 127.0.0.1 for tests and the fleet bench: Debian's
# binaries run as the `postgres` user (postgres refuses to run as root), data and socket in D,
# a free loopback port, password (SCRAM) authentication over TCP.
#
#   apt-get install -y --no-install-recommends postgresql
#   D=$(mktemp -d) scripts/services/postgres.sh start   # prints url=postgres://…
#   D=<same dir> scripts/services/postgres.sh stop
#
# PG_PORT picks the port (default: a free one), PG_PASSWORD the password of the `s3sse` role.
set -euo pipefail
D=${D:?set D to a scratch directory}
BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
as_pg() { if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi; }
stop() {
  [ -f "$D/data/postmaster.pid" ] || return 0
  as_pg "$BIN/pg_ctl" -D "$D/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
}
case "${1:-start}" in stop) stop; exit 0 ;; start) ;; *) echo "usage: $0 start|stop" >&2; exit 2 ;; esac
[ -x "$BIN/initdb" ] || { echo "no PostgreSQL 15 at $BIN (apt-get install postgresql)" >&2; exit 1; }
mkdir -p "$D"
[ -z "$(ls -A "$D")" ] || { echo "D must be an empty dir" >&2; exit 1; }
PORT=${PG_PORT:-$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")}
PASS=${PG_PASSWORD:-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')}
if [ "$(id -u)" = 0 ]; then chown postgres: "$D"; fi
chmod 700 "$D"
printf '%s\n' "$PASS" > "$D/pwfile"
if [ "$(id -u)" = 0 ]; then chown postgres: "$D/pwfile"; fi
as_pg test -r "$D/pwfile" || { echo "the postgres user cannot reach $D: every directory above it must be searchable (chmod o+x)" >&2; exit 1; }
as_pg "$BIN/initdb" -D "$D/data" -U postgres --pwfile="$D/pwfile" --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$D/initdb.log" 2>&1 \
  || { cat "$D/initdb.log" >&2; exit 1; }
# fsync stays on: the tests check that what was acknowledged survives a gateway's kill -9.
as_pg "$BIN/pg_ctl" -D "$D/data" -l "$D/postgres.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$D -c max_connections=200 -c shared_buffers=64MB" start >/dev/null \
  || { cat "$D/postgres.log" >&2; exit 1; }
as_pg "$BIN/psql" -h "$D" -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -q \
  -c "CREATE ROLE s3sse LOGIN CREATEDB PASSWORD '$PASS'" -c "CREATE DATABASE s3sse OWNER s3sse" >/dev/null
echo "$PORT" > "$D/port"
echo "url=postgres://s3sse:$PASS@127.0.0.1:$PORT/s3sse"
