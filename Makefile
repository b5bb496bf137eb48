# The two commands of the README: `make demo` runs the main job, `make test` runs the tests.
# Both run the idempotent setup step first (as root): packages, then the guest kernel (cached).
CARGO ?= cargo
# The binary users run: static, whole-program optimised (Cargo.toml's `dist` profile). The
# explicit --target keeps crt-static off the build scripts and proc-macros, which must stay
# dynamic host libraries.
TARGET := x86_64-unknown-linux-gnu
ISOLAB := target/$(TARGET)/dist/isolab
# The guest init is a separate static build (its own workspace), kept out of the main target.
GUEST_INIT := CARGO_TARGET_DIR=$(CURDIR)/target/guest-init $(CARGO)

.PHONY: demo test setup build dist lint

setup:
	bash scripts/setup.sh --guest

build: setup
	$(CARGO) build --release --workspace

dist: setup
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --profile dist --target $(TARGET) -p isolab-cli --bin isolab -p isolab-runtime --bin isolab-runtime
	@echo "isolab: $(ISOLAB) (and isolab-runtime, the OCI runtime command line for podman, beside it)"

demo: dist
	$(ISOLAB) container run --rm --timings -- sh -c 'echo "hello from $$(hostname): PID $$$$, $$(ls /proc | grep -c "^[0-9]") processes visible"'
	$(ISOLAB) vm run --guest stub:true --timings
	mkdir -p results
	$(ISOLAB) bench --quick --out results/isolab-bench.json --csv results/isolab-bench.csv
	$(ISOLAB) report results/isolab-bench.json --out results/report

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cd guests/init && $(GUEST_INIT) fmt -- --check && $(GUEST_INIT) clippy --all-targets -- -D warnings

test: setup lint
	$(CARGO) test --workspace --release
	cd guests/init && $(GUEST_INIT) test --release
