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

# The whole test suite: unit tests and the integration tests that drive the real binary.
test:
	cargo test --target $(HOST)

lint:
	cargo fmt --all -- --check
	cargo clippy --target $(HOST) --all-targets -- -D warnings

# Side-by-side figures with tini, dumb-init and catatonit (installs them with apt-get).
bench: release
	cargo build --release --target $(HOST) --bin ginit-test-helper
	python3 tests/bench/pid1.py --ginit $(RELEASE) --helper target/$(HOST)/release/ginit-test-helper
