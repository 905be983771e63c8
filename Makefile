# Thin wrapper: all logic lives in scripts/. Run `make` for the target list.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Extra arguments for the final `cargo test`, e.g. make test TEST_ARGS='-- --nocapture'
TEST_ARGS ?=
export TEST_ARGS

# Extra outbox-soak arguments, e.g. make soak SOAK_ARGS='--seed 42'
SOAK_ARGS ?=
export SOAK_ARGS

# make bench QUICK=1: the same report from shorter runs (under 3 minutes);
# make soak QUICK=1: the CI-sized soak (about 2 minutes)
QUICK ?=
export QUICK

.PHONY: help setup test demo bench soak doorbell-tax fmt

help:
	@echo "Targets:"
	@echo "  help   show this list (default)"
	@echo "  setup  install system packages, cargo-pgrx, pgrx init (idempotent)"
	@echo "  test   setup, then fmt check, clippy, pgrx tests, install, cargo test"
	@echo "         (extra cargo test args: TEST_ARGS='...')"
	@echo "  demo   setup, then a throwaway PostgreSQL, a producer and outbox-relay end to end"
	@echo "  bench  setup, then outbox vs raw PostgreSQL, PgQ and pgmq on a throwaway"
	@echo "         cluster; report in target/bench/ (QUICK=1: under 3 minutes)"
	@echo "  soak   setup, then the long runs: 2000 model-based sequences, 100k fuzzed"
	@echo "         SQL calls, and the chaos soak (producers and 4 outbox-relays under"
	@echo "         SIGKILL/SIGSTOP, PostgreSQL crashes, cut connections); reports in"
	@echo "         target/soak/ (1M messages; QUICK=1: the CI budgets;"
	@echo "         SOAK_ARGS='--seed N ...' replays or resizes the chaos soak)"
	@echo "  doorbell-tax  measure what the doorbell trigger costs producers"
	@echo "                (needs the extension installed: run make test first)"
	@echo "  fmt    cargo fmt --all"

setup:
	bash scripts/setup.sh

test: setup
	bash scripts/test.sh

demo: setup
	bash scripts/demo.sh

bench: setup
	bash scripts/bench.sh

soak: setup
	bash scripts/soak.sh

doorbell-tax:
	bash scripts/doorbell-tax.sh

fmt:
	cargo fmt --all
