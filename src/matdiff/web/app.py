"""The Starlette application: the page, its static files, and the JSON API.

    GET  /                 the page
    POST /api/variables    {"expr"}: the variables it uses and their default types
    POST /api/derive       {"expr", "wrt", ...}: the fields of ``--format json`` and more
    POST /api/source       {"expr", "wrt", ..., "backend"}: the generated Python module
    GET  /api/status       workers, their memory, and what the pool has done

Every answer is JSON; every error is ``{"error": {"kind", "message", ...}}`` with a 4xx status
for what the request got wrong (a 5xx only for a busy server or a bug). Requests are bounded
(body size, text lengths, a worker's time), must be JSON sent from the page's own origin
(no CORS: another site's page cannot call this server), and may only name this server's
hosts (DNS rebinding is refused).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import __version__
from .assets import KATEX_DIR, katex_present
from .schema import RequestError, Settings, decoded, error, validated
from .service import memory
from .workers import Pool

STATIC = Path(__file__).resolve().parent / "static"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
KATEX_TAGS = ('<link rel="stylesheet" href="static/katex/katex.min.css">\n'
              '  <script defer src="static/katex/katex.min.js"></script>')
HEADERS = {
    # everything the page loads comes from this server; KaTeX sets inline styles
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self' "
                               "'unsafe-inline'; font-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                               "form-action 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
}


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def create_app(workers: int | None = None, settings: Settings | None = None,
               allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS, katex_dir: Path = KATEX_DIR,
               ready: Callable[[], None] | None = None) -> Starlette:
    """The app; ``allowed_hosts`` are the Host headers it answers ("*" for any); ``ready`` is
    called once its workers have started."""
    settings = settings or Settings()
    pool = Pool(workers or default_workers(), settings)
    cache = Answers(settings.cache_entries, settings.cache_bytes)
    katex = katex_present(katex_dir)
    page = (STATIC / "index.html").read_text(encoding="utf-8").replace(
        "<!--katex-->", KATEX_TAGS if katex else "")

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    def endpoint(name: str):
        async def handle(request: Request) -> Response:
            try:
                _same_origin(request)
                _json_content(request)
                payload = validated(name, decoded(await _body(request, settings)), settings)
            except RequestError as err:
                return JSONResponse(error("request", err.message, err.field),
                                    status_code=err.status)
            key = json.dumps([name, payload], sort_keys=True)
            known = cache.get(key)
            if known is not None:
                return Response(known[1], status_code=known[0], media_type="application/json")
            status, body = await pool.run(name, payload)
            response = JSONResponse(body, status_code=status,
                                    headers={"retry-after": "5"} if status == 503 else None)
            if _repeatable(status, body):
                cache.put(key, status, response.body)
            return response
        return handle

    async def status(request: Request) -> Response:
        return JSONResponse({"version": __version__, "katex": katex,
                             "server": memory(), "cache": cache.status(), **pool.status()})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await pool.start()
        if ready is not None:
            ready()
        try:
            yield
        finally:
            await pool.stop()

    routes = [Route("/", index), Route("/api/status", status)] + [
        Route(f"/api/{name}", endpoint(name), methods=["POST"])
        for name in ("variables", "derive", "source")]
    # KaTeX from katex_dir only (the package's copy stays unserved where another is chosen)
    routes.append(Mount("/static/katex", StaticFiles(directory=katex_dir)) if katex else
                  Route("/static/katex/{path:path}", _not_found))
    routes.append(Mount("/static", StaticFiles(directory=STATIC)))
    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(_Guard, allowed_hosts=allowed_hosts)],
                    exception_handlers={HTTPException: _http_error, Exception: _internal})
    app.state.pool, app.state.katex = pool, katex
    return app


class Answers:
    """The latest answers by request, least recently used first out, within both bounds."""

    def __init__(self, entries: int, size: int):
        self.entries, self.size = entries, size
        self.kept: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        self.bytes = self.hits = 0

    def get(self, key: str) -> tuple[int, bytes] | None:
        found = self.kept.get(key)
        if found is not None:
            self.kept.move_to_end(key)
            self.hits += 1
        return found

    def put(self, key: str, status: int, body: bytes) -> None:
        if key in self.kept or len(key) + len(body) > self.size // 4:
            return
        self.kept[key] = (status, body)
        self.bytes += len(key) + len(body)
        while len(self.kept) > self.entries or self.bytes > self.size:
            old, (_, dropped) = self.kept.popitem(last=False)
            self.bytes -= len(old) + len(dropped)

    def status(self) -> dict:
        return {"entries": len(self.kept), "bytes": self.bytes, "hits": self.hits}


def _repeatable(status: int, body: dict) -> bool:
    """Whether the same request would get the same answer: a result or an input error, not
    a time-out, a busy pool or a bug (those depend on the moment)."""
    if status == 200:  # unless the check or table gave way to the time limit
        return not body.get("check_error") and not str(
            body.get("entrywise_reason")).startswith("not done")
    e = body.get("error", {})
    return status == 422 and (e.get("kind") == "input" or
                              e.get("kind") == "limit" and e.get("limit") not in
                              (None, "seconds"))


async def _body(request: Request, settings: Settings) -> bytes:
    """The body, refused as soon as it is known to pass the limit (declared or streamed)."""
    declared = request.headers.get("content-length")
    too_large = RequestError(f"the request body is over {settings.body_bytes:,} bytes, the "
                             "limit here", status=413)
    if declared is not None:
        if not declared.isdigit():
            raise RequestError("the Content-Length header is not a number")
        if int(declared) > settings.body_bytes:
            raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > settings.body_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _json_content(request: Request) -> None:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise RequestError(f"send the request as JSON (Content-Type: application/json), not "
                           f"{kind or 'no content type'}", status=415)


def _same_origin(request: Request) -> None:
    """A browser names the page that sends a request; only this server's own may."""
    origin = request.headers.get("origin")
    if origin is None:
        return  # not a browser's cross-site request (curl, scripts)
    host = request.headers.get("host", "")
    if origin.split("://", 1)[-1].rstrip("/") != host:
        raise RequestError("requests from other sites are refused (no CORS): use the page "
                           "this server serves", status=403)


async def _not_found(request: Request) -> Response:
    raise HTTPException(404)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    message = {404: f"nothing at {request.url.path}: the API is POST /api/derive, "
                    "/api/variables, /api/source and GET /api/status",
               405: f"{request.method} is not allowed on {request.url.path}"}.get(
        exc.status_code, str(exc.detail))
    return JSONResponse(error("request", message), status_code=exc.status_code,
                        headers=exc.headers)


async def _internal(request: Request, exc: Exception) -> Response:
    return JSONResponse(error("internal", f"internal error, please report: "
                              f"{type(exc).__name__}"), status_code=500)


class _Guard:
    """Every response gets the HEADERS; a request naming another host is refused (a page
    elsewhere that rebinds its DNS name to this machine reaches nothing). Pure ASGI, so
    static files stream as before."""

    def __init__(self, app, allowed_hosts: tuple[str, ...]):
        self.app, self.allowed = app, {h.lower() for h in allowed_hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k.encode(), v.encode()) for k, v in HEADERS.items()
                    if k.encode() not in present]
            await send(message)

        host = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1").lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if "*" not in self.allowed and name not in self.allowed:
            names = ", ".join(sorted(self.allowed))
            refused = JSONResponse(error("request", f"this server answers to {names}, not the "
                                         f"host {host[:80]!r}"), status_code=400)
            return await refused(scope, receive, with_headers)
        await self.app(scope, receive, with_headers)
