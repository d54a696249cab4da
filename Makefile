# Kicau developer entry points. The stack itself lives in stack/ (`python -m stack --help`).
SHELL := /bin/bash
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: venv up down status logs reset test lint bench load

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
	.venv/bin/ruff check kicau services stack tests bench loadtests deploy
	.venv/bin/mypy kicau services stack tests bench loadtests deploy

# Benchmarks of issue #6 against the running stack (`make up` first): fanout vs Redis, gateway vs hello world,
# stream delivery latency, Redis bytes per timeline entry. Writes loadtests/results/latest.{json,md} and PNGs.
# ARGS passes options through, e.g. `make bench ARGS="--quick"` or `ARGS="--only delivery --profile"`.
ARGS ?=
bench: venv
	$(PY) -m bench $(ARGS)

# Locust headless (loadtests/README.md): `make load USERS=50 SPAWN=10 DURATION=60s RATE=0`. Without HOST it runs
# against a load gateway it starts beside the running stack's (loadtests/run.py: the per-account rate limit out of
# reach); with HOST, against that gateway as it is.
USERS ?= 50
SPAWN ?= 10
DURATION ?= 60s
RATE ?= 0
HOST ?=
load: venv
	mkdir -p loadtests/results
	KICAU_LOAD_RATE=$(RATE) $(PY) -m loadtests.run --host "$(HOST)" -- --headless -u $(USERS) -r $(SPAWN) \
		-t $(DURATION) --csv loadtests/results/load --html loadtests/results/load.html \
		--only-summary $(LOAD_ARGS)
