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

pytest: deps
	$(PY) -m pytest tests -q

sanity: deps
	tools/sanity.sh

lint: deps
	tools/lint.sh

molecule: deps
	tools/molecule.sh

## demo: a throwaway MariaDB with a month of demo data, maintained by playbooks/maintain.yml
demo: deps
	$(PY) tools/demo.py

bench: deps
	$(PY) benchmarks/run_all.py

clean:
	rm -rf .build tests/output .pytest_cache
