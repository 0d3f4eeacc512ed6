# The two commands of croft: `make demo` runs the lab demo, `make test` runs all tests.
# Both install what is missing first (scripts/setup.sh), and are quick when nothing is.
.PHONY: setup build test test-unit test-rust demo demo-down clean deb

setup:
	@bash scripts/setup.sh

build: setup

# Node 20's test runner takes no globs: find lists the files. One file at a time, since
# integration tests build labs with real daemons on a 2-core machine.

# umask 022 (root's usual): croft refuses config files, scripts and folders writable by group or
# others (src/config/perms.ts), and the tests create theirs with the default modes.
test: setup test-rust
	umask 022 && node --test --test-concurrency=1 --test-reporter=spec $$(find dist/test -name '*.test.js' | sort)

test-rust:
	cargo test --quiet --workspace --exclude croft-napi

test-unit: setup
	umask 022 && node --test --test-reporter=spec $$(find dist/test/unit dist/test/sim -name '*.test.js' | sort)

# The Debian package croft_<version>_amd64.deb (scripts/build-deb.sh): from what setup built.
deb: setup
	@bash scripts/build-deb.sh

demo: setup
	node bin/croft.js demo

demo-down:
	node bin/croft.js lab down --name demo

clean:
	rm -rf dist target native/*.node
