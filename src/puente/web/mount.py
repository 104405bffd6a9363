"""Registers the web UI on the application: static files (ours, and the front-end libraries
the wheel carries or a checkout's node_modules holds), security headers, error pages and the
routers of the account and settings pages."""

from __future__ import annotations

import logging
import os
import sys
from http import HTTPStatus
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from puente.errors import PuenteError
from puente.runtime import Runtime
from puente.secrets import session_secret
from puente.startup import NotReady
from puente.web.deps import LoginRequired, resolve_member
from puente.web.security import SecurityHeadersMiddleware
from puente.web.templating import render, translate

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
# Front-end libraries come from npm (package-lock.json). The build (setup.py, which reads
# this table) copies them into the package as static/vendor/<name>; a checkout without a
# build serves them straight from node_modules. They are never committed.
PACKAGED_DIR = STATIC_DIR / "vendor"
VENDOR_FILES = {
    "htmx.min.js": ("htmx.org", "dist/htmx.min.js"),
    "htmx-ext-sse.js": ("htmx-ext-sse", "dist/sse.min.js"),
    "chart.umd.min.js": ("chart.js", "dist/chart.umd.min.js"),
}


class WebAssetsMissing(NotReady):
    pass


def node_modules_dir() -> Path | None:
    """The node_modules folder of Puente's checkout, wherever the process was started:
    PUENTE_NODE_MODULES, else the first one above the package (an editable install) or
    above the Python environment (an install into the checkout's .venv). Never the
    working directory, which is / or a service's home under a service manager."""
    configured = os.environ.get("PUENTE_NODE_MODULES")
    if configured:
        return Path(configured)
    for start in (Path(__file__).resolve(), Path(sys.prefix).resolve() / "bin"):
        for parent in start.parents:
            candidate = parent / "node_modules"
            if candidate.is_dir():
                return candidate
    return None


def packaged_paths() -> dict[str, Path] | None:
    """The copies an installed wheel carries, if it carries all of them."""
    found = {name: PACKAGED_DIR / name for name in VENDOR_FILES}
    return found if all(path.is_file() for path in found.values()) else None


def vendor_paths() -> dict[str, Path]:
    """The files to serve: PUENTE_NODE_MODULES's when set, else the wheel's copies, else
    those of the checkout's node_modules (an editable install)."""
    packaged = None if os.environ.get("PUENTE_NODE_MODULES") else packaged_paths()
    if packaged is not None:
        return packaged
    root = node_modules_dir()
    if root is None:
        raise WebAssetsMissing(
            "the front-end libraries (htmx) are missing: run `npm ci` in Puente's project "
            "directory, set PUENTE_NODE_MODULES to a node_modules folder, or install a "
            "wheel built with them (`make wheel`)"
        )
    found: dict[str, Path] = {}
    for name, (package, rel) in VENDOR_FILES.items():
        path = root / package / rel
        if not path.is_file():
            # Fall back to the unminified build when a package ships only that.
            alt = path.with_name(path.name.replace(".min", ""))
            if not alt.is_file():
                raise WebAssetsMissing(
                    f"{path} is missing: install the front-end libraries with `npm ci` in "
                    "Puente's project directory (or set PUENTE_NODE_MODULES to a "
                    "node_modules folder)"
                )
            path = alt
        found[name] = path
    return found


def _vendor_route(name: str, path: Path) -> Route:
    async def serve(_request: Request) -> Response:
        return FileResponse(
            path,
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    return Route(f"/static/vendor/{name}", serve, methods=["GET", "HEAD"], name=f"vendor-{name}")


def _wants_html(request: Request) -> bool:
    if request.url.path.startswith("/api/"):
        return False
    return "text/html" in request.headers.get("accept", "") or bool(
        request.headers.get("hx-request")
    )


def _reload_member(request: Request) -> None:
    """The failed request's transaction rolled back and expired the signed-in member's rows;
    load them again (detached, fully loaded) so the error page can show the usual header."""
    if getattr(request.state, "web", None) is None:
        return
    del request.state.web
    runtime: Runtime = request.app.state.runtime
    # Closed, not rolled back: a rollback would expire the rows just loaded.
    with runtime.db.read_factory() as session:
        resolve_member(request, session)


def _reload_member_if_possible(request: Request) -> None:
    # After an unexpected failure the database itself may be what failed: the error page
    # then goes without the signed-in header rather than failing in turn.
    try:
        _reload_member(request)
    except Exception:
        log.warning("error page: the signed-in member could not be loaded", exc_info=True)
        if hasattr(request.state, "web"):
            del request.state.web


# What a browser shows for Starlette's own refusals (an unknown address, a wrong method)
# and for unexpected failures, instead of their English one-word reasons.
HTTP_MESSAGES = {
    403: "You are not allowed to open this page.",
    404: "There is no page at this address.",
    405: "This page cannot be used that way.",
    500: "Something went wrong on our side. Try again in a moment.",
}
TITLES = {
    401: "Sign in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "Conflict",
    500: "Something went wrong",
}


def _reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _error_response(request: Request, status: int, message: str, **params: object) -> Response:
    """`message` is a msgid; `params` fill its %(name)s placeholders after translation."""
    if not _wants_html(request):
        text = message % params if params else message
        return JSONResponse({"error": {"code": str(status), "message": text}}, status)
    title = translate(request, TITLES.get(status, "Something is wrong"))
    return render(
        request,
        "error.html",
        {"title": title, "message": translate(request, message, **params)},
        status_code=status,
    )


def install_error_pages(app: FastAPI) -> None:
    @app.exception_handler(PuenteError)
    async def puente_error(request: Request, exc: PuenteError) -> Response:
        await run_in_threadpool(_reload_member, request)
        if isinstance(exc, LoginRequired) and _wants_html(request):
            target = "/login"
            if request.method == "GET":
                target += f"?next={request.url.path}"
            if request.headers.get("hx-request"):
                return Response(status_code=401, headers={"HX-Redirect": target})
            return RedirectResponse(target, status_code=303)
        if not _wants_html(request):
            return JSONResponse(exc.to_json(), status_code=exc.status_code)
        return _error_response(request, exc.status_code, exc.template, **exc.params)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        await run_in_threadpool(_reload_member, request)
        fields = sorted({str(e["loc"][-1]) for e in exc.errors() if e.get("loc")})
        if not _wants_html(request):
            body = {
                "error": {
                    "code": "invalid",
                    "message": "the request is not valid",
                    "details": [{"field": f} for f in fields],
                }
            }
            return JSONResponse(body, status_code=422)
        message = translate(
            request, "Please check these fields: %(fields)s", fields=", ".join(fields)
        )
        return render(
            request,
            "error.html",
            {"title": translate(request, "Something is wrong"), "message": message},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if not _wants_html(request):
            return await http_exception_handler(request, exc)
        await run_in_threadpool(_reload_member_if_possible, request)
        message = str(exc.detail)
        if message == _reason_phrase(exc.status_code):
            message = HTTP_MESSAGES.get(exc.status_code, message)
        response = _error_response(request, exc.status_code, message)
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, _exc: Exception) -> Response:
        # Starlette logs the exception after this answer; a browser gets the usual page.
        if not _wants_html(request):
            body = {"error": {"code": "internal", "message": "internal server error"}}
            return JSONResponse(body, status_code=500)
        await run_in_threadpool(_reload_member_if_possible, request)
        return _error_response(request, 500, HTTP_MESSAGES[500])


def mount(app: FastAPI, runtime: Runtime) -> None:
    from puente.web.routes import (
        auth,
        bot,
        contacts,
        contacts_edit,
        contacts_merge,
        csat,
        dashboard,
        dev,
        home,
        presence,
        privacy,
        reports,
        routing,
        segments,
        settings,
        settings_admin,
        templates,
        webhooks,
        workflows,
        workspace_export,
    )

    app.state.session_secret = session_secret(runtime.settings)
    for name, path in vendor_paths().items():
        app.router.routes.append(_vendor_route(name, path))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(SecurityHeadersMiddleware, hsts=runtime.settings.secure_cookies)
    install_error_pages(app)
    for module in (home, auth, settings, settings_admin, privacy, templates, presence, routing):
        app.include_router(module.router)
    app.include_router(dashboard.router)
    app.include_router(csat.router)
    if runtime.settings.dev_mail:  # development only: /dev/mail is a 404 in production
        app.include_router(dev.router)
    app.include_router(contacts.router)
    app.include_router(contacts_edit.router)
    app.include_router(contacts_merge.router)
    app.include_router(segments.router)
    app.include_router(workflows.router)
    app.include_router(bot.router)
    app.include_router(reports.router)
    app.include_router(workspace_export.router)
    app.include_router(webhooks.router)
