# The two commands of croft: `make demo` runs the lab demo, `make test` runs all tests.
# Both install what is missing first (scripts/setup.sh), and are quick when nothing is.
.PHONY: setup build test test-unit test-rust test-integration demo demo-down clean

setup:
	@bash scripts/setup.sh

build: setup

test: setup test-rust
	node --test --test-concurrency=1 --test-reporter=spec 'dist/test/**/*.test.js'

test-rust:
	cargo test --quiet --workspace --exclude croft-napi

test-unit: setup
	node --test --test-reporter=spec 'dist/test/unit/**/*.test.js' 'dist/test/sim/**/*.test.js'

demo: setup
	node bin/croft.js demo

demo-down:
	node bin/croft.js lab down --name demo

clean:
	rm -rf dist target native/*.node
