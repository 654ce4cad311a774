"""The release pages (maker–checker, ``engine.policy.approvals`` through ``engine.console.releases``) and the
audit trail of proposals, approvals and applications."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from engine.console.pages import loaded, problem, version_order
from engine.policy.approvals import ApprovalError, describe

if TYPE_CHECKING:
    from engine.console.app import Console, Handler
    from engine.console.security import Session

__all__ = ["ROUTES"]


async def releases(request: Request, ctx: Console, session: Session, form: FormData | None) -> Response:
    """What serves now, the propose form (policy owners), and every proposal with approve/reject for approvers but never its proposer."""
    from engine.policy.approvals import approvals_required

    result, _ = loaded(ctx)
    try:
        proposals = list(reversed(ctx.releases.log.proposals().values()))
        log_error = ""
    except ApprovalError as exc:
        proposals, log_error = [], str(exc)
    current = {(f, v): c.revision for (f, v), c in result.contents.items()}
    required, _ = approvals_required(ctx.root)
    choices = {name: sorted(v, key=version_order) for name, v in sorted(result.flow_sources.items())}
    return ctx.render(request, "releases.html", session, proposals=proposals, current=current, required=required,
                      log_error=log_error, flows=choices, serving=result.flows, message=request.query_params.get("message", ""))


async def release_propose(request: Request, ctx: Console, session: Session, form: FormData | None) -> Response:
    """Record a proposal (flow, version, live or challenger with share and key); 400 naming the bad field or rule."""
    assert form is not None
    target = str(form.get("target", ""))
    errors = []
    share = 1.0
    if target == "challenger":
        try:
            share = float(str(form.get("share", "")))
        except ValueError:
            errors.append(f"share: {form.get('share')!r} is not a number")
    if errors:
        return problem(ctx, request, session, errors)
    try:
        p = ctx.releases.propose(str(form.get("flow", "")), str(form.get("version", "")), target, session.user, share=share,
                                 key=str(form.get("key", "")).strip(), note=str(form.get("note", ""))[:500])
    except ApprovalError as exc:
        return problem(ctx, request, session, [str(exc)])
    return RedirectResponse(f"/releases?message=proposed+{p.id}", status_code=303)


async def release_decide(request: Request, ctx: Console, session: Session, form: FormData | None) -> Response:
    """Approve or reject; on approval routing changes and servers reload. 409 when the rules refuse (own proposal, decided, edited since)."""
    assert form is not None
    try:
        p, outcome = ctx.releases.decide(request.path_params["proposal"], session.user, str(form.get("verdict", "")),
                                         note=str(form.get("note", ""))[:500])
    except ApprovalError as exc:
        return problem(ctx, request, session, [str(exc)], 409)
    ctx.cache.pop("root", None)
    return RedirectResponse(f"/releases?message={p.state}+{p.id}:+" + "+".join(" ".join(outcome).split())[:300], status_code=303)


async def audit(request: Request, ctx: Console, session: Session, form: FormData | None) -> Response:
    """The approvals log, newest first, with the result of verifying its hash chain."""
    try:
        events, error = ctx.releases.log.events(), ""
    except ApprovalError as exc:
        events, error = [], str(exc)
    return ctx.render(request, "audit.html", session, events=[describe(e) for e in reversed(events)], error=error, count=len(events))


ROUTES: list[tuple[str, str, Handler, list[str]]] = [
    ("/releases", "releases", releases, ["GET"]),
    ("/releases/propose", "release_propose", release_propose, ["POST"]),
    ("/releases/{proposal}/decide", "release_decide", release_decide, ["POST"]),
    ("/audit", "audit", audit, ["GET"]),
]
