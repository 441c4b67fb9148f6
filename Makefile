# The two commands: `make run` and `make test`. Both do all the set-up they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
STACK := deployments/local/stack.sh
RUN_DIR ?= .data
WORKER_PORT ?= 8080
WORKER_LOG := $(RUN_DIR)/worker.log
WORKER_PID := $(RUN_DIR)/worker.pid
# `make run` sends every channel to the recording sink; real providers are configured
# through the environment (see README).
export NOTIFYHUB_SINK_CHANNELS ?= all
export NOTIFYHUB_WEB_PORT ?= $(WORKER_PORT)

.PHONY: install stack run stop test lint clean

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

run: stack
	@eval "$$($(STACK) env | sed 's/^/export /')"; \
	mkdir -p $(RUN_DIR); \
	$(VENV)/bin/notifyhub migrate; \
	if [ -f $(WORKER_PID) ] && kill -0 $$(cat $(WORKER_PID)) 2>/dev/null; then \
	  echo "worker already running (pid $$(cat $(WORKER_PID)))"; \
	else \
	  NOTIFYHUB_DATA_DIR=$(RUN_DIR)/worker nohup $(VENV)/bin/notifyhub worker >$(WORKER_LOG) 2>&1 </dev/null & \
	  echo $$! >$(WORKER_PID); \
	fi; \
	for _ in $$(seq 1 300); do \
	  curl -sf http://127.0.0.1:$(WORKER_PORT)/readyz >/dev/null && break; \
	  kill -0 $$(cat $(WORKER_PID)) 2>/dev/null || { echo "worker exited; see $(WORKER_LOG)"; tail -20 $(WORKER_LOG); exit 1; }; \
	  sleep 0.2; \
	done; \
	curl -sf http://127.0.0.1:$(WORKER_PORT)/readyz >/dev/null || { echo "worker not ready after 60s; see $(WORKER_LOG)"; exit 1; }; \
	key=$$($(VENV)/bin/notifyhub seed --quiet); \
	echo; \
	echo "NotifyHub is running on http://127.0.0.1:$(WORKER_PORT)  (all channels go to the sink provider)"; \
	echo; \
	echo "  API key (demo tenant, shown once): $$key"; \
	echo; \
	echo "  Send a notification:"; \
	echo "    curl -s -X POST http://127.0.0.1:$(WORKER_PORT)/api/v1/notifications \\"; \
	echo "      -H \"X-API-Key: $$key\" -H 'Content-Type: application/json' \\"; \
	echo "      -d '{\"channel\":\"email\",\"recipient_id\":\"user-1\",\"recipient_address\":\"ada@example.com\",\"payload\":{\"subject\":\"Hi\",\"body\":\"Hello Ada\"}}'"; \
	echo; \
	echo "  Its status:     curl -s http://127.0.0.1:$(WORKER_PORT)/api/v1/notifications/<id> -H \"X-API-Key: $$key\""; \
	echo "  What was sent:  redis-cli -p $${NOTIFYHUB_REDIS_PORT:-6380} lrange notifyhub:sink 0 -1"; \
	echo "  Health:         curl -s http://127.0.0.1:$(WORKER_PORT)/health"; \
	echo "  Worker log:     tail -f $(WORKER_LOG)"; \
	echo "  Stop:           make stop   (worker and services)"

stop:
	@if [ -f $(WORKER_PID) ] && kill -0 $$(cat $(WORKER_PID)) 2>/dev/null; then \
	  kill -TERM $$(cat $(WORKER_PID)); \
	  for _ in $$(seq 1 150); do kill -0 $$(cat $(WORKER_PID)) 2>/dev/null || break; sleep 0.2; done; \
	  echo "worker stopped"; \
	fi; rm -f $(WORKER_PID)
	$(STACK) down

test: install
	$(STACK) install
	$(STACK) install-browser
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean: stop
	rm -rf $(RUN_DIR) .stack
