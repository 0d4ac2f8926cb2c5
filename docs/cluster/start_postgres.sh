#!/usr/bin/env bash
# Start a private PostgreSQL server for optuna-fractal workers, as an ordinary user.
#
# Run it on the machine that hosts the database (a frontend or login node where the site allows
# a long-running user process, or the first node of a long job). The first run creates the
# database cluster, a password kept only in ~/.pgpass (mode 600), an entry in pg_hba.conf that
# admits the workers' network, and the database. Later runs only start the server.
#
#   ALLOW_CIDR=172.16.0.0/16 ./start_postgres.sh
#
# Settings (environment variables):
#   ALLOW_CIDR      required: the network the workers connect from, e.g. 172.16.0.0/16
#   PGROOT          data directory and socket, default $HOME/optuna-postgres
#   PGPORT          TCP port, default 5433 (not 5432, which a system server may hold)
#   LISTEN_ADDRESS  address to listen on, default the host's first address
#   OPTUNA_DB       database name, default optuna
#
# Needs initdb, pg_ctl, createdb and psql on PATH (the PostgreSQL server package, or
# `conda install -c conda-forge postgresql` in a user environment).
set -euo pipefail

: "${ALLOW_CIDR:?Set ALLOW_CIDR to the network of the workers, e.g. ALLOW_CIDR=172.16.0.0/16}"
PGROOT="${PGROOT:-$HOME/optuna-postgres}"
PGPORT="${PGPORT:-5433}"
LISTEN_ADDRESS="${LISTEN_ADDRESS:-$(hostname -I 2>/dev/null | awk '{print $1}')}"
OPTUNA_DB="${OPTUNA_DB:-optuna}"
DATA="$PGROOT/data"

if [ -z "$LISTEN_ADDRESS" ]; then
    echo "Cannot find this host's address; set LISTEN_ADDRESS." >&2
    exit 1
fi
for tool in initdb pg_ctl createdb psql; do
    command -v "$tool" >/dev/null || { echo "$tool is not on PATH." >&2; exit 1; }
done

umask 077
if [ ! -d "$DATA" ]; then
    mkdir -p "$PGROOT"
    # The password never appears on a command line: other users of the machine can read those.
    password="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
    password_file="$(mktemp)"
    printf '%s\n' "$password" > "$password_file"
    initdb --pgdata="$DATA" --username="$USER" --auth-local=peer --auth-host=scram-sha-256 \
        --pwfile="$password_file" >/dev/null
    rm -f "$password_file"

    cat >> "$DATA/postgresql.conf" <<CONF
listen_addresses = '$LISTEN_ADDRESS'
port = $PGPORT
unix_socket_directories = '$PGROOT'
# Every worker opens one or two connections, and the dashboard and fail-stale add a few.
max_connections = 200
CONF
    echo "host all $USER $ALLOW_CIDR scram-sha-256" >> "$DATA/pg_hba.conf"

    # libpq (psycopg2) reads ~/.pgpass, so the workers' URL carries no password.
    touch "$HOME/.pgpass"
    chmod 600 "$HOME/.pgpass"
    printf '%s:%s:*:%s:%s\n' "$LISTEN_ADDRESS" "$PGPORT" "$USER" "$password" >> "$HOME/.pgpass"
    unset password
fi

if ! pg_ctl --pgdata="$DATA" status >/dev/null 2>&1; then
    pg_ctl --pgdata="$DATA" --log="$PGROOT/server.log" --wait start
fi

exists="$(psql --host="$LISTEN_ADDRESS" --port="$PGPORT" --dbname=postgres --tuples-only \
    --no-align --command="SELECT 1 FROM pg_database WHERE datname = '$OPTUNA_DB'")"
if [ "$exists" != "1" ]; then
    createdb --host="$LISTEN_ADDRESS" --port="$PGPORT" "$OPTUNA_DB"
fi

echo "PostgreSQL is running. Storage URL for the workers (password in ~/.pgpass):"
echo "  postgresql+psycopg2://$USER@$LISTEN_ADDRESS:$PGPORT/$OPTUNA_DB"
echo "Stop it with: pg_ctl --pgdata=$DATA stop"
