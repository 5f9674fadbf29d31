# ginit's entry points. Plain `cargo build`, `cargo test` and `cargo install --path .` work as
# usual (dynamically linked); the targets here build the static binary. The static flag is
# given as RUSTFLAGS together with an explicit `--target`: with `--target`, cargo keeps
# RUSTFLAGS away from build scripts and proc-macros (serde_derive), which cannot be linked
# statically. Never put the flag in .cargo/config.toml for the host triple: plain `cargo
# build` would then apply it to proc-macros too, and fail.
HOST := $(shell rustc -vV | sed -n 's/^host: //p')
STATIC := RUSTFLAGS="$(RUSTFLAGS) -C target-feature=+crt-static"
RELEASE := target/$(HOST)/release/ginit

.PHONY: demo test release lint bench fuzz
.DEFAULT_GOAL := demo

# The static, size-tuned binary: target/<host>/release/ginit
release:
	$(STATIC) cargo build --release --target $(HOST)

# ginit as PID 1 of a fresh PID namespace, running the demo program.
demo: release
	demo/run.sh $(RELEASE)

# The whole test suite: unit tests and the integration tests that drive the real binary
# (installing the Debian packages they need first, see tests/deps.sh), on static binaries.
test:
	tests/deps.sh
	$(STATIC) cargo test --target $(HOST)

lint:
	cargo fmt --all -- --check
	$(STATIC) cargo clippy --target $(HOST) --all-targets -- -D warnings

# Side-by-side figures: tini, dumb-init and catatonit (pid1.py); supervisord, runit, s6 and
# PM2 (supervisors.py); the control plane beside PM2's CLI (control.py). Installs the peers.
HELPER := target/$(HOST)/release/ginit-test-helper
bench: release
	$(STATIC) cargo build --release --target $(HOST) --bin ginit-test-helper
	python3 tests/bench/pid1.py --ginit $(RELEASE) --helper $(HELPER)
	python3 tests/bench/supervisors.py --ginit $(RELEASE)
	python3 tests/bench/control.py --ginit $(RELEASE) --helper $(HELPER) --pm2 /tmp/ginit-bench-pm2/node_modules/pm2/bin/pm2
