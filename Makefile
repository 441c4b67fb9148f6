# The two commands: `make run` and `make test`. Both do all the set-up they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
STACK := deployments/local/stack.sh
RUN_DIR ?= .data
WORKER_PORT ?= 8080
WORKERS_SCRIPT := deployments/local/workers.sh
# How many workers `make run` starts: worker i listens on WORKER_PORT + i.
WORKERS ?= 1
# `make run`'s in-app channel is real (its inbox is PostgreSQL, no outside credentials);
# email, SMS and push go to the recording sink unless their providers are configured
# (NOTIFYHUB_EMAIL_PROVIDERS=ses ..., see docs/configuration.md), since a sunk channel
# cannot have providers.
comma := ,
empty :=
space := $(empty) $(empty)
SINK_DEFAULT := $(if $(NOTIFYHUB_EMAIL_PROVIDERS),,email) $(if $(NOTIFYHUB_SMS_PROVIDERS),,sms) \
  $(if $(NOTIFYHUB_PUSH_PROVIDERS),,push)
export NOTIFYHUB_SINK_CHANNELS ?= $(subst $(space),$(comma),$(strip $(SINK_DEFAULT)))
# The demo recipient: the printed curl sends to it and the printed inbox link shows its inbox.
DEMO_RECIPIENT := user-1
export NOTIFYHUB_WEB_PORT ?= $(WORKER_PORT)

.PHONY: install stack run stop test unit test-faults lint clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "NotifyHub needs Python 3.11 or newer ($(PYTHON) is older)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

stack: install
	$(STACK) up

# Logs are readable text in a terminal here; deployments keep the JSON default.
# The workers' secrets are random, made once in $(RUN_DIR)/secrets.env (workers.sh).
# The inbox link carries a fresh inbox token, asked of the worker with the new API key
# (POST /api/v1/ws-token, as a tenant's backend does): the browser never holds the key.
run: stack
	@eval "$$($(STACK) env | sed 's/^/export /')"; \
	$(VENV)/bin/notifyhub migrate; \
	NOTIFYHUB_LOG_FORMAT=$${NOTIFYHUB_LOG_FORMAT:-text} RUN_DIR=$(RUN_DIR) NOTIFYHUB=$(VENV)/bin/notifyhub \
	  $(WORKERS_SCRIPT) start $(WORKERS) || exit 1; \
	key=$$($(VENV)/bin/notifyhub seed --quiet) || exit 1; \
	inbox=$$($(VENV)/bin/notifyhub inbox-url --api-key "$$key" --recipient $(DEMO_RECIPIENT)) || exit 1; \
	echo; \
	echo "NotifyHub is running on http://127.0.0.1:$(WORKER_PORT)  ($(WORKERS) worker(s); in-app is real;" \
	  "sink provider for: $(or $(NOTIFYHUB_SINK_CHANNELS),none))"; \
	echo; \
	echo "  API key (demo tenant, shown once): $$key"; \
	echo; \
	echo "  $(DEMO_RECIPIENT)'s inbox, live, in a browser (the link's token lasts $${NOTIFYHUB_WS_TOKEN_TTL_SECONDS:-900} s):"; \
	echo "    $$inbox"; \
	echo; \
	echo "  Send $(DEMO_RECIPIENT) a message (it appears on that page):"; \
	echo "    curl -s -X POST http://127.0.0.1:$(WORKER_PORT)/api/v1/notifications \\"; \
	echo "      -H \"X-API-Key: $$key\" -H 'Content-Type: application/json' \\"; \
	echo "      -d '{\"channel\":\"inapp\",\"recipient_id\":\"$(DEMO_RECIPIENT)\",\"payload\":{\"subject\":\"Hi\",\"body\":\"Hello Ada\"}}'"; \
	echo "    (an email instead: \"channel\":\"email\" and \"recipient_address\":\"ada@example.com\")"; \
	echo; \
	echo "  Its status:     curl -s http://127.0.0.1:$(WORKER_PORT)/api/v1/notifications/<id> -H \"X-API-Key: $$key\""; \
	echo "  Inbox (REST):   curl -s http://127.0.0.1:$(WORKER_PORT)/api/v1/inbox -H \"X-API-Key: $$key\" -H 'X-Recipient-ID: $(DEMO_RECIPIENT)'"; \
	echo "  New inbox link: $(VENV)/bin/notifyhub inbox-url --api-key $$key --url http://127.0.0.1:$(WORKER_PORT)"; \
	echo "  Sink's sends:   redis-cli -p $${NOTIFYHUB_REDIS_PORT:-6380} lrange notifyhub:sink 0 -1"; \
	echo "  Live events:    $(VENV)/bin/notifyhub events tail"; \
	echo "  Consumer lag:   $(VENV)/bin/notifyhub lag"; \
	echo "  Health:         curl -s http://127.0.0.1:$(WORKER_PORT)/health   (metrics: /metrics)"; \
	echo "  Worker logs:    tail -f $(RUN_DIR)/worker-*.log"; \
	echo "  Secrets:        $(RUN_DIR)/secrets.env  (random, made once, mode 0600; the admin token for /internal/* and notifyhub dlq:"; \
	echo "                  set -a; . $(RUN_DIR)/secrets.env; set +a)"; \
	echo "  More workers:   make run WORKERS=3   (they share the partitions)"; \
	echo "  Stop:           make stop   (workers and services)"

stop:
	@RUN_DIR=$(RUN_DIR) $(WORKERS_SCRIPT) stop
	$(STACK) down

# The lint runs first: a type or layer error fails the suite as a test would. The 25
# slowest tests are listed at the end, to see where the suite's time goes.
test: lint
	$(STACK) install
	$(STACK) install-browser
	$(VENV)/bin/pytest --durations=25

# The unit lane: every test that needs no service (well under a minute). A test that needs
# the services carries the stack marker (tests/support/plugin.py adds it); with the
# services' addresses unset and NOTIFYHUB_NO_SERVICES set, none can reach them.
unit: install
	env -u DATABASE_URL -u REDIS_URL -u KAFKA_BOOTSTRAP_SERVERS -u CI NOTIFYHUB_NO_SERVICES=1 \
	  $(VENV)/bin/pytest -m "not stack and not faults" -q

# Only the fault tests (part of `make test` too): they break a stack of their own.
test-faults: install
	$(STACK) install
	$(VENV)/bin/pytest -m faults -s tests/faults

# ruff (style, bugs, private access), mypy --strict on notifyhub, tests and bench, and the
# layer edges.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

clean: stop
	rm -rf $(RUN_DIR) .stack
