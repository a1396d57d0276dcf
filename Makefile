# pandorafms.server - developer commands. See README.md.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: deps test pytest sanity lint molecule changelog demo bench clean

deps:
	tools/deps.sh

## test: everything CI runs (installs what it needs first)
test: deps
	tools/test.sh

pytest:
	tools/deps.sh --no-docker
	$(PY) -m pytest tests -q -rs

sanity:
	tools/deps.sh --no-docker
	tools/sanity.sh

lint:
	tools/deps.sh --no-docker
	tools/lint.sh

molecule: deps
	tools/molecule.sh

## demo: a throwaway MariaDB with a month of demo data, maintained by playbooks/maintain.yml
demo:
	tools/deps.sh --no-docker
	$(PY) tools/demo.py

bench:
	tools/deps.sh --no-docker
	$(PY) benchmarks/bench_maintain.py
	$(PY) benchmarks/bench_compact.py
	$(PY) benchmarks/bench_backup.py

clean:
	rm -rf .build tests/output .pytest_cache
