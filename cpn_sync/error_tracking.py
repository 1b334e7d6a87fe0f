"""Errors to an error tracker: with SENTRY_DSN set (and the `sentry` extra installed), each
process (web, worker, beat, the command line) reports its unhandled errors to Sentry, through
sentry-sdk's Starlette, Celery and SQLAlchemy integrations, with personal data off: no default
PII, no local variables, no SQL parameters, and every event scrubbed
(`cpn_sync.error_scrubbing`)."""

from __future__ import annotations

from cpn_sync.error_scrubbing import scrub_breadcrumb, scrub_event
from cpn_sync.settings import Settings, SettingsError

_started = False


def start_error_tracking(settings: Settings) -> bool:
    """Start reporting (once per process); answer whether it is on."""
    global _started
    if not settings.sentry_dsn:
        return False
    if _started:
        return True
    try:
        import sentry_sdk
        from sentry_sdk.integrations.celery import CeleryIntegration
        from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration
        from sentry_sdk.integrations.starlette import StarletteIntegration
    except ImportError:
        raise SettingsError(
            "SENTRY_DSN is set but sentry-sdk is not installed: pip install 'cpn-sync[sentry]'"
        ) from None
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        integrations=[StarletteIntegration(), CeleryIntegration(), SqlalchemyIntegration()],
        send_default_pii=False,
        include_local_variables=False,  # a frame's locals hold payloads and addresses
        max_request_body_size="never",
        before_send=scrub_event,  # type: ignore[arg-type]
        before_breadcrumb=scrub_breadcrumb,
        traces_sample_rate=0.0,
    )
    _started = True
    return True
