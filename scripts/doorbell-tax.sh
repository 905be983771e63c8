#!/usr/bin/env bash
# What does the doorbell trigger cost producers? Runs outbox.enqueue() from
# pgbench clients against a throwaway cluster (synchronous_commit=on, fsync
# on), in interleaved rounds of:
#   off       - doorbell trigger disabled (the baseline)
#   on        - doorbell installed, no relay asleep (the normal busy case)
#   asleep    - doorbell installed, a relay armed and asleep (every commit rings)
#   row-notify- doorbell disabled, a naive per-row NOTIFY trigger instead
# and prints the median tx/s of each and their ratio to "off".
#
# Usage: scripts/doorbell-tax.sh [clients] [seconds-per-run] [rounds]
# Needs the extension installed (make test does that).
set -euo pipefail

clients=${1:-16}
seconds=${2:-10}
rounds=${3:-5}
bin=/usr/lib/postgresql/15/bin
root=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z "${OUTBOX_PG_DIR:-}" ]]; then
    # Again under outbox-pg: the test harness's throwaway cluster, durable
    # (fsync on), which sets PGHOST/PGPORT/PGUSER and is removed at the end.
    (cd "$root" && cargo build -q -p outbox_tests --bin outbox-pg)
    exec "$root/target/debug/outbox-pg" --durable --setting 'max_connections = 100' \
        --setting 'synchronous_commit = on' --setting 'shared_buffers = 256MB' \
        -- bash "$0" "$@"
fi
psql=(psql -X -q -v ON_ERROR_STOP=1)
dir=$(mktemp -d /tmp/outbox-doorbell-XXXXXX)
chmod 755 "$dir"
sleeper=
cleanup() {
    if [[ -n "${sleeper:-}" ]]; then kill "$sleeper" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT

"${psql[@]}" -d postgres -c "CREATE DATABASE bench"
"${psql[@]}" -d bench <<'SQL'
CREATE EXTENSION outbox;
CREATE FUNCTION public.row_notify() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN PERFORM pg_notify('outbox_doorbell', ''); RETURN NULL; END $$;
CREATE TRIGGER row_notify AFTER INSERT ON outbox.log
    FOR EACH ROW EXECUTE FUNCTION public.row_notify();
ALTER TABLE outbox.log DISABLE TRIGGER row_notify;
SQL
echo "SELECT outbox.enqueue('bench', '{\"order_id\": 42, \"total\": \"99.50\"}');" > "$dir/enqueue.sql"
chmod a+r "$dir/enqueue.sql"

# Sessions holding the doorbell gate: armed relays.
gate_holders="SELECT count(*) FROM pg_locks WHERE relation = 'outbox.doorbell_gate'::regclass AND mode = 'ShareLock' AND granted"

setup_mode() {
    local mode=$1
    local doorbell=ENABLE row=DISABLE
    case $mode in
        off) doorbell=DISABLE ;;
        row-notify) doorbell=DISABLE row=ENABLE ;;
    esac
    "${psql[@]}" -d bench -c "ALTER TABLE outbox.log $doorbell TRIGGER doorbell; ALTER TABLE outbox.log $row TRIGGER row_notify; TRUNCATE outbox.log" \
        -c "VACUUM ANALYZE outbox.log" -c "CHECKPOINT"
    if [[ $mode == asleep ]]; then
        # A relay that LISTENs, arms and sleeps for the whole run.
        "${psql[@]}" -d bench -c "LISTEN outbox_doorbell" -c "SELECT outbox.doorbell_arm()" \
            -c "SELECT pg_sleep(100000)" >/dev/null 2>&1 &
        sleeper=$!
        until [[ $("${psql[@]}" -d bench -Atc "$gate_holders") == 1 ]]; do
            sleep 0.1
        done
    fi
}

teardown_mode() {
    if [[ -n "${sleeper:-}" ]]; then
        # Killing psql does not end its backend (it is inside pg_sleep and
        # would keep the doorbell armed): terminate the backend itself.
        "${psql[@]}" -d bench -Atc "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE relation = 'outbox.doorbell_gate'::regclass" >/dev/null
        wait "$sleeper" 2>/dev/null || true
        sleeper=
        until [[ $("${psql[@]}" -d bench -Atc "$gate_holders") == 0 ]]; do
            sleep 0.1
        done
    fi
}

declare -A results
modes=(off on asleep row-notify)
echo "doorbell tax: $clients clients, ${seconds}s per run, $rounds rounds, modes: ${modes[*]}" >&2
for ((r = 1; r <= rounds; r++)); do
    # Rotate the order each round so drift on a noisy machine spreads evenly.
    for ((i = 0; i < ${#modes[@]}; i++)); do
        mode=${modes[$(((i + r) % ${#modes[@]}))]}
        setup_mode "$mode"
        tps=$("$bin/pgbench" -n -c "$clients" -j 2 -T "$seconds" \
            -f "$dir/enqueue.sql" bench 2>&1 | awk '/^tps = / {print $3; exit}')
        teardown_mode
        results[$mode]="${results[$mode]:-} $tps"
        printf 'round %d %-10s %10.0f tx/s\n' "$r" "$mode" "$tps" >&2
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
base=$(echo "${results[off]}" | median)
printf '\n| mode | median tx/s | ratio to trigger off | runs |\n| --- | ---: | ---: | --- |\n'
for mode in "${modes[@]}"; do
    m=$(echo "${results[$mode]}" | median)
    ratio=$(awk -v m="$m" -v b="$base" 'BEGIN { printf "%.3f", m / b }')
    printf '| %s | %.0f | %s | %s |\n' "$mode" "$m" "$ratio" "$(echo "${results[$mode]}" | xargs printf '%.0f ')"
done
