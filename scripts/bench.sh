#!/usr/bin/env bash
# make bench [QUICK=1]: build (release) what is measured, then run
# outbox-bench, which starts its own throwaway cluster and writes
# target/bench/report-<time>.md and .json. Expects scripts/setup.sh to have
# run (it installs PgQ); `make test` before it leaves the builds up to date.
set -euo pipefail

cd "$(dirname "$0")/.."

PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config

if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi

echo "bench: installing the release build of the extension"
(cd outbox_ext && cargo pgrx install --release --pg-config "$PG_CONFIG") >/dev/null
echo "bench: building outbox-bench"
cargo build --release -q -p outbox_bench

args=(--out target/bench)
if [[ -n "${QUICK:-}" && "${QUICK}" != 0 ]]; then
    args+=(--quick)
fi
exec target/release/outbox-bench "${args[@]}"
