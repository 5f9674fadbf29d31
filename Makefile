# ginit's entry points. The host triple is passed to cargo explicitly so that
# .cargo/config.toml links the binaries statically (crt-static) without touching
# build scripts or proc-macros.
HOST := $(shell rustc -vV | sed -n 's/^host: //p')
RELEASE := target/$(HOST)/release/ginit

.PHONY: demo test release lint bench
.DEFAULT_GOAL := demo

# The static, size-tuned binary: target/<host>/release/ginit
release:
	cargo build --release --target $(HOST)

# ginit as PID 1 of a fresh PID namespace, running the demo program.
demo: release
	demo/run.sh $(RELEASE)

# The whole test suite: unit tests and the integration tests that drive the real binary
# (installing the Debian packages they need first, see tests/deps.sh).
test:
	tests/deps.sh
	cargo test --target $(HOST)

lint:
	cargo fmt --all -- --check
	cargo clippy --target $(HOST) --all-targets -- -D warnings

# Side-by-side figures: tini, dumb-init and catatonit (pid1.py); supervisord, runit, s6 and
# PM2 (supervisors.py); the control plane beside PM2's CLI (control.py). Installs the peers.
HELPER := target/$(HOST)/release/ginit-test-helper
bench: release
	cargo build --release --target $(HOST) --bin ginit-test-helper
	python3 tests/bench/pid1.py --ginit $(RELEASE) --helper $(HELPER)
	python3 tests/bench/supervisors.py --ginit $(RELEASE)
	python3 tests/bench/control.py --ginit $(RELEASE) --helper $(HELPER) --pm2 /tmp/ginit-bench-pm2/node_modules/pm2/bin/pm2
