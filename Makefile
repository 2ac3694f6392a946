# The two commands a newcomer needs (see README.md):
#   make run   - create the virtualenv, install, create/migrate every database, serve on :8000
#   make test  - create/update the virtualenv, lint, check migrations and schema, run the tests
# Only python3 (3.11+) and make are needed on the machine; make test also runs the README's
# examples (tests/test_readme.py), which use curl and the sqlite3 shell.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Checks that need settings but no real data use the test settings (scratch databases).
CHECK_ENV := DJANGO_SETTINGS_MODULE=config.settings.test

.PHONY: run test test-postgres test-cluster lint format install install-dev bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The client (store_client) is installed too, editable: `.venv/bin/store-client` from anywhere.
$(VENV)/.installed: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install -qq --no-deps -e .
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install -qq --no-deps -e .
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/python manage.py init_db
	@echo "Serving on http://$(HOST):$(PORT)/ (API docs: http://$(HOST):$(PORT)/api/docs/)"
	@echo "Reads are open; writes need a token. Get one with:"
	@echo "    $(BIN)/python manage.py create_api_token my-client"
	@echo "and send it as: -H 'Authorization: Token <token>'"
	@echo "Admin login: $(BIN)/python manage.py createsuperuser, then http://$(HOST):$(PORT)/admin/"
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(CHECK_ENV) $(BIN)/python manage.py makemigrations --check --dry-run
	$(CHECK_ENV) $(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null
	$(BIN)/pytest

# The whole suite again, on one PostgreSQL database per service (plus default) on PG_URL.
# Without a reachable server it says so and stops: successfully, unless REQUIRE_POSTGRES is set
# (as .ci/run does), so that `make test` alone stays the only must on a fresh machine.
PG_URL ?= postgres://postgres@127.0.0.1:5432
PG_PREFIX ?= store
PG_ENV := DEFAULT_DATABASE_URL=$(PG_URL)/$(PG_PREFIX)_default \
	USERS_DATABASE_URL=$(PG_URL)/$(PG_PREFIX)_users \
	PRODUCTS_DATABASE_URL=$(PG_URL)/$(PG_PREFIX)_products \
	ORDERS_DATABASE_URL=$(PG_URL)/$(PG_PREFIX)_orders

test-postgres: install-dev
	@if $(BIN)/python scripts/postgres_ready.py $(PG_URL) $(PG_PREFIX)_default \
			$(PG_PREFIX)_users $(PG_PREFIX)_products $(PG_PREFIX)_orders; then \
		$(PG_ENV) $(BIN)/pytest; \
	elif [ -n "$$REQUIRE_POSTGRES" ]; then \
		echo "REQUIRE_POSTGRES is set: failing."; exit 1; \
	else \
		echo "Skipping the PostgreSQL run (set REQUIRE_POSTGRES=1 to make this an error)."; \
	fi

# Not part of `make test`: takes a few minutes and its figures depend on the machine.
# A whole deployment under fault (tests/cluster/): a PostgreSQL server per database, Redis, two
# Celery workers, two gunicorns and nginx with deploy/nginx.conf, all started in a scratch folder
# and stopped afterwards. Needs the PostgreSQL 15 server binaries (pg_config --bindir), Redis and
# nginx on the machine (.ci/run installs nginx); `make test` does not run it.
test-cluster: install-dev
	STORE_CLUSTER=1 $(BIN)/pytest tests/cluster -rP -p no:logging

# It also draws docs/ingest-throughput.png (inserts, then the bulk actions upsert, update and
# delete: their own ACTIONS_BENCH_ARGS), then ingests a 1,000,000-record NDJSON file, then
# times pages of every list ordering at 1,000,000 rows (PAGES_BENCH_ARGS), then
# exports a 1,000,000-row table (EXPORT_BENCH_ARGS: --rows, --table, --repeat, --no-postgres),
# then runs a 1,000,000-record background job and reads its results back (JOB_BENCH_ARGS),
# then pushes a 1,000,000-record file through store_client against one request of it
# (CLIENT_BENCH_ARGS: --records, --repeat), then times reads while three 300,000-record
# ingests run on the shipped gunicorn config (READS_BENCH_ARGS). The insert, bulk action and
# reads targets each print a line starting with "target" and go into the chart's table of
# targets; the other benchmarks say "met" or "NOT met" beside their own figures.
bench: install-dev
	$(BIN)/python -m bench.ingest_bench $(BENCH_ARGS)
	$(BIN)/python -m bench.actions_bench $(ACTIONS_BENCH_ARGS)
	$(BIN)/python -m bench.file_bench $(FILE_BENCH_ARGS)
	$(BIN)/python -m bench.pages_bench $(PAGES_BENCH_ARGS)
	$(BIN)/python -m bench.export_bench $(EXPORT_BENCH_ARGS)
	$(BIN)/python -m bench.job_results_bench $(JOB_BENCH_ARGS)
	$(BIN)/python -m bench.client_bench $(CLIENT_BENCH_ARGS)
	$(BIN)/python -m bench.reads_bench $(READS_BENCH_ARGS)

clean:
	rm -rf $(VENV) .test-data .pytest_cache .ruff_cache .hypothesis
