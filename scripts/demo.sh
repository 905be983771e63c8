#!/usr/bin/env bash
# make demo: a throwaway PostgreSQL, the outbox extension, a producer that
# writes orders and their events in one transaction (two of them roll back),
# and outbox-relay publishing the events to stdout. Everything is stopped and
# removed at the end.
#
# Runs twice: first to build, then again under outbox-pg (the test harness's
# throwaway cluster, which sets PGHOST, PGPORT, PGUSER and OUTBOX_PG_DIR and
# removes the cluster when this script ends).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [[ -z "${OUTBOX_PG_DIR:-}" ]]; then
    say "building the extension, outbox-relay and outbox-pg"
    if ! out=$(cd outbox_ext && cargo pgrx install --pg-config /usr/lib/postgresql/15/bin/pg_config 2>&1); then
        printf '%s\n' "$out" >&2
        exit 1
    fi
    cargo build -q -p outbox_relay --bin outbox-relay
    cargo build -q -p outbox_tests --bin outbox-pg
    say "starting a throwaway PostgreSQL 15"
    exec target/debug/outbox-pg -- bash "$0" "$@"
fi
relay_bin=target/debug/outbox-relay
psql=(psql -X -q -v ON_ERROR_STOP=1)

dir=$(mktemp -d /tmp/outbox-demo-XXXXXX)
relay_pid=
cleanup() {
    [[ -n "$relay_pid" ]] && kill "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

echo "cluster in $OUTBOX_PG_DIR"
"${psql[@]}" -d postgres -c "CREATE DATABASE shop"
"${psql[@]}" -d shop <<'SQL'
CREATE EXTENSION outbox;
CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, total numeric NOT NULL, status text NOT NULL);
SQL

say "producing: 8 orders, each with its events in the same transaction; orders 3 and 7 roll back"
for id in 1 2 3 4 5 6 7 8; do
    end=COMMIT
    [[ $id == 3 || $id == 7 ]] && end=ROLLBACK
    printf '  order %d: %s\n' "$id" "$end"
    "${psql[@]}" -d shop -o /dev/null <<SQL
BEGIN;
INSERT INTO orders VALUES ($id, 'customer-$((id % 3))', $id * 10.5, 'placed');
SELECT outbox.enqueue('orders.created', jsonb_build_object('order_id', $id, 'total', $id * 10.5), key => 'order-$id');
UPDATE orders SET status = 'paid' WHERE id = $id;
SELECT outbox.enqueue('orders.paid', jsonb_build_object('order_id', $id), key => 'order-$id',
                      headers => '{"source": "demo"}');
$end;
SQL
done
"${psql[@]}" -d shop -c "SELECT topic, ready FROM outbox.stats()"

say "relaying with: outbox-relay --publisher stdout"
"$relay_bin" --database-url "host=$PGHOST port=$PGPORT user=postgres dbname=shop" \
    --publisher stdout --poll-interval 1s >"$dir/published.jsonl" 2>"$dir/relay.log" &
relay_pid=$!
for _ in $(seq 1 300); do
    [[ $(wc -l <"$dir/published.jsonl") -ge 12 ]] && break
    kill -0 "$relay_pid" 2>/dev/null || { cat "$dir/relay.log" >&2; exit 1; }
    sleep 0.1
done
cat "$dir/published.jsonl"

say "one more order while the relay sleeps: the doorbell wakes it"
# Asleep = holding the doorbell gate (see sql/doorbell.sql).
until [[ $("${psql[@]}" -d shop -Atc "SELECT count(*) FROM pg_locks WHERE relation = 'outbox.doorbell_gate'::regclass AND mode = 'ShareLock'") == 1 ]]; do
    sleep 0.1
done
"${psql[@]}" -d shop -o /dev/null <<'SQL'
BEGIN;
INSERT INTO orders VALUES (9, 'customer-0', 99.5, 'placed');
SELECT outbox.enqueue('orders.created', '{"order_id": 9, "total": 99.5}', key => 'order-9');
COMMIT;
SQL
for _ in $(seq 1 100); do
    [[ $(wc -l <"$dir/published.jsonl") -ge 13 ]] && break
    sleep 0.1
done
tail -n 1 "$dir/published.jsonl"

kill -TERM "$relay_pid"
wait "$relay_pid" || true
relay_pid=

say "summary"
python3 - "$dir/published.jsonl" <<'PY'
import json, sys
events = [json.loads(line) for line in open(sys.argv[1])]
orders = sorted({e["payload"]["order_id"] for e in events})
print(f"{len(events)} events published for orders {orders}")
print("rolled-back orders 3 and 7:", "absent" if not {3, 7} & set(orders) else "PRESENT (bug!)")
per_key = {}
for e in events:
    per_key.setdefault(e["key"], []).append(e["topic"])
ok = all(t == ["orders.created", "orders.paid"][: len(t)] for t in per_key.values())
print("per-key order (created before paid):", "held" if ok else "BROKEN")
PY
"${psql[@]}" -d shop -c "SELECT topic, ready, leased, dead FROM outbox.stats()"
grep -E "relay (started|stopped)" "$dir/relay.log" | sed 's/^/relay log: /'
