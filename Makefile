# lblab: `make setup` installs everything (idempotent); `make demo` and `make test` run it first.
# Run as root (`sudo make ...` on a VM; root runs the same commands without sudo).

# The project's virtualenv: .venv here, or LBLAB_VENV (the Vagrant VM keeps it outside the synced
# folder: /home/vagrant/lblab-venv). scripts/setup.sh and scripts/run-tests.sh read the same.
VENV   := $(or $(LBLAB_VENV),.venv)
LBLAB  := $(VENV)/bin/lblab
PYTEST := $(VENV)/bin/python -m pytest
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="tests/unit -x"`.
PYTEST_ARGS ?= tests
# Extra bench/all.py arguments, e.g. `make bench BENCH_ARGS=--quick` (a short smoke check).
BENCH_ARGS ?=

.PHONY: setup demo test unit clean bench help

help:
	@echo "make setup   install Debian packages, $(VENV), start Open vSwitch (idempotent, root)"
	@echo "make demo    setup, then run experiments/specs/quickstart.yaml"
	@echo "make test    setup, then the whole test suite (unit + emulation)"
	@echo "make unit    unit tests only (no root needed once $(VENV) exists)"
	@echo "make bench   every benchmark (root; BENCH_ARGS=--quick for a smoke check): one table"
	@echo "             of the issue-16 figures, value, goal, met; JSON in bench-results.json"
	@echo "make clean   remove what lblab left behind (lblab clean), nothing else"

setup:
	@scripts/setup.sh

demo: setup
	$(LBLAB) demo

test: setup
	@scripts/run-tests.sh $(PYTEST_ARGS)

unit:
	$(PYTEST) tests/unit -q

bench: setup
	$(VENV)/bin/python bench/all.py $(BENCH_ARGS)

clean:
	@if [ -x $(LBLAB) ]; then $(LBLAB) clean; else echo "no $(VENV) yet: nothing lblab made can exist"; fi
