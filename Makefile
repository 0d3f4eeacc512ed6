# The two commands of croft: `make demo` runs the lab demo, `make test` runs all tests.
# Both install what is missing first (scripts/setup.sh), and are quick when nothing is.
.PHONY: setup build test test-unit test-rust demo demo-down clean deb

setup:
	@bash scripts/setup.sh

build: setup

# vitest (vitest.config.ts) runs the tests from their TypeScript sources, in three projects run one
# after the other: unit, sim, then integration, whose files run one at a time (they build labs with
# real daemons on a 2-core machine). What the tests start as separate programs (bin/croft.js, the
# daemons, fixtures importing dist/...) runs compiled: setup builds it first.

# umask 022 (root's usual): croft refuses config files, scripts and folders writable by group or
# others (src/config/perms.ts), and the tests create theirs with the default modes.
VITEST = umask 022 && npx --no-install vitest run --reporter=verbose

test: setup test-rust
	$(VITEST) --project unit
	$(VITEST) --project sim
	$(VITEST) --project integration

test-rust:
	cargo test --quiet --workspace --exclude croft-napi

test-unit: setup
	$(VITEST) --project unit
	$(VITEST) --project sim

# The Debian package croft_<version>_amd64.deb (scripts/build-deb.sh): from what setup built.
deb: setup
	@bash scripts/build-deb.sh

demo: setup
	node bin/croft.js demo

demo-down:
	node bin/croft.js lab down --name demo

clean:
	rm -rf dist target native/*.node
