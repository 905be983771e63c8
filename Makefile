# Thin wrapper: all logic lives in scripts/. Run `make` for the target list.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Extra arguments for the final `cargo test`, e.g. make test TEST_ARGS='-- --nocapture'
TEST_ARGS ?=
export TEST_ARGS

.PHONY: help setup test demo bench fmt

help:
	@echo "Targets:"
	@echo "  help   show this list (default)"
	@echo "  setup  install system packages, cargo-pgrx, pgrx init (idempotent)"
	@echo "  test   setup, then fmt check, clippy, pgrx tests, install, cargo test"
	@echo "         (extra cargo test args: TEST_ARGS='...')"
	@echo "  demo   setup, then run scripts/demo.sh"
	@echo "  bench  setup, then run scripts/bench.sh"
	@echo "  fmt    cargo fmt --all"

setup:
	bash scripts/setup.sh

test: setup
	bash scripts/test.sh

demo: setup
	bash scripts/demo.sh

bench: setup
	bash scripts/bench.sh

fmt:
	cargo fmt --all
