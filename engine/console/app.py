"""The console's assembly: the Starlette application, its guard (session, role, CSRF) and its routes.

``create_app(Console(...))`` returns an ASGI application serving server-rendered pages (Jinja2,
autoescaped) with htmx for partial updates. Every route has a name in ``engine.console.access``;
``guard`` checks, before the handler runs: a valid session (else the login page), the role
(else 403), and on POST the CSRF token (else 403). The pages themselves are ``engine.console.pages``.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from engine.console.access import allowed
from engine.console.jobs import BacktestJobs
from engine.console.pages import loaded
from engine.console.releases import Releases
from engine.console.security import COOKIE, HEADERS, LoginLimiter, Session, SessionCodec, csrf_ok
from engine.console.users import Users

if TYPE_CHECKING:
    from engine.cases import CaseStore

__all__ = ["Console", "create_app", "guard"]

HERE = Path(__file__).parent
MAX_BODY = 25 * 1024 * 1024  # the largest form accepted (an outcomes file of up to 20 MiB and its fields): bounded cost
Handler = Callable[[Request, "Console", Session, FormData | None], Awaitable[Response]]


@dataclass
class Console:
    """Everything the pages use: the policy root, the decision log, users, sessions, jobs, releases."""

    root: Path
    log_dir: Path | None
    users: Users
    codec: SessionCodec
    releases: Releases
    jobs: BacktestJobs
    data_dir: Path | None = None
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    secure_cookies: bool = False
    cases: CaseStore | None = None  # the review-queue store (engine.cases), when configured
    templates: Jinja2Templates = field(default_factory=lambda: Jinja2Templates(directory=str(HERE / "templates")))
    cache: dict[str, Any] = field(default_factory=dict)

    def render(self, request: Request, template: str, session: Session | None, status: int = 200, **context: Any) -> HTMLResponse:
        """Render `template` with the session's user, role and CSRF token."""
        return self.templates.TemplateResponse(
            request, template, {"session": session, "csrf": session.csrf if session else "", **context}, status_code=status,
        )

    def set_cookie(self, response: Response, session: Session) -> None:
        response.set_cookie(COOKIE, self.codec.dump(session), httponly=True, samesite="strict", secure=self.secure_cookies,
                            path="/", max_age=int(self.codec.idle))


def guard(name: str, handler: Handler, ctx: Console) -> Callable[[Request], Awaitable[Response]]:
    """`handler` behind the session, role and CSRF checks of route `name`; re-signs the session (idle timeout)."""

    async def endpoint(request: Request) -> Response:
        session = ctx.codec.load(request.cookies.get(COOKIE))
        if session is None or not session.signed_in:
            if request.method == "GET":
                return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
            return ctx.render(request, "error.html", None, 401, message="Your session has ended: sign in again.")
        if not allowed(name, session.role):
            return ctx.render(request, "error.html", session, 403,
                              message=f"Your role ({session.role}) may not do this ({name}).")
        form = None
        if request.method == "POST":
            if int(request.headers.get("content-length") or 0) > MAX_BODY:
                return ctx.render(request, "error.html", session, 413, message=f"The form is larger than {MAX_BODY // 1_048_576} MiB.")
            form = await request.form(max_files=1, max_fields=50)
            if not csrf_ok(session, form.get("csrf_token")):
                return ctx.render(request, "error.html", session, 403,
                                  message="The form's CSRF token is missing or wrong: reload the page and try again.")
        await run_in_threadpool(loaded, ctx)  # loading and testing the root (on a change) off the event loop
        response = await handler(request, ctx, session, form)
        ctx.set_cookie(response, session)
        return response

    return endpoint


class SecurityHeaders(BaseHTTPMiddleware):
    """Adds ``engine.console.security.HEADERS`` to every response."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        for key, value in HEADERS.items():
            response.headers.setdefault(key, value)
        return response


async def login_page(request: Request) -> Response:
    ctx: Console = request.app.state.console
    session = ctx.codec.load(request.cookies.get(COOKIE)) or SessionCodec.anonymous()
    response = ctx.render(request, "login.html", session, next=_safe_next(request.query_params.get("next", "/")))
    ctx.set_cookie(response, session)
    return response


async def _checked_form(request: Request) -> tuple[Console, Session | None, FormData | Response]:
    """The console, the session and the posted form, or a 403 page when the form's CSRF token is not the session's."""
    ctx: Console = request.app.state.console
    session = ctx.codec.load(request.cookies.get(COOKIE))
    form = await request.form(max_files=0, max_fields=10)
    if not csrf_ok(session, form.get("csrf_token")):
        return ctx, session, ctx.render(request, "error.html", None, 403, message="The form's CSRF token is missing or wrong: reload the page.")
    return ctx, session, form


async def login(request: Request) -> Response:
    """Check the password (rate-limited per name and client address); a new session on success."""
    ctx, session, form = await _checked_form(request)
    if isinstance(form, Response):
        return form
    name = str(form.get("username", ""))[:64]
    keys = (f"user:{name}", f"addr:{request.client.host if request.client else '-'}")
    wait = ctx.limiter.retry_after(*keys)
    if wait > 0:
        limited = ctx.render(request, "login.html", session, 429, next="/",
                             error=f"Too many failed sign-ins: try again in {int(wait) + 1} s.")
        limited.headers["Retry-After"] = str(int(wait) + 1)
        return limited
    user = ctx.users.check(name, str(form.get("password", "")))
    if user is None:
        ctx.limiter.failed(*keys)
        return ctx.render(request, "login.html", session, 401, next="/", error="Unknown user or wrong password.")
    ctx.limiter.succeeded(*keys)
    fresh = SessionCodec.signed_in(user.name, user.role)
    response = RedirectResponse(_safe_next(str(form.get("next", "/"))), status_code=303)
    ctx.set_cookie(response, fresh)
    return response


async def logout(request: Request) -> Response:
    """End the session (the cookie is deleted)."""
    _, _, form = await _checked_form(request)
    if isinstance(form, Response):
        return form
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def _safe_next(target: str) -> str:
    """Only a local path (no scheme, no host, no ``//``): no open redirect after sign-in."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


def route_table() -> list[tuple[str, str, Handler, list[str]]]:
    """Every page route: (path, name in engine.console.access, handler, methods)."""
    from engine.console import backtests, casepages, pages, releasepages

    return [*pages.ROUTES, *casepages.ROUTES, *backtests.ROUTES, *releasepages.ROUTES]


def create_app(ctx: Console) -> Starlette:
    """The console's ASGI application over `ctx`."""
    routes: list[BaseRoute] = [
        Route("/login", login_page, methods=["GET"], name="login_page"),
        Route("/login", login, methods=["POST"], name="login"),
        Route("/logout", logout, methods=["POST"], name="logout"),
        Route("/healthz", lambda _r: Response("ok", media_type="text/plain"), methods=["GET"], name="healthz"),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    for path, name, handler, methods in route_table():
        routes.append(Route(path, guard(name, handler, ctx), methods=methods, name=name))
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
    app.state.console = ctx
    return app


def new_secret() -> str:
    """A random secret for signing sessions (sessions end when the console restarts)."""
    return secrets.token_urlsafe(48)
