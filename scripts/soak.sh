#!/usr/bin/env bash
# make soak [QUICK=1] [SOAK_ARGS='--seed 42 ...']: the long runs of the three
# randomised suites that make test runs on quick budgets:
#
#   1. the model-based suite (tests/model): OUTBOX_MODEL_CASES sequences
#      (default 2000; QUICK=1: 200, the CI budget);
#   2. the SQL-surface fuzzer (tests/fuzz): OUTBOX_FUZZ_CALLS calls
#      (default 100000; QUICK=1: 3000);
#   3. the chaos soak (outbox-soak) on a throwaway cluster of its own:
#      1,000,000 messages over 20 minutes (QUICK=1: 20,000 over 90 seconds).
#
# Each prints its seed; OUTBOX_MODEL_SEED, OUTBOX_FUZZ_SEED and
# SOAK_ARGS='--seed N' replay them. Reports and logs: target/soak/.
#
# SOAK_ARGS is appended to outbox-soak's command line (it wins over the
# defaults above): --messages, --producers, --relays, --duration, --seed,
# --keys, --report-dir; `target/debug/outbox-soak --help` explains each.
# Expects scripts/setup.sh to have run and the extension to be installed
# (make test installs it).
set -euo pipefail

cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi

PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
if [[ ! -f "$("$PG_CONFIG" --sharedir)/extension/outbox.control" ]]; then
    echo "soak: the outbox extension is not installed; run make test (or cargo pgrx install) first" >&2
    exit 2
fi

echo "soak: building outbox-relay and outbox-soak"
cargo build -p outbox_relay --bins
cargo build -p outbox_tests --bin outbox-soak

mkdir -p target/soak
if [[ -n "${QUICK:-}" ]]; then
    : "${OUTBOX_MODEL_CASES:=200}" "${OUTBOX_FUZZ_CALLS:=3000}"
else
    : "${OUTBOX_MODEL_CASES:=2000}" "${OUTBOX_FUZZ_CALLS:=100000}"
fi
export OUTBOX_MODEL_CASES OUTBOX_FUZZ_CALLS
stamp=$(date -u +%Y%m%dT%H%M%SZ)
echo "soak: model-based suite, $OUTBOX_MODEL_CASES sequences (log: target/soak/model-$stamp.log)"
cargo test -p outbox_tests --test model -- --nocapture 2>&1 | tee "target/soak/model-$stamp.log"
echo "soak: SQL fuzzer, $OUTBOX_FUZZ_CALLS calls (log: target/soak/fuzz-$stamp.log)"
cargo test -p outbox_tests --test fuzz -- --nocapture 2>&1 | tee "target/soak/fuzz-$stamp.log"
echo "soak: chaos soak"

if [[ -n "${QUICK:-}" ]]; then
    defaults=(--messages 20000 --duration 90s)
else
    defaults=(--messages 1000000 --duration 20m)
fi
# Deliberate word splitting: SOAK_ARGS is a command-line fragment.
read -r -a extra_args <<<"${SOAK_ARGS:-}"
exec target/debug/outbox-soak "${defaults[@]}" --report-dir target/soak "${extra_args[@]}"
