# Kicau developer entry points. The stack itself lives in stack/ (`python -m stack --help`).
SHELL := /bin/bash
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: venv up down status logs reset test lint

venv: $(STAMP)

# Reinstall only when the lock file or the project metadata changed.
$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q uv==0.13.8
	.venv/bin/uv pip install --python $(PY) -r requirements.lock
	.venv/bin/uv pip install --python $(PY) --no-deps -e .
	touch $(STAMP)

up: venv
	$(PY) -m stack up

down:
	$(PY) -m stack down

status:
	$(PY) -m stack status

logs:
	$(PY) -m stack logs $(NAME)

reset:
	$(PY) -m stack reset

test: venv
	$(PY) -m stack up
	$(PY) -m pytest -q

lint: venv
	.venv/bin/ruff check kicau services stack tests
	.venv/bin/mypy kicau services stack tests
