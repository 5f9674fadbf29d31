# ginit's entry points. Plain `cargo build`, `cargo test` and `cargo install --path .` work as
# usual (dynamically linked); the targets here build the static binary. The static flag is
# given as RUSTFLAGS together with an explicit `--target`: with `--target`, cargo keeps
# RUSTFLAGS away from build scripts and proc-macros (serde_derive), which cannot be linked
# statically. Never put the flag in .cargo/config.toml for the host triple: plain `cargo
# build` would then apply it to proc-macros too, and fail.
HOST := $(shell rustc -vV | sed -n 's/^host: //p')
# `-z pack-relative-relocs` (DT_RELR, binutils >= 2.38, glibc >= 2.36) packs the static-pie's
# relative relocations: about 50 KiB less of ginit, with its own code still placed at a random
# address (ASLR); glibc's static start-up code applies them.
# The source paths of dependencies that panic messages carry are written from /cargo, not from
# this machine's cargo home, so the binary (and its size, which CI checks) is the same
# wherever it is built.
CARGO_HOME ?= $(HOME)/.cargo
STATIC := RUSTFLAGS="$(RUSTFLAGS) -C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs --remap-path-prefix=$(CARGO_HOME)=/cargo"
RELEASE := target/$(HOST)/release/ginit

.PHONY: demo demo-pid1 test release lint bench fuzz soak
.DEFAULT_GOAL := demo

# The static, size-tuned binary: target/<host>/release/ginit
release:
	$(STATIC) cargo build --release --target $(HOST)

# The main job: ginit as PID 1 of a fresh PID namespace supervising the Gin example through
# two zero-downtime reloads under load (demo/run.sh; installs what it needs first).
demo: release
	tests/deps.sh demo
	demo/run.sh $(RELEASE)

# PID-1 duties alone: a careless entrypoint's orphans, a daemon left behind, its exit status.
demo-pid1: release
	demo/pid1.sh $(RELEASE)

# The whole test suite: unit tests and the integration tests that drive the real binary
# (installing the Debian packages they need first, see tests/deps.sh), on static binaries.
test:
	tests/deps.sh
	$(STATIC) cargo test --target $(HOST)

lint:
	cargo fmt --all -- --check
	$(STATIC) cargo clippy --target $(HOST) --all-targets -- -D warnings

# Side-by-side figures: tini, dumb-init and catatonit (pid1.py); supervisord, runit, s6 and
# PM2 (supervisors.py); the control plane beside PM2's CLI (control.py); the metrics endpoint's
# scrape latency and idle wake-ups (metrics.py). Installs the peers.
HELPER := target/$(HOST)/release/ginit-test-helper
bench: release
	$(STATIC) cargo build --release --target $(HOST) --bin ginit-test-helper
	python3 tests/bench/pid1.py --ginit $(RELEASE) --helper $(HELPER)
	python3 tests/bench/supervisors.py --ginit $(RELEASE)
	python3 tests/bench/control.py --ginit $(RELEASE) --helper $(HELPER) --pm2 /tmp/ginit-bench-pm2/node_modules/pm2/bin/pm2
	python3 tests/bench/metrics.py --ginit $(RELEASE) --helper $(HELPER)
	python3 tests/bench/observe.py --ginit $(RELEASE) --helper $(HELPER) $(if $(BASELINE),--baseline $(BASELINE))

# 10,000 restarts and 1 GiB of output through ginit as PID 1, with its fds, memory and CPU
# before and after (tests/bench/soak.py; a few minutes).
soak: release
	$(STATIC) cargo build --release --target $(HOST) --bin ginit-test-helper
	python3 tests/bench/soak.py --ginit $(RELEASE) --helper $(HELPER)

# The cargo-fuzz targets (fuzz/, libFuzzer on nightly), each for FUZZ_SECONDS in turn. New
# inputs go to fuzz/corpus/NAME/; a crash stops only its own target (left in
# fuzz/artifacts/NAME/), the others still run, and the make fails at the end naming it. Copy
# a crash to fuzz/regressions/NAME/ under a name that says what it is: `cargo test` replays
# both directories on stable (tests/fuzz_corpus.rs). NAME:MAX_LEN, each as large as the
# input ginit accepts from that source.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := config:65536 control_request:65536 notify:4096 units:256 schedule:256 inotify:8192 glob:1024 env_file:65536 words:4096 \
	http_response:4096 passwd:16384 proc_stat:1024 http_request:4097
fuzz:
	cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz
	@failed=; for t in $(FUZZ_TARGETS); do \
		echo "== fuzz $${t%%:*} for $(FUZZ_SECONDS)s"; \
		cargo +nightly fuzz run -a $${t%%:*} -- -max_total_time=$(FUZZ_SECONDS) \
			-rss_limit_mb=1024 -timeout=10 -max_len=$${t#*:} || failed="$$failed $${t%%:*}"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: crashes in:$$failed (inputs in fuzz/artifacts/)"; exit 1; fi
