# The two commands a newcomer runs (README.md): `make demo` and `make test`.
# Both first install what is missing (scripts/ensure-deps.sh).

CARGO ?= cargo

.PHONY: demo test deps lint bench

deps:
	@scripts/ensure-deps.sh

# A first look: check the shipped example config, then judge two statements for a
# read-only reporting agent (one allowed, one held for approval).
demo: deps
	$(CARGO) build --quiet --bin sluice
	./target/debug/sluice -c examples/sluice.yaml policy check
	./target/debug/sluice -c examples/sluice.yaml policy explain --connection orders \
	  --subject agent-7 --roles Reports.Reader --sql 'SELECT id, email FROM customers'
	-./target/debug/sluice -c examples/sluice.yaml policy explain --connection orders \
	  --subject agent-7 --roles Reports.Reader --sql 'DELETE FROM orders WHERE id = 1'

test: deps
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench: deps
	bench/run.sh
