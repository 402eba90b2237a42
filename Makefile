# The two commands (see README.md): `make demo` and `make test`. Both are idempotent.
.PHONY: setup demo test bench lint clean-store

# the campaign `make demo` runs; `make demo SPEC=workflows/test.yaml` is a 2-minute smoke run
SPEC ?= workflows/laptop.yaml
WORKERS ?= 2
# time limit of the run in hours: binding energies before barriers, the cheapest first; what
# does not fit continues on the next `make demo` (from its checkpoints); HOURS= runs unlimited
HOURS ?= 1.5

setup:
	./scripts/bootstrap.sh dev,ml

demo: setup
	.venv/bin/interphase-dft campaign $(SPEC) --workers $(WORKERS) --report report \
		$(if $(HOURS),--hours $(HOURS))

test: setup
	.venv/bin/ruff check interphase_dft tests benchmarks
	.venv/bin/python -m pytest -v --durations=25

bench: setup
	.venv/bin/python benchmarks/run_all.py

lint: setup
	.venv/bin/ruff check .
