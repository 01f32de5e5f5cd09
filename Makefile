# Lethe — `make demo` (the main job) and `make test`. Both create and reuse one virtual environment
# (.venv, from uv.lock); uv's cache means a second run on a warm machine downloads nothing.
PYTHON ?= python3.11
VENV   := .venv
UV     := $(PYTHON) -m uv
STAMP  := $(VENV)/.lethe-synced
EXTRA  ?= cpu
PYTEST_ARGS ?=
# The console's browser tests drive Debian's Chromium through Playwright (no browser download).
CHROMIUM ?= /usr/bin/chromium

export UV_PYTHON_DOWNLOADS := never
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export LETHE_TEST_CHROMIUM := $(CHROMIUM)

.PHONY: setup browser demo test test-slow test-all bench neo4j-start neo4j-stop clean

setup: $(STAMP)

$(STAMP): pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv>=0.5"
	$(UV) sync --frozen --extra $(EXTRA) --python $(PYTHON)
	@touch $(STAMP)

# Chromium for tests/console: nothing to do when it is there; as root on Debian/Ubuntu, apt installs it (once,
# about a minute); anyone else is told the command.
browser:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the console's browser tests"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; \
	  [ -x "$(CHROMIUM)" ] || { echo "apt installed chromium, but not at $(CHROMIUM): set CHROMIUM=PATH" >&2; exit 1; }; \
	else echo "no Chromium at $(CHROMIUM): install it (sudo apt-get install -y chromium) or set CHROMIUM=PATH;" \
	  "the console's browser tests need it" >&2; exit 1; fi

demo: setup
	$(VENV)/bin/lethe demo

test: setup browser
	$(VENV)/bin/python -m pytest -m "not slow and not gpu" $(PYTEST_ARGS)

test-slow: setup
	$(VENV)/bin/python -m pytest -m "slow or gpu" $(PYTEST_ARGS)

test-all: setup browser
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench: setup
	LETHE_BENCH_KEEP_NEO4J=1 $(VENV)/bin/python -m bench.lineage_ingest --records 1000000
	$(VENV)/bin/python -m bench.blast_radius --records 1000000 --reuse
	$(VENV)/bin/python -m bench.pii_scan
	$(VENV)/bin/python -m bench.probes
	$(VENV)/bin/python -m bench.faiss_search --vectors 200000
	$(VENV)/bin/python -m bench.unlearning
	$(VENV)/bin/python -m bench.erasure
	$(VENV)/bin/python -m bench.extraction_power
	$(VENV)/bin/python -m bench.probes_gpu

neo4j-start: setup
	$(VENV)/bin/lethe neo4j start

neo4j-stop: setup
	$(VENV)/bin/lethe neo4j stop

clean:
	-$(VENV)/bin/lethe neo4j stop
	rm -rf $(VENV) .lethe .lethe-test .lethe-bench docker/neo4j-launcher/target
