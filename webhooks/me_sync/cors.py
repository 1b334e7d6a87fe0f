"""CORS for the browser's call to `/api/...` from the app's origins (CORS_ALLOWED_ORIGINS),
through Starlette's own middleware: a preflight from an allowed origin is answered, one from
any other origin is refused (400, no `Access-Control-Allow-Origin`), and an actual request from
another origin gets no CORS headers, so the browser withholds the answer.

Settings are read when the app starts (the lifespan), after the middleware stack is built: the
CORS middleware is made on the first request from the settings the lifespan chose. Other
paths (the webhook, probes, share pages) never carry CORS headers.
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

API_PREFIX = "/api/"
PREFLIGHT_MAX_AGE_SECONDS = 600


class ApiCORS:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._cors: CORSMiddleware | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        if self._cors is None:
            settings = scope["app"].state.services.settings
            self._cors = CORSMiddleware(
                self.app,
                allow_origins=settings.cors_origins,
                allow_methods=["POST"],
                allow_headers=["authorization", "content-type"],
                max_age=PREFLIGHT_MAX_AGE_SECONDS,
            )
        await self._cors(scope, receive, send)
