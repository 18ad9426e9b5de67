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

# `make install` puts the program in $(LIBDIR) (production node modules only), a wrapper at
# $(BINDIR)/tunnelwarden, the unit at $(UNITDIR), and /etc/tunnelwarden/ (0700) with an example
# desired state. It starts nothing: enable the service yourself (see README.md). DESTDIR
# prefixes every path, for packaging and tests. `make uninstall` removes exactly those files;
# your desired.json, secrets and /var/lib/tunnelwarden stay.
DESTDIR ?=
LIBDIR ?= /usr/local/lib/tunnelwarden
BINDIR ?= /usr/local/bin
UNITDIR ?= /etc/systemd/system
CONFDIR ?= /etc/tunnelwarden
NODE ?= $(shell command -v node)

install: build
	@test -n "$(NODE)" || { echo "install: node not found on PATH" >&2; exit 1; }
	install -d -m 0755 $(DESTDIR)$(LIBDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR)
	rm -rf $(DESTDIR)$(LIBDIR)/dist
	install -d -m 0755 $(DESTDIR)$(LIBDIR)/dist
	cp -R dist/agent $(DESTDIR)$(LIBDIR)/dist/agent
	install -m 0644 package.json package-lock.json README.md $(DESTDIR)$(LIBDIR)/
	cd $(DESTDIR)$(LIBDIR) && npm ci --omit=dev --prefer-offline --no-audit --no-fund --ignore-scripts --loglevel=error
	printf '#!/bin/sh\nexec %s %s/dist/agent/cli/bin.js "$$@"\n' "$(NODE)" "$(LIBDIR)" > $(DESTDIR)$(BINDIR)/tunnelwarden
	chmod 0755 $(DESTDIR)$(BINDIR)/tunnelwarden
	sed -e 's|/usr/bin/node |$(NODE) |' -e 's|/usr/local/lib/tunnelwarden/|$(LIBDIR)/|g' \
		-e 's|/etc/tunnelwarden/|$(CONFDIR)/|g' systemd/tunnelwarden.service > $(DESTDIR)$(UNITDIR)/tunnelwarden.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/tunnelwarden.service
	install -d -m 0700 $(DESTDIR)$(CONFDIR)
	install -m 0600 config/site-a.json $(DESTDIR)$(CONFDIR)/desired.example.json
	install -m 0600 config/desired-state.schema.json $(DESTDIR)$(CONFDIR)/desired-state.schema.json
	@echo "installed. Next: write $(CONFDIR)/desired.json (see desired.example.json), then"
	@echo "  systemctl daemon-reload && systemctl enable --now tunnelwarden"

uninstall:
	rm -f $(DESTDIR)$(UNITDIR)/tunnelwarden.service $(DESTDIR)$(BINDIR)/tunnelwarden
	rm -rf $(DESTDIR)$(LIBDIR)
	rm -f $(DESTDIR)$(CONFDIR)/desired.example.json $(DESTDIR)$(CONFDIR)/desired-state.schema.json
	-rmdir $(DESTDIR)$(CONFDIR) 2>/dev/null
	@echo "uninstalled. If the service was enabled: systemctl disable --now tunnelwarden; systemctl daemon-reload"
