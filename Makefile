# The two commands a newcomer runs (README.md): `make demo` and `make test`.
# Both first install what is missing (scripts/ensure-deps.sh).

CARGO ?= cargo

.PHONY: demo test fuzz-short deps lint bench

deps:
	@scripts/ensure-deps.sh

# A first look: a throw-away PostgreSQL with sample data, the gateway in front of it,
# and copy-paste commands for two agents. Ctrl-C stops it.
demo: deps
	$(CARGO) run --quiet --bin sluice -- demo

FUZZ_SECONDS ?= 5
FUZZ_TARGET_DIR ?= $(HOME)/.cache/sluice/fuzz-target

# The Kubernetes suite needs a real kube-apiserver: built once from Debian's source
# package and cached outside the repository (scripts/ensure-kube-apiserver.sh).
# Then a short fuzz run: every cargo-fuzz target for FUZZ_SECONDS each, built in a target
# dir cached outside the repository (the sanitizer build of every dependency takes minutes
# cold, seconds warm). The long run is documented in fuzz/README.md.
test: deps
	kube_dir=$$(scripts/ensure-kube-apiserver.sh) && SLUICE_KUBE_DIR="$$kube_dir" $(CARGO) test --workspace
	$(MAKE) --no-print-directory fuzz-short

fuzz-short:
	CARGO_TARGET_DIR="$(FUZZ_TARGET_DIR)" fuzz/run.sh $(FUZZ_SECONDS)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench: deps
	bench/run.sh
