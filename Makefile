# The README's two commands. Both start with the same setup (scripts/setup.sh, idempotent).
.PHONY: setup quickstart test lint
setup:
	bash scripts/setup.sh

quickstart: setup
	.venv/bin/python -m experiments quickstart

test: setup
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -q

lint: setup
	.venv/bin/ruff check .
