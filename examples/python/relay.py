#!/usr/bin/env python3
"""The outbox from Python with nothing but psycopg2: a producer enqueues in its
own transaction, a relay claims, "publishes" (prints) and completes.

    python3 examples/python/relay.py "host=/tmp dbname=app"

The database must have `CREATE EXTENSION outbox` (and this role the
privileges from outbox.grant_producer / outbox.grant_relay).
"""
import json
import sys

import psycopg2
import psycopg2.extras


def produce(conn, order_id):
    # The business row and its event commit together, or not at all.
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT outbox.enqueue(%s, %s::jsonb, key => %s)",
            ("orders.created", json.dumps({"order_id": order_id}), f"order-{order_id}"),
        )
        return cur.fetchone()[0]


def relay_once(conn, owner):
    """Claim one batch, publish it, complete what was published."""
    with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute("SELECT * FROM outbox.claim(%s, 100, '30 seconds')", (owner,))
        batch = cur.fetchall()
    if not batch:
        return 0
    for message in batch:
        # A real relay publishes to its broker here and waits for the ack.
        print(json.dumps({"id": message["id"], "topic": message["topic"], "key": message["key"],
                          "payload": message["payload"], "attempt": message["attempt"]}))
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT outbox.complete_batch(%s::bigint[], %s::uuid)",
            ([m["id"] for m in batch], batch[0]["lease_token"]),
        )
        completed = cur.fetchone()[0]
    if completed != len(batch):
        # Our lease expired and another relay took some messages: they are its now.
        print(f"{len(batch) - completed} messages were re-claimed by another relay", file=sys.stderr)
    return completed


def main():
    dsn = sys.argv[1] if len(sys.argv) > 1 else ""
    conn = psycopg2.connect(dsn)
    ids = [produce(conn, order_id) for order_id in (1, 2, 3)]
    # A rolled-back producer: its message never existed.
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT outbox.enqueue('orders.created', '{\"order_id\": 666}')")
            raise RuntimeError("payment declined")
    except RuntimeError:
        pass
    total = 0
    while (n := relay_once(conn, "python-relay")) > 0:
        total += n
    print(f"enqueued {len(ids)}, published and completed {total}", file=sys.stderr)
    return 0 if total == len(ids) else 1


if __name__ == "__main__":
    sys.exit(main())
