# syntax=docker/dockerfile:1
# One image for every Procfile process type (release, web, worker, beat) and for Flower.
# Build:  docker build -t cpn-sync .      Run:  see docker-compose.yml and the README.

# --- build: a virtualenv holding the package (a regular, non-editable install) and exactly the
# runtime dependencies that uv.lock pins (hashes checked), plus the `flower` and `sentry` extras; no dev tools,
# no embedded servers (the `local` extra).
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/cpn-sync
WORKDIR /src
COPY requirements/uv.txt ./requirements/uv.txt
RUN pip install --no-deps --require-hashes -r requirements/uv.txt
COPY pyproject.toml uv.lock README.md ./
# The dependencies first, in their own layer: a code change does not download them again.
RUN uv sync --locked --no-dev --extra flower --extra sentry --no-install-project
COPY cpn_sync ./cpn_sync
COPY db ./db
COPY webhooks ./webhooks
COPY workers ./workers
RUN uv sync --locked --no-dev --extra flower --extra sentry --no-editable

# --- runtime: the virtualenv alone, run by an unprivileged user, and the PostgreSQL client
# programs of the compose file's server (PG_MAJOR) for `cpn-sync backup` / `restore`, from the
# PostgreSQL project's Debian repository (Debian itself carries one major per release).
FROM python:3.11-slim
ARG PG_MAJOR=16
RUN apt-get update \
    && apt-get install --yes --no-install-recommends ca-certificates curl \
    && install -d /usr/share/postgresql-common/pgdg \
    && curl --fail --silent --show-error --location \
       --output /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc \
       https://www.postgresql.org/media/keys/ACCC4CF8.asc \
    && . /etc/os-release \
    && echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt ${VERSION_CODENAME}-pgdg main" \
       > /etc/apt/sources.list.d/pgdg.list \
    && apt-get update \
    && apt-get install --yes --no-install-recommends "postgresql-client-${PG_MAJOR}" \
    && apt-get purge --yes --auto-remove curl \
    && rm -rf /var/lib/apt/lists/*
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
