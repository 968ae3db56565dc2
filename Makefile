# Every target creates the virtualenv and installs what it needs on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo serve test test-fast lint bench bench-outputs bench-instructions clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $(STAMP)

demo: $(STAMP)  ## the gateway on :3000 plus two fake ComfyUI servers
	$(BIN)/comfy-gateway demo

serve: $(STAMP)  ## the gateway, configured by environment variables or .env
	$(BIN)/comfy-gateway serve

test: $(STAMP)  ## the whole suite (needs Redis; REDIS_URL, default redis://127.0.0.1:6379)
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-fast: $(STAMP)  ## skip the slow fault and load tests
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff, mypy --strict on src/, and the import contracts (layers point down)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)  ## benchmarks against fake servers; writes bench/RESULTS.md
	$(BIN)/python bench/run.py $(BENCH_ARGS)

bench-outputs: $(STAMP)  ## a 300 MB output through the gateway: its RSS and download speed; into bench/RESULTS.md
	$(BIN)/python bench/outputs_stream.py $(BENCH_ARGS)

bench-instructions: $(STAMP)  ## instructions per sync job, ours and the floor, under valgrind; into bench/RESULTS.md
	$(BIN)/python bench/instructions.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data build *.egg-info
