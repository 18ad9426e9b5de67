# The two commands a newcomer needs are `make demo` and `make test`; see README.md.
.PHONY: build test demo demo-clean install uninstall

build: node_modules
	npm run --silent build

node_modules: package-lock.json
	npm ci --no-audit --no-fund
	@touch node_modules

test:
	bash test/run.sh

demo: build
	bash test/install-deps.sh
	node --import tsx test/lab/demo.ts

demo-clean: node_modules
	node --import tsx test/lab/demo.ts clean
