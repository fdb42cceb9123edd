#!/bin/bash
# The stand-in postgres image's entrypoint (docker/standin/postgres.Dockerfile): the official
# image's contract, for what this project uses of it.
#
#   - as root: make PGDATA and the socket directory the postgres user's, then run as it;
#   - an empty PGDATA: initdb with POSTGRES_USER (default postgres) and POSTGRES_PASSWORD
#     (required), password auth (scram-sha-256) for every TCP client; a server on the Unix
#     socket only while POSTGRES_DB (default: the user's name) is made and every
#     /docker-entrypoint-initdb.d/*.sh (sourced; run when executable) and *.sql runs, as the
#     official image does; that server stops;
#   - then `postgres "$@"` in the foreground (arguments starting with '-' are postgres's).
set -Eeuo pipefail

if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 0700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$0" "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "postgres-entrypoint: POSTGRES_PASSWORD is empty: the database is uninitialised" >&2
    exit 1
  fi
  export POSTGRES_USER="${POSTGRES_USER:-postgres}"
  export POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
  # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of flags
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=trust --auth-host=scram-sha-256 ${POSTGRES_INITDB_ARGS:-}
  printf '\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"

  # The set-up server: the Unix socket only, no TCP client can reach it half-made.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start
  export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
  psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
  if [ "$POSTGRES_DB" != postgres ]; then
    echo 'CREATE DATABASE :"db" ;' | "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB"
  fi
  for file in /docker-entrypoint-initdb.d/*; do
    case "$file" in
      *.sh)
        if [ -x "$file" ]; then
          echo "postgres-entrypoint: running $file"
          "$file"
        else
          echo "postgres-entrypoint: sourcing $file"
          # shellcheck disable=SC1090
          . "$file"
        fi
        ;;
      *.sql)
        echo "postgres-entrypoint: running $file"
        "${psql[@]}" --dbname "$POSTGRES_DB" -f "$file"
        ;;
      *) [ -e "$file" ] && echo "postgres-entrypoint: ignoring $file" ;;
    esac
  done
  unset PGPASSWORD
  pg_ctl -D "$PGDATA" -m fast -w stop
  echo "postgres-entrypoint: PostgreSQL init process complete; ready for start up."
fi

exec "$@"
