"""What every request meets before and after its route: the host check, the body rules, the
security headers, and errors as JSON ``{"detail": ...}`` without server paths (``app.py``'s
module doc says why each rule is there)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from starlette.requests import Request  # at module level: FastAPI reads annotations here

from ..errors import SERVER_MEMORY_ADVICE, MassifError, is_index, out_of_memory, short
from ..memory import release_cached
from .listen import Hosts

log = logging.getLogger("massif.server")
MAX_BODY = 1 << 20  # bytes of a request body

# The page loads its scripts, styles and pictures from this server (pictures also as data: URIs,
# the edited model's download as a blob: URL); styles are also set in the HTML it builds. No
# inline script or event handler runs. 'unsafe-eval': the page evaluates no strings, but
# Playwright's wait_for_function, in the browser tests, polls its predicate with eval.
PAGE_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-eval'; "
               "style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# /api (FastAPI's Swagger page: its scripts come from a CDN and inline) and the report download
# (one file with its scripts inline, made to be opened from disk) keep only the framing rule.
FRAMING_POLICY = "frame-ancestors 'none'"
SECURITY_HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY",
                    "referrer-policy": "no-referrer"}


def add_guard(app: Any, hosts: Hosts, clean: Callable[[str], str]) -> Callable[[], None]:
    """Install the checks and error handlers on ``app``; returns ``seal``, to call once every
    route is added (the body rules apply to the methods the routes take)."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    body_methods: set[str] = set()  # the methods some route takes (POST), set by ``seal``

    def error(status: int, detail: str) -> JSONResponse:
        return JSONResponse({"detail": clean(detail)}, status_code=status)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        """The security headers on every answer, pages, JSON and errors alike."""
        response = await checked(request, call_next)
        path = request.url.path
        framing = path in ("/api", "/api/") or path.endswith("/report.html")
        response.headers["content-security-policy"] = FRAMING_POLICY if framing else PAGE_POLICY
        response.headers.update(SECURITY_HEADERS)
        return response

    async def checked(request: Request, call_next: Any) -> Any:
        """Refuse another site's host name, big bodies and cross-site or non-JSON POSTs before
        any work."""
        host = request.headers.get("host")
        if not hosts.accepts(host):
            return error(421, hosts.refusal(host))
        length = request.headers.get("content-length")
        if length is not None and (not is_index(length) or int(length) > MAX_BODY):
            return error(413, f"the request body is over {MAX_BODY // 1024} KB")
        if request.method in body_methods:  # (other methods: 405 from the router, unread)
            if length is None:  # a chunked body could grow past the limit unseen
                return error(411, "send the body with a content-length")
            origin = request.headers.get("origin")
            if origin is not None and origin.split("://", 1)[-1] != host:
                return error(403, "cross-origin requests are refused")
            if request.headers.get("sec-fetch-site") == "cross-site":
                return error(403, "cross-site requests are refused")
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return error(415, "send a JSON body with content-type: application/json")
        try:
            return await call_next(request)
        except Exception as e:  # a bug: one line in the log, a JSON 500 to the client
            no_memory = out_of_memory(e, SERVER_MEMORY_ADVICE)
            if no_memory is None:
                log.error("%s %s failed: %s: %s", request.method, request.url.path,
                          type(e).__name__, e, exc_info=log.isEnabledFor(logging.DEBUG))
                return error(500, f"internal error ({type(e).__name__}); see the server's log")
        release_cached()  # no memory left for this request: free the cache, say so (503)
        return error(503, no_memory)

    @app.exception_handler(MassifError)
    async def _massif_error(_request: Request, exc: MassifError) -> JSONResponse:
        return error(422, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        allow = (exc.headers or {}).get("Allow")
        if exc.status_code == 405 and allow:  # (the router's, with the methods it takes)
            answer = error(405, f"{short(request.method, 20)} is not allowed here; use {allow}")
        else:
            answer = error(exc.status_code, str(exc.detail))
        answer.headers.update(exc.headers or {})
        return answer

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:3]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
            msg = str(err.get("msg")).removeprefix("Value error, ")[:200]
            parts.append(f"{short(where, 40)[1:-1]}: {msg}" if where else msg)
        return error(422, "; ".join(parts) or "invalid request")

    def seal() -> None:
        body_methods.update(m for route in app.routes for m in getattr(route, "methods", None)
                            or () if m not in ("GET", "HEAD", "OPTIONS"))

    return seal
