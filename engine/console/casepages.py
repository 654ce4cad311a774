"""The review queue and case pages (claim / decide with a note / a note on its own) over the case store (``engine.cases``).

The console reads and changes cases only through ``CaseStore`` (the same API the gRPC
``CaseService`` and the CLI use), so its transitions are checked in the store's write transaction:
two analysts cannot both decide one case, and a decided case is final. Cases are opened by the
server from the decision log (``engine.cases.opener``), never by the console. Records are shown as
logged (masked); the console never un-masks.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from engine.console.svg import bars

if TYPE_CHECKING:
    from engine.console.app import Console, Handler
    from engine.console.security import Session

__all__ = ["ROUTES"]

_FILTERS = ("state", "flow", "queue", "priority", "assignee")


def _unconfigured(ctx: Console, request: Request, session: Session) -> Response:
    return ctx.render(request, "error.html", session, 404,
                      message="No case store: start the console with --cases LOCATION (the store `verdict serve` writes; docs/console.md).")


async def cases(request: Request, ctx: Console, session: Session, form: FormData | None) -> Response:
    """The queue: open and assigned cases by priority then SLA deadline; filters by state, flow, queue, priority, assignee."""
    from engine.cases.model import CaseQuery, CaseState, Priority

    if ctx.cases is None:
        return _unconfigured(ctx, request, session)
    q = {k: request.query_params.get(k, "").strip() for k in _FILTERS}
    errors = []
    state = priority = None
    try:
        state = CaseState(q["state"]) if q["state"] else None
    except ValueError:
        errors.append(f"state: {q['state']!r} is not one of {', '.join(s.value for s in CaseState)}")
    try:
        priority = Priority(q["priority"]) if q["priority"] else None
    except ValueError:
        errors.append(f"priority: {q['priority']!r} is not one of {', '.join(p.value for p in Priority)}")
    if errors:
        return ctx.render(request, "error.html", session, 400, message="; ".join(errors))
    rows = ctx.cases.list_cases(CaseQuery(state=state, flow=q["flow"] or None, queue=q["queue"] or None, priority=priority,
                                          assignee=q["assignee"] or None, limit=200))
    if state is None:
        rows = [c for c in rows if c.state is not CaseState.DECIDED] if not q["assignee"] else rows
    return ctx.render(request, "cases.html", session, cases=rows, q=q, now=time.time())


async def case(request: Request, ctx: Console, session: Session, form: FormData | None) -> Response:
    """One case: state, SLA, reasons, contributions, masked input, the features as of decision time, linked cases, history, and the forms."""
    from engine.cases import CaseNotFound

    if ctx.cases is None:
        return _unconfigured(ctx, request, session)
    try:
        c = ctx.cases.get(request.path_params["case_id"])
    except CaseNotFound as exc:
        return ctx.render(request, "error.html", session, 404, message=str(exc))
    record = c.record
    features = _features(ctx, c.flow, record)
    contributions = [(r["feature"], float(r["contribution"])) for r in record.get("reasons", ()) if r.get("feature")]
    return ctx.render(request, "case.html", session, c=c, r=record, steps=ctx.cases.steps(c.case_id), now=time.time(),
                      chart=bars(contributions, title="model contributions"), message=request.query_params.get("message", ""),
                      features=features)


def _features(ctx: Console, flow: str, record: Any) -> Any:
    """The case's features as of decision time, recomputed by the version that decided (engine.training.from_log)."""
    from engine.console.pages import loaded
    from engine.training.from_log import flow_versions, recompute_features

    return recompute_features(record, flow_versions(loaded(ctx)[0].compiled, flow))


async def _act(request: Request, ctx: Console, session: Session, step: Any) -> Response:
    from engine.cases import CaseNotFound, IllegalTransition

    if ctx.cases is None:
        return _unconfigured(ctx, request, session)
    case_id = request.path_params["case_id"]
    try:
        step(case_id)
    except CaseNotFound as exc:
        return ctx.render(request, "error.html", session, 404, message=str(exc))
    except IllegalTransition as exc:
        return ctx.render(request, "error.html", session, 409, message=str(exc))
    return RedirectResponse(f"/cases/{case_id}", status_code=303)


async def case_claim(request: Request, ctx: Console, session: Session, form: FormData | None) -> Response:
    """Take an open case (open -> assigned); 409 when decided or claimed by someone else."""
    store = ctx.cases
    return await _act(request, ctx, session, lambda cid: store.claim(cid, session.user, now=time.time()) if store else None)


async def case_decide(request: Request, ctx: Console, session: Session, form: FormData | None) -> Response:
    """The final disposition with a note (required here: it goes to the calling system) and, optionally, the outcome established."""
    from engine.cases.desk import check_decide, decide_case
    from engine.errors import InvalidInput

    assert form is not None
    disposition, note, outcome = (str(form.get(k, "")).strip() for k in ("disposition", "note", "outcome"))
    errors = [] if note else ["note: say why (it goes to the calling system and the decision log)"]
    try:
        check_decide(request.path_params["case_id"], disposition, note, session.user, outcome)
    except InvalidInput as exc:
        errors = [str(e) for e in exc.errors] + errors
    if errors:
        return ctx.render(request, "error.html", session, 400, message="; ".join(errors))
    store = ctx.cases
    return await _act(request, ctx, session, lambda cid: decide_case(store, cid, disposition, note, session.user, outcome=outcome) if store else None)


async def case_note(request: Request, ctx: Console, session: Session, form: FormData | None) -> Response:
    """A note on the case's history, in any state (card numbers masked when stored); 400 naming the field when empty or too long."""
    from engine.cases.desk import check_note, note_case
    from engine.errors import InvalidInput

    assert form is not None
    text = str(form.get("text", ""))
    try:
        check_note(request.path_params["case_id"], text, session.user)
    except InvalidInput as exc:
        return ctx.render(request, "error.html", session, 400, message="; ".join(str(e) for e in exc.errors))
    store = ctx.cases
    return await _act(request, ctx, session, lambda cid: note_case(store, cid, text, session.user) if store else None)


ROUTES: list[tuple[str, str, Handler, list[str]]] = [
    ("/cases", "cases", cases, ["GET"]),
    ("/cases/{case_id}", "case", case, ["GET"]),
    ("/cases/{case_id}/claim", "case_claim", case_claim, ["POST"]),
    ("/cases/{case_id}/decide", "case_decide", case_decide, ["POST"]),
    ("/cases/{case_id}/note", "case_note", case_note, ["POST"]),
]
