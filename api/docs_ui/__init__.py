"""The API docs served offline: Swagger UI at /docs, ReDoc at /redoc, and sqm's icon at /favicon.ico.

FastAPI's own /docs and /redoc load their JavaScript, CSS and favicon from CDNs (and ReDoc its fonts
from Google): without internet they stay blank. Here the same pages (FastAPI's `get_swagger_ui_html`
and `get_redoc_html`) load the copies vendored in `vendor/` (versions and origin: README.md beside
this file), served under /docs/static/. Nothing on these pages reaches beyond the API's own host:
ReDoc gets no Google fonts (the browser's sans-serif is used), its sidebar logo is not fetched from
cdn.redoc.ly (the one patch to the vendored bundle, README.md), and Swagger UI's online validator is
off (`validatorUrl: null`: FastAPI's BaseLayout shows no validator badge, but another layout would
send the OpenAPI URL to validator.swagger.io).

`create_app` builds FastAPI with `docs_url=None, redoc_url=None` and calls `mount_docs(app)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

HERE = Path(__file__).parent
VENDOR = HERE / "vendor"
FAVICON = HERE / "favicon.ico"
SWAGGER_UI = "swagger-ui-dist-5.36.0"
REDOC = "redoc-2.5.4"
STATIC = "/docs/static"
OPENAPI = "/openapi.json"
FAVICON_MAX_AGE_S = 86400


def mount_docs(app: FastAPI, dependencies: Sequence[Any] = ()) -> None:
    """Add /openapi.json, /docs, /redoc, /favicon.ico and the assets they load (/docs/static/...) to
    `app` (created with `openapi_url=None`); `dependencies` (read authentication) guard the first three."""
    app.mount(STATIC, StaticFiles(directory=VENDOR), name="docs-static")
    deps = list(dependencies)

    def urls(request: Request) -> tuple[str, str, str]:
        """The OpenAPI document, the assets and the icon, behind a proxy's root path too."""
        root = request.scope.get("root_path", "").rstrip("/")
        return root + OPENAPI, root + STATIC, root + "/favicon.ico"

    @app.get(OPENAPI, include_in_schema=False, dependencies=deps)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=deps)
    async def swagger_ui(request: Request) -> HTMLResponse:
        openapi, static, icon = urls(request)
        return get_swagger_ui_html(
            openapi_url=openapi, title=f"{app.title} — API",
            swagger_js_url=f"{static}/{SWAGGER_UI}/swagger-ui-bundle.js",
            swagger_css_url=f"{static}/{SWAGGER_UI}/swagger-ui.css",
            swagger_favicon_url=icon,
            swagger_ui_parameters={"validatorUrl": None})  # never validator.swagger.io

    @app.get("/redoc", include_in_schema=False, dependencies=deps)
    async def redoc(request: Request) -> HTMLResponse:
        openapi, static, icon = urls(request)
        return get_redoc_html(openapi_url=openapi, title=f"{app.title} — API",
                              redoc_js_url=f"{static}/{REDOC}/redoc.standalone.js", redoc_favicon_url=icon,
                              with_google_fonts=False)

    @app.api_route("/favicon.ico", methods=["GET", "HEAD"], include_in_schema=False)
    async def favicon() -> FileResponse:
        """sqm's icon, for every page of the API and the board (browsers ask for /favicon.ico)."""
        return FileResponse(FAVICON, media_type="image/x-icon",
                            headers={"Cache-Control": f"public, max-age={FAVICON_MAX_AGE_S}"})
