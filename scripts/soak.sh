#!/usr/bin/env bash
# make soak [QUICK=1] [SOAK_ARGS='--seed 42 ...']: build outbox-relay and
# outbox-soak, then run the chaos soak on a throwaway cluster of its own.
# Report and relay logs: target/soak/<time>-seed<seed>/.
#
#   default  1,000,000 messages over 20 minutes (about 22 minutes in all)
#   QUICK=1  20,000 messages over 90 seconds (about 2 minutes), the CI size
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
cargo build -p outbox_client --bins
cargo build -p outbox_tests --bin outbox-soak

if [[ -n "${QUICK:-}" ]]; then
    defaults=(--messages 20000 --duration 90s)
else
    defaults=(--messages 1000000 --duration 20m)
fi
# Deliberate word splitting: SOAK_ARGS is a command-line fragment.
read -r -a extra_args <<<"${SOAK_ARGS:-}"
exec target/debug/outbox-soak "${defaults[@]}" --report-dir target/soak "${extra_args[@]}"
