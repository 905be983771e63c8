#!/usr/bin/env bash
# Full check: formatting, lints, extension tests, install, workspace tests.
# Stops at the first failing step. Expects scripts/setup.sh to have run.
#
# TEST_ARGS (environment, e.g. from `make test TEST_ARGS='-- --nocapture'`) is
# appended to the final `cargo test` command line.
set -euo pipefail

cd "$(dirname "$0")/.."

PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config

if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi

step() { printf '\n== %s ==\n' "$*"; }

# The pgrx crate (package `outbox`) is not a default workspace member: it only
# builds against a PostgreSQL described by ~/.pgrx/config.toml and its test
# binaries only run under cargo-pgrx. So plain cargo commands name the other
# packages explicitly, and the extension gets its own pgrx-aware steps.
PLAIN_PACKAGES=(-p outbox_rules -p outbox_client -p outbox_relay -p outbox_tests -p outbox_bench)

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (client, integration tests)"
cargo clippy "${PLAIN_PACKAGES[@]}" --all-targets -- -D warnings

step "cargo clippy (extension)"
(cd outbox_ext && cargo clippy --all-targets --features pg15 -- -D warnings)

step "cargo pgrx test pg15 (extension unit tests and #[pg_test]s)"
runas=()
if [[ "$(id -u)" -eq 0 ]]; then
    # initdb/postgres refuse to run as root: pgrx starts its test cluster as
    # `postgres` via sudo, and creates the data dir (below this base) as that
    # user itself, so the base must not be a root-owned directory.
    pgrx_pgdata="/tmp/outbox-pgrx-test-$$"
    trap 'rm -rf "$pgrx_pgdata"' EXIT
    runas=(--runas postgres --pgdata "$pgrx_pgdata")
fi
(cd outbox_ext && cargo pgrx test pg15 "${runas[@]}")

step "cargo pgrx install --release (system PostgreSQL 15)"
# Re-installs the normal build over the pg_test build the previous step left in
# the system directories; the integration tests load it from there. Release,
# because that is what ships and what `make bench` measures.
(cd outbox_ext && cargo pgrx install --release --pg-config "$PG_CONFIG")

step "cargo build (outbox-relay and outbox, which the integration tests run)"
# With the OTLP exporter, which tests/it/trace.rs exercises. The feature set
# is the one the next step's `cargo test` unifies to (outbox_tests asks for
# otlp), so that step does not rebuild the binaries differently.
cargo build -p outbox_relay --bins --features otlp

step "cargo test (client, integration tests)"
# Deliberate word splitting: TEST_ARGS is a command-line fragment.
read -r -a extra_args <<<"${TEST_ARGS:-}"
cargo test "${PLAIN_PACKAGES[@]}" "${extra_args[@]}"
cargo test -p outbox-protocol-model --release -- --nocapture # exhaustive protocol model, docs/model/README.md

step "all checks passed"
