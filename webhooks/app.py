"""The Starlette application that the `web` process serves."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from webhooks import share


async def healthz(_request: Request) -> Response:
    """Liveness: answers while the process runs, whatever its dependencies say."""
    return JSONResponse({"status": "ok"})


def create_app() -> Starlette:
    return Starlette(routes=[Route("/healthz", healthz, methods=["GET"]), *share.routes])


app = create_app()
