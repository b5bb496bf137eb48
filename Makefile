# The two commands of the README: `make demo` runs the main job, `make test` runs the tests.
# Both run the idempotent setup step first (as root).
CARGO ?= cargo
ISOLAB := target/release/isolab

.PHONY: demo test setup build lint

setup:
	bash scripts/setup.sh --guest

build: setup
	$(CARGO) build --release --workspace

demo: build
	$(ISOLAB) container run --rm --timings -- sh -c 'echo "hello from $$(hostname), PID $$$$, kernel $$(uname -r)"; ls /'

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: setup lint
	$(CARGO) test --workspace --release
