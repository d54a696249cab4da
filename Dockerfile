# syntax=docker/dockerfile:1
# One image for every Kicau process. docker-compose.yml and deploy/kubernetes choose the process with the
# command: `python -m services.<graph|post|timeline|fanout|gateway>`, or `python /app/deploy/init/migrate.py`
# for the schema. Build: `docker build -t kicau:dev .`

ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: the locked runtime dependencies and Kicau itself, in a virtualenv -------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    VIRTUAL_ENV=/opt/venv

# The same uv the Makefile uses to install requirements.lock.
RUN pip install uv==0.13.8 && python -m venv /opt/venv

WORKDIR /src

# Dependencies first, so this layer is rebuilt only when the lock or the project metadata change.
# requirements.lock also pins the dev tools (pytest, locust, mypy, ...); used as constraints it fixes the version
# of every runtime dependency while the image gets only those `[project].dependencies` pull in.
# Wheels only: every runtime dependency has manylinux wheels for CPython 3.11 (amd64 and arm64), so the builder
# needs no compiler, and a dependency that loses its wheel fails here rather than half-building.
COPY pyproject.toml requirements.lock ./
RUN uv pip install --python /opt/venv/bin/python --only-binary :all: \
        --constraint requirements.lock --requirement pyproject.toml

# Then Kicau (kicau, services and stack packages), without touching the dependencies installed above.
# The wheel carries Python files only, and stack.migrate reads its CQL from the directory beside it: copy it there.
COPY kicau ./kicau
COPY services ./services
COPY stack ./stack
RUN uv pip install --python /opt/venv/bin/python --no-deps . \
    && site=$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
    && mkdir -p "$site/stack/migrations" \
    && cp stack/migrations/*.cql "$site/stack/migrations/" \
    && /opt/venv/bin/python -I -c 'import stack.migrate as m; assert m.discover(), "no migrations in the image"'

# ---- runtime: the virtualenv and nothing else, as a non-root user --------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="kicau" \
      org.opencontainers.image.description="Kicau services (graph, post, timeline, fanout, gateway)" \
      org.opencontainers.image.licenses="AGPL-3.0-or-later"

# A fixed numeric uid/gid so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 kicau \
    && useradd --system --uid 10001 --gid kicau --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin kicau

COPY --from=builder /opt/venv /opt/venv
COPY deploy/init/ /app/deploy/init/

# Services bind to loopback by default (right for a laptop, useless in a container): listen on all interfaces.
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KICAU_GRAPH_HOST=0.0.0.0 \
    KICAU_POST_HOST=0.0.0.0 \
    KICAU_TIMELINE_HOST=0.0.0.0 \
    KICAU_FANOUT_HOST=0.0.0.0 \
    KICAU_GATEWAY_HOST=0.0.0.0

WORKDIR /app
USER 10001:10001

# gateway, post, timeline, fanout (health and metrics only), graph
EXPOSE 8080 8081 8082 8083 8084

# Each service is chosen by the orchestrator's command; the gateway is the default.
CMD ["python", "-m", "services.gateway"]
