# carenotes: `make run` serves the API, `make test` runs ruff and the whole test suite.
# Both set everything up on a fresh machine: .venv, embedded PostgreSQL/Redis under .data/
# (unless DATABASE_URL / REDIS_URL are set), migrations.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVENV := $(BIN)/python tools/devenv.py exec --
MANAGE := $(DEVENV) $(BIN)/python manage.py
PORT ?= 8000
HOST ?= 127.0.0.1
# tools/devenv.py keeps its servers, secret key and `make run`'s pidfile here.
DATA_DIR := $(or $(CARENOTES_DATA_DIR),.data)
RUN_PIDFILE := $(DATA_DIR)/gunicorn.pid
# collectstatic's manifest stands for the collected files: they are collected again only when
# it is missing or older than a static source or the installed packages ($(STAMP)).
STATIC_ROOT := $(or $(DJANGO_STATIC_ROOT),.data/staticfiles)
STATIC_MANIFEST := $(STATIC_ROOT)/staticfiles.json
STATIC_SOURCES := $(shell find carenotes tenants stats -path '*/static/*' -type f 2>/dev/null)

export DJANGO_SETTINGS_MODULE := carenotes.settings

.PHONY: install run serve migrate static manage test lint format stop clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

# The dashboard's browser libraries (package.json / package-lock.json) into node_modules/,
# served by the app under static/vendor/ (settings.STATICFILES_DIRS); again when the lock changes.
NPM_STAMP := node_modules/.package-lock.json
$(NPM_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "make install needs npm (Node.js 20): install the 'npm' package"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: $(STAMP) $(NPM_STAMP)

migrate: install
	$(MANAGE) migrate --noinput

# `make run` serves plain HTTP on loopback, so the production HTTPS defaults are relaxed
# here (and only here); production sets nothing and gets secure defaults.
run serve: export DJANGO_SECURE_SSL_REDIRECT ?= 0
run serve: export DJANGO_SECURE_COOKIES ?= 0
run serve: export DJANGO_HSTS_SECONDS ?= 0
# devenv.py serve: migrate, notes_partitions, seed_notes --if-empty, demo_credentials and gunicorn
# (gunicorn.conf.py, app preloaded) in one process, so Django starts once and a warm start
# answers /healthz in seconds; the pidfile lets `make stop` stop it.
serve: run
run: static
	$(BIN)/python tools/devenv.py serve --bind $(HOST):$(PORT) --pid $(RUN_PIDFILE)

$(STATIC_MANIFEST): $(STAMP) $(STATIC_SOURCES)
	$(MANAGE) collectstatic --noinput --verbosity 0

static: install $(STATIC_MANIFEST)

# Any manage.py command with the environment `make run` uses: make manage ARGS="seed_notes --help"
manage: install
	$(MANAGE) $(ARGS)

# .env for docker compose: .env.example with a fresh DJANGO_SECRET_KEY and POSTGRES_PASSWORD.
# Never overwrites an existing .env.
.env:
	$(PYTHON) tools/devenv.py dotenv --example .env.example --output $@

test: export CACHE_KEY_PREFIX ?= test
test: lint
	$(DEVENV) $(BIN)/pytest $(PYTEST_ARGS)

# ruff, then the import-linter contracts of pyproject.toml (the layering).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Stops `make run`'s gunicorn (its pidfile), then the embedded servers.
stop:
	@if test -x $(BIN)/python; then $(BIN)/python tools/devenv.py stop; fi

clean: stop
	rm -rf .data reports

# Times the CareNote admin changelist on the configured database (bench/admin.py;
# add synthetic notes first with BENCH_ADMIN_ARGS="--load 1000000", dev databases only).
.PHONY: bench-admin
bench-admin: install
	$(DEVENV) $(BIN)/python bench/admin.py $(BENCH_ADMIN_ARGS)

# Stats benchmark: reference vs served vs floors at 100K and 1M notes (BENCH_ARGS="--scale 10m"
# adds 10M over 500 tenants; --help lists options). Writes docs/benchmarks/ and PERFORMANCE.md.
.PHONY: bench
bench: migrate wrk
	$(DEVENV) $(BIN)/python -m bench.stats $(BENCH_ARGS)

# wrk, the compiled load generator the benchmark uses (Debian package).
.PHONY: wrk
wrk:
	@command -v wrk >/dev/null || apt-get install -y -qq wrk \
	  || (apt-get update -qq && apt-get install -y -qq wrk) \
	  || { echo "make bench needs wrk: install the 'wrk' package"; exit 1; }

# Seeding benchmark: seed_notes vs psql \copy of the same rows into an identical table,
# plus an ORM bulk_create reference (see docs/PERFORMANCE.md). BENCH_SEED_ARGS=--help
.PHONY: bench-seed
bench-seed: migrate
	$(DEVENV) $(BIN)/python bench/seed.py $(BENCH_SEED_ARGS)

# --- Load runs (locust) -----------------------------------------------------------------------
# `make load` serves the app with gunicorn.conf.py (unless LOAD_HOST already answers), seeds
# the demo tenants when .data/demo-credentials.json is missing, runs locust headless and
# writes reports/load-<PROFILE>{.html,_stats.csv,-summary.json,-server.log}. It exits 1 when
# a target is missed, and its last lines name each target with the measured value and bound
# (README "Load runs"): no failed request, p95 <= LOAD_MAX_P95_MS (25 ms seed, 1000 ms mixed),
# seed only: req/s >= LOAD_MIN_THROUGHPUT_RATIO (0.85) x what the users offer. Empty = default.
# LOAD_PIN=1 serves on CPU 0 only and runs locust on CPU 1 (taskset): the server's cost on one
# core of its own (the summary adds the server's CPU per request).
LOAD_STAMP := $(VENV)/.installed-load
PROFILE ?= seed
USERS ?= $(if $(filter mixed,$(PROFILE)),200,50)
SPAWN_RATE ?= $(if $(filter mixed,$(PROFILE)),20,50)
RUN_TIME ?= $(if $(filter mixed,$(PROFILE)),2m,60s)
LOAD_MAX_P95_MS ?=
LOAD_MIN_THROUGHPUT_RATIO ?=
LOAD_PROCESSES ?= 1
LOAD_PIN ?=
LOAD_HOST ?= http://$(HOST):$(PORT)

.PHONY: load load-install

$(LOAD_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,load]'
	@touch $@

load-install: $(LOAD_STAMP)

load: export DJANGO_SECURE_SSL_REDIRECT ?= 0
load: export DJANGO_SECURE_COOKIES ?= 0
load: export DJANGO_HSTS_SECONDS ?= 0
load: migrate static load-install
	$(DEVENV) $(BIN)/python tools/loadrun.py --host $(LOAD_HOST) --profile $(PROFILE) \
		--users $(USERS) --spawn-rate $(SPAWN_RATE) --run-time $(RUN_TIME) \
		--processes $(LOAD_PROCESSES) $(if $(LOAD_MAX_P95_MS),--max-p95-ms $(LOAD_MAX_P95_MS)) \
		$(if $(LOAD_MIN_THROUGHPUT_RATIO),--min-throughput-ratio $(LOAD_MIN_THROUGHPUT_RATIO)) \
		$(if $(filter 1,$(LOAD_PIN)),--pin)

# Throttle cost: DRF's ScopedRateThrottle vs the Redis fixed window (bench/throttle.py).
.PHONY: bench-throttle
bench-throttle: install
	$(DEVENV) $(BIN)/python -m bench.throttle $(BENCH_THROTTLE_ARGS)

# Row-level security cost: the daily stats statements as the owner (no RLS), as carenotes_app
# scoped to one tenant, and as carenotes_system (bench/rls.py; seed 1M notes first).
.PHONY: bench-rls
bench-rls: migrate
	$(DEVENV) $(BIN)/python -m bench.rls $(BENCH_RLS_ARGS)

# Access audit cost: the notes list with and without its audit record's INSERT, interleaved
# (bench/audit.py; adds a bench-audit tenant the first time). BENCH_AUDIT_ARGS=--help
.PHONY: bench-audit
bench-audit: migrate
	$(DEVENV) $(BIN)/python -m bench.audit $(BENCH_AUDIT_ARGS)

# --- Scale-out: two app nodes behind HAProxy (tools/cluster.py) -------------------------------
# `make cluster` serves http://127.0.0.1:$(CLUSTER_PORT) from two gunicorn nodes behind HAProxy
# (Debian package haproxy, installed when missing); both share DATABASE_URL, REDIS_URL and the
# secret key. Add DATABASE_POOLER / DATABASE_REPLICA_URLS to put PgBouncer or replicas behind it.
# Load it with `make load LOAD_HOST=http://127.0.0.1:$(CLUSTER_PORT)`.
CLUSTER_PORT ?= 8080
CLUSTER_NODE_PORTS ?= 8101 8102
CLUSTER_STATUS_PORT ?= 8404

.PHONY: cluster haproxy
cluster: export DJANGO_SECURE_SSL_REDIRECT ?= 0
cluster: export DJANGO_SECURE_COOKIES ?= 0
cluster: export DJANGO_HSTS_SECONDS ?= 0
cluster: migrate haproxy
	$(MANAGE) collectstatic --noinput --verbosity 0
	$(DEVENV) $(BIN)/python tools/cluster.py --port $(CLUSTER_PORT) \
		--node-ports $(CLUSTER_NODE_PORTS) --status-port $(CLUSTER_STATUS_PORT)

haproxy:
	@PATH="$$PATH:/usr/sbin" command -v haproxy >/dev/null || apt-get install -y -qq haproxy \
	  || (apt-get update -qq && apt-get install -y -qq haproxy) \
	  || { echo "make cluster needs HAProxy: install the 'haproxy' package"; exit 1; }

# Scale-out benchmark: uncached stats and the notes list direct, with transaction-local scopes,
# through PgBouncer and from a streaming replica, side by side (bench/scaleout.py; starts its
# own throwaway primary, replica and PgBouncer). BENCH_SCALEOUT_ARGS=--help
.PHONY: bench-scaleout pgbouncer
bench-scaleout: install wrk pgbouncer
	$(DEVENV) $(BIN)/python -m bench.scaleout $(BENCH_SCALEOUT_ARGS)

pgbouncer:
	@PATH="$$PATH:/usr/sbin" command -v pgbouncer >/dev/null || apt-get install -y -qq pgbouncer \
	  || (apt-get update -qq && apt-get install -y -qq pgbouncer) \
	  || { echo "this needs PgBouncer: install the 'pgbouncer' package"; exit 1; }
