"""The one typed settings object, read from the environment once per process."""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

_SECRET_SEPARATORS = re.compile(r"[\s,]+")


class SettingsError(ValueError):
    """A setting has a value the service cannot run with."""


def normalize_database_url(raw: str) -> str:
    """Accept `postgresql://`, `postgres://`, `postgresql+psycopg://`; answer the psycopg form."""
    url = raw.strip()
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith("postgresql+psycopg://"):
        return url
    raise SettingsError(
        "a PostgreSQL URL must start with postgresql://, postgres:// or postgresql+psycopg:// "
        f"(got one starting with {url.split(':', 1)[0]!r})"
    )


def libpq_url(sqlalchemy_url: str | URL) -> str:
    """The same URL for libpq tools and plain psycopg (no `+psycopg` driver suffix).

    The user name and password are percent-encoded here: SQLAlchemy's renderer leaves a space in
    a password as it is, which libpq refuses.
    """
    url = make_url(sqlalchemy_url)
    rest = url._replace(drivername="postgresql", username=None, password=None)
    rendered = rest.render_as_string(hide_password=False)
    if url.username is None:
        return rendered
    userinfo = quote(url.username, safe="")
    if url.password is not None:
        userinfo += ":" + quote(str(url.password), safe="")
    scheme, _, location = rendered.partition("://")
    return f"{scheme}://{userinfo}@{location}"


class Settings(BaseSettings):
    """Every setting of the service; the README's configuration table documents each one."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    database_url: str | None = Field(default=None, description="PostgreSQL URL.")
    redis_url: str | None = Field(default=None, description="Redis URL: broker and result store.")
    celery_broker_url: str | None = Field(default=None, description="Broker override.")
    clerk_webhook_secret: str | None = Field(default=None, description="whsec_ secret(s).")
    port: int = 8000
    public_base_url: str = "http://localhost:8000"
    # The app a share page's visitor is invited to; no link when unset. http(s) only, so that
    # no `javascript:` URL can reach the page.
    public_app_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    log_level: str = "INFO"
    # None: console lines on a terminal, JSON otherwise (cpn_sync.logs.configure).
    log_format: str | None = Field(default=None, pattern="^(json|console)$")
    web_concurrency: int = Field(default=2, ge=1)
    worker_concurrency: int = Field(default=2, ge=1)
    worker_queues: str = "webhooks,cpn,maintenance"
    webhook_max_bytes: int = Field(default=1024 * 1024, ge=1024)
    webhook_retention_days: int = Field(default=30, ge=1)
    webhook_commit_batch: int = Field(default=256, ge=1)
    webhook_inbox_writers: int = Field(default=2, ge=1)
    webhook_body_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    webhook_max_pending: int = Field(default=1000, ge=1)
    db_pool_size: int = Field(default=10, ge=1)
    data_dir: Path = Path(".data")
    # CPN results (README "CPN results").
    cpn_chunk_size: int = Field(default=1000, ge=1, le=10_000)
    cpn_coalesce_seconds: float = Field(default=5.0, ge=0, le=600)
    cpn_scan_interval_seconds: int = Field(default=300, ge=10)
    cpn_nightly_hour: int = Field(default=3, ge=0, le=23)
    cpn_nightly_minute: int = Field(default=17, ge=0, le=59)
    cpn_min_interactions: int = Field(default=3, ge=1)
    cpn_cost_per_nut_threshold: Decimal = Field(default=Decimal("100.00"), ge=0)
    cpn_nuts_per_hour_threshold: Decimal = Field(default=Decimal("0.500"), ge=0)
    cpn_weekday_min_interactions: int = Field(default=7, ge=2)
    # Event processing (workers/): retries, the inbox sweeper and the beat schedule.
    event_max_retries: int = Field(default=8, ge=0, le=20)
    event_retry_backoff_max_seconds: int = Field(default=300, ge=1, le=900)
    event_max_attempts: int = Field(default=20, ge=1)
    event_batch_size: int = Field(default=50, ge=1, le=1000)
    sweep_received_after_seconds: int = Field(default=30, ge=0)
    # None: derived from the retry backoff cap and the task time limit (workers/inbox/sweep.py).
    sweep_processing_after_seconds: int | None = Field(default=None, ge=0)
    sweep_batch_size: int = Field(default=1000, ge=1)
    sweep_interval_seconds: float = Field(default=60, gt=0)
    session_expiry_interval_seconds: float = Field(default=300, gt=0)
    payload_redaction_interval_seconds: float = Field(default=3600, gt=0)
    # Observability (README "Metrics and alerts").
    worker_metrics_port: int = Field(default=9808, ge=0, le=65535)
    canary_interval_seconds: float = Field(default=60, gt=0)
    metrics_token: str | None = Field(default=None, description="Bearer token of /metrics.")
    # Convergence with Clerk's Backend API (DESIGN.md section 9): off without a secret key.
    clerk_secret_key: str | None = Field(default=None, description="Clerk sk_ secret key.")
    clerk_api_url: str = "https://api.clerk.com/v1"
    clerk_api_rate_limit: int | None = Field(default=None, ge=1)
    clerk_sync_interval_seconds: int = Field(default=300, ge=10)
    clerk_reconcile_hour: int = Field(default=4, ge=0, le=23)
    clerk_reconcile_minute: int = Field(default=37, ge=0, le=59)
    # First-request sync, POST /api/me/sync (DESIGN.md section 10): off without a JWT key.
    clerk_jwt_key: str | None = Field(default=None, description="PEM public key (RS256).")
    clerk_authorized_parties: str = ""
    cors_allowed_origins: str = ""
    sync_wait_seconds: float = Field(default=5.0, ge=0, le=30)
    sync_max_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)
    sync_user_requests_per_minute: int = Field(default=30, ge=1)
    sync_process_requests_per_second: int = Field(default=200, ge=1)
    sync_max_pending: int = Field(default=1000, ge=1)
    sentry_dsn: str | None = Field(default=None, description="Error tracking (sentry extra).")

    @field_validator("database_url")
    @classmethod
    def _psycopg_driver(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else normalize_database_url(value)

    @field_validator("clerk_secret_key", "clerk_jwt_key")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else value.strip()

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @property
    def webhook_secrets(self) -> list[str]:
        """All configured signing secrets: several only while a rotation is under way."""
        raw = self.clerk_webhook_secret or ""
        return [part for part in _SECRET_SEPARATORS.split(raw) if part]

    @property
    def authorized_parties(self) -> list[str]:
        """Allowed `azp` values of session tokens; empty: any (and none) is accepted."""
        return [part for part in _SECRET_SEPARATORS.split(self.clerk_authorized_parties) if part]

    @property
    def cors_origins(self) -> list[str]:
        return [part for part in _SECRET_SEPARATORS.split(self.cors_allowed_origins) if part]

    @property
    def broker_url(self) -> str | None:
        return self.celery_broker_url or self.redis_url

    def require_database_url(self) -> str:
        if not self.database_url:
            raise SettingsError("DATABASE_URL is not set (make run starts an embedded one)")
        return self.database_url

    def require_broker_url(self) -> str:
        """For what must reach the broker: never Celery's silent `amqp://localhost`."""
        if not self.broker_url:
            raise SettingsError(
                "REDIS_URL is not set (nor CELERY_BROKER_URL): this command needs the broker "
                "(make run starts an embedded one)"
            )
        return self.broker_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read once; tests set the environment before the first call.

    A bad value raises `SettingsError` naming the variable, without echoing its value (a URL
    may carry a password).
    """
    try:
        return Settings()
    except ValidationError as error:
        problems = [
            f"{'.'.join(str(part) for part in problem['loc']).upper()}: "
            + problem["msg"].removeprefix("Value error, ")
            for problem in error.errors()
        ]
        raise SettingsError("; ".join(problems)) from None
