# shellcheck shell=bash
# Throwaway PostgreSQL clusters for scripts (sourced, not run).
#
#   source scripts/pg.sh
#   pg_start "$dir" [extra postgres -c settings...]   # sets PG_PORT, psql=(...)
#   pg_stop "$dir"
#
# PostgreSQL refuses to run as root, so as root the cluster runs as the
# `postgres` OS user. The socket lives in the cluster's own directory.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
as_pg=()
if [[ "$(id -u)" -eq 0 ]]; then
    as_pg=(runuser -u postgres --)
fi

pg_start() {
    local dir=$1
    shift
    local settings=("-c" "listen_addresses=''" "$@")
    PG_PORT=$((20000 + RANDOM % 20000))
    [[ ${#as_pg[@]} -gt 0 ]] && chown postgres "$dir"
    "${as_pg[@]}" "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync >/dev/null
    "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-k $dir -p $PG_PORT ${settings[*]}" start >/dev/null
    # shellcheck disable=SC2034 # used by the scripts that source this file
    psql=(psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$PG_PORT" -U postgres)
}

pg_stop() {
    local dir=$1
    [[ -d "$dir/data" ]] && "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1
    return 0
}
